import backfill


def test_public_api_is_pinned() -> None:
    assert sorted(backfill.__all__) == sorted(
        ["BackfillError", "Config", "ConfigError", "__version__", "load_config"]
    )
    for name in backfill.__all__:
        assert hasattr(backfill, name)
