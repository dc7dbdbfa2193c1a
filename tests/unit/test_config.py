"""Config: defaults with no file, lookup order, one clear line per problem, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker.config import Settings, load_settings, settings_from_mapping
from tracker.errors import ConfigError


def test_defaults_need_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRACKER_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr("tracker.config.SYSTEM_CONFIG", tmp_path / "none.toml")
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.sampler.max_error_m == 10.0
    assert settings.activity.type == "cycling"


def test_lookup_order_explicit_then_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text('[activity]\ntype = "running"\n')
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[activity]\ntype = "hiking"\n')
    monkeypatch.setenv("TRACKER_CONFIG", str(env_file))
    assert load_settings(None).activity.type == "running"
    assert load_settings(explicit).activity.type == "hiking"
    assert load_settings(explicit).source == str(explicit)


def test_user_config_dir_is_last(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRACKER_CONFIG", raising=False)
    monkeypatch.setattr("tracker.config.SYSTEM_CONFIG", tmp_path / "absent.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "tracker").mkdir()
    (tmp_path / "tracker" / "config.toml").write_text("[uplink]\nbatch_interval_s = 2.5\n")
    assert load_settings(None).uplink.batch_interval_s == 2.5


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.toml")


def test_every_problem_gets_its_own_line() -> None:
    raw = {
        "gps": {"baud": "fast", "sourc": "serial", "source": "usb"},
        "sampler": {"max_error_m": -1},
        "activity": {"type": "unicycling", "tags": "a,b"},
        "bogus": {},
    }
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw, source="c.toml")
    problems = info.value.problems
    assert len(problems) == 7
    text = "\n".join(problems)
    assert 'c.toml: [gps] baud: expected a whole number or one of "auto"' in text
    assert "[gps] sourc: unknown key; allowed: source, device" in text
    assert "[gps] source: expected one of \"serial\" | \"gpsd\" | \"replay\", got str 'usb'" in text
    assert "[sampler] max_error_m: -1.0 is too small; allowed: 0.5 or more" in text
    assert "[activity] type: 'unicycling' is not allowed" in text
    assert "[activity] tags: expected a list of strings" in text
    assert "[bogus]: unknown section" in text


def test_valid_values_convert() -> None:
    s = settings_from_mapping(
        {"gps": {"baud": 9600, "replay_speed": 20}, "activity": {"tags": ["a", "b"]}}
    )
    assert s.gps.baud == 9600
    assert s.gps.replay_speed == 20.0
    assert s.activity.tags == ("a", "b")


def test_baud_outside_choices() -> None:
    with pytest.raises(ConfigError, match="12345 is not allowed"):
        settings_from_mapping({"gps": {"baud": 12345}})


def test_bad_toml_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[gps\nsource = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_to_dict_masks_secret() -> None:
    s = settings_from_mapping({"api": {"client_secret": "hunter2-long", "client_id": "me"}})
    d = s.to_dict()
    assert d["api"]["client_secret"] == "***"
    assert d["api"]["client_id"] == "me"
    assert s.to_dict(mask_secrets=False)["api"]["client_secret"] == "hunter2-long"


def test_week_rollover_floor_values() -> None:
    from datetime import date

    from tracker.gps.stream import LIVE_ROLLOVER_FLOOR, configured_rollover_floor

    assert configured_rollover_floor(Settings().gps) == LIVE_ROLLOVER_FLOOR
    replay = settings_from_mapping({"gps": {"source": "replay"}}).gps
    assert configured_rollover_floor(replay) is None
    off = settings_from_mapping({"gps": {"week_rollover_floor": "off"}}).gps
    assert configured_rollover_floor(off) is None
    own = settings_from_mapping({"gps": {"week_rollover_floor": "2026-01-01"}}).gps
    assert configured_rollover_floor(own) == date(2026, 1, 1)
    with pytest.raises(ConfigError, match=r"\[gps\] week_rollover_floor: 'soon' is not allowed"):
        settings_from_mapping({"gps": {"week_rollover_floor": "soon"}})
