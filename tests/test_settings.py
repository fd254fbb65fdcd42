"""Settings parsing, in process: every variable checked, every bad value reported at once."""

from __future__ import annotations

import pytest

from runtime.settings import MetricsMode, Settings, SettingsError


@pytest.mark.parametrize(
    "value, mode",
    [
        ("health", MetricsMode.HEALTH),
        ("HEALTH", MetricsMode.HEALTH),
        ("1", MetricsMode.ALWAYS),
        ("true", MetricsMode.ALWAYS),
        ("yes", MetricsMode.ALWAYS),
        ("on", MetricsMode.ALWAYS),
        ("0", MetricsMode.NEVER),
        ("false", MetricsMode.NEVER),
        ("no", MetricsMode.NEVER),
        ("Off", MetricsMode.NEVER),
    ],
)
def test_flash_metrics_takes_health_or_any_flag_spelling(value, mode):
    assert Settings.from_env({"FLASH_METRICS": value}).metrics is mode


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "FLASH_METRICS": "sometimes",
                "PORT": "http",
                "FLASH_MAX_QUEUE_WAIT": "-1",
                "FLASH_ARTIFACT_MAX_MEMBERS": "0",
                "FLASH_FAST_CPUINFO": "maybe",
            }
        )
    message = str(caught.value)
    for name in (
        "FLASH_METRICS",
        "PORT",
        "FLASH_MAX_QUEUE_WAIT",
        "FLASH_ARTIFACT_MAX_MEMBERS",
        "FLASH_FAST_CPUINFO",
    ):
        assert name in message


def test_defaults():
    settings = Settings.from_env({})
    assert (
        settings.port,
        settings.health_port,
        settings.max_queue_wait,
        settings.request_timeout,
    ) == (8000, 8000, 330.0, 330.0)
    assert (settings.artifact_max_bytes, settings.artifact_max_members) == (4 << 30, 200_000)
    assert (
        settings.fast_cpuinfo
        and settings.metrics is MetricsMode.HEALTH
        and settings.artifact_path is None
    )
