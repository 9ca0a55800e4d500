import pytest


def test_runs():
    pass


@pytest.mark.xfail(strict=False, reason="passes whether the bug is there or not")
def test_not_strict():
    assert 1 + 1 == 3
