import os


def pytest_unconfigure(config):
    os._exit(1)     # after pytest printed "2 passed": the exit status says otherwise
