"""The environment variables operators set keep their names, nested settings or not."""

from __future__ import annotations

import pytest

from relay_bundle_builder.settings import Settings


def test_every_setting_is_read_from_its_documented_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BUNDLE_BUILDER_CONSUMER_GROUP": "bundle-builder-blue",
        "BUNDLE_BUILDER_ASSET_TIMEOUT_S": "7",
        "BUNDLE_BUILDER_ASSET_CONNECT_TIMEOUT_S": "2",
        "BUNDLE_BUILDER_ASSET_MAX_BYTES": "1000",
        "BUNDLE_BUILDER_ASSET_RETRIES": "4",
        "BUNDLE_BUILDER_ASSET_RETRY_WAIT_S": "0.25",
        "BUNDLE_BUILDER_ASSET_MAX_REDIRECTS": "1",
        "BUNDLE_BUILDER_FETCH_CONCURRENCY": "3",
        "BUNDLE_BUILDER_STORE_CONCURRENCY": "5",
        "BUNDLE_BUILDER_BUNDLE_TIME_BUDGET_S": "90",
        "BUNDLE_BUILDER_BUNDLE_MAX_ASSETS": "10",
        "BUNDLE_BUILDER_BUNDLE_MAX_ASSET_BYTES": "2000",
        "BUNDLE_BUILDER_BUNDLE_MAX_MEMORY_BYTES": "100",
        "BUNDLE_BUILDER_PREVIEW_MAX_PIXELS": "640",
    }.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.consumer_group == "bundle-builder-blue"
    assets = settings.assets
    assert (assets.timeout_s, assets.connect_timeout_s, assets.max_bytes) == (7, 2, 1000)
    assert (assets.retries, assets.retry_wait_s, assets.max_redirects, assets.concurrency) == (4, 0.25, 1, 3)
    assert settings.store_concurrency == 5
    bundle = settings.bundle
    assert (bundle.time_s, bundle.max_assets, bundle.max_asset_bytes) == (90, 10, 2000)
    assert (bundle.max_memory_bytes, bundle.max_preview_pixels) == (100, 640)


def test_a_bundle_budget_past_the_handler_budget_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUNDLE_BUILDER_BUNDLE_TIME_BUDGET_S", "300")
    with pytest.raises(ValueError, match="KAFKA_HANDLER_TIMEOUT_S"):
        Settings()
