import backfill


def test_public_api_is_pinned() -> None:
    assert sorted(backfill.__all__) == sorted([
        "Backfill", "BackfillError", "Config", "ConfigError", "Event", "LockedError",
        "ManifestError", "Options", "Record", "Status", "StorageError", "Summary",
        "__version__", "load_config",
    ])
    for name in backfill.__all__:
        assert hasattr(backfill, name)


def test_exit_codes_live_on_the_errors() -> None:
    assert backfill.ConfigError("x").exit_code == 2
    assert backfill.ManifestError("x").exit_code == 2
    assert backfill.LockedError("x").exit_code == 75
