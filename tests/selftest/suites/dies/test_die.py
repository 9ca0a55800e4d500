import os


def test_first():
    pass


def test_process_ends():
    os._exit(0)


def test_never_runs():
    pass
