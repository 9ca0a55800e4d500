def test_cannot_be_collected(:
    pass
