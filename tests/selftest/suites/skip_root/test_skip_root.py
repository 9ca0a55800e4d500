import pytest


def test_runs():
    pass


@pytest.mark.skip(reason="needs root: pretends to need root")
def test_skipped_for_root():
    pass
