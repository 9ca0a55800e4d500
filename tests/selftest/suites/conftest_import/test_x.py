def test_would_pass():
    assert True
