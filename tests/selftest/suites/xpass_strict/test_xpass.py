import pytest


def test_runs():
    pass


@pytest.mark.xfail(strict=True, reason="a known bug that has been fixed")
def test_fixed_bug():
    assert 1 + 1 == 2
