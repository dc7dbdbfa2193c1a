"""Config: defaults with no file, lookup order, one clear line per problem, masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracker.cli import main as cli_main
from tracker.config import Settings, load_settings, settings_from_mapping, settings_problems
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
    replay = Settings().replace("gps", source="replay").gps
    assert configured_rollover_floor(replay) is None
    off = settings_from_mapping({"gps": {"week_rollover_floor": "off"}}).gps
    assert configured_rollover_floor(off) is None
    own = settings_from_mapping({"gps": {"week_rollover_floor": "2026-01-01"}}).gps
    assert configured_rollover_floor(own) == date(2026, 1, 1)
    with pytest.raises(ConfigError, match=r"\[gps\] week_rollover_floor: 'soon' is not allowed"):
        settings_from_mapping({"gps": {"week_rollover_floor": "soon"}})


@pytest.mark.parametrize(
    ("section", "key", "text"),
    [
        ("uplink", "batch_interval_s", "nan"),  # froze the whole service
        ("sampler", "max_error_m", "nan"),  # never started an activity
        ("storage", "max_mb", "inf"),  # a traceback with exit 1
        ("storage", "keep_days", "inf"),
        ("uplink", "max_backoff_s", "+inf"),
        ("gps", "replay_speed", "-nan"),
        ("button", "hold_time_s", "-inf"),
        ("api", "timeout_s", "inf"),
    ],
)
def test_non_finite_numbers_are_refused_with_exit_2(
    section: str, key: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[{section}]\n{key} = {text}\n")
    for argv in (["run", "--config", str(cfg)], ["run", "--config", str(cfg), "--print-config"],
                 ["--config", str(cfg), "--print-config"]):  # fmt: skip
        assert cli_main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert err[0].startswith(f"tracker: config error: {cfg}: [{section}] {key}: ")
        assert err[0].endswith("is not allowed; allowed: a finite number")


def test_every_float_setting_refuses_nan() -> None:
    # Driven by the type hints: no float key may let nan or inf through, present or future.
    import dataclasses
    import typing

    for sec in dataclasses.fields(Settings):
        if sec.name == "source":
            continue
        cls = typing.get_type_hints(Settings)[sec.name]
        for f in dataclasses.fields(cls):
            if typing.get_type_hints(cls)[f.name] is float:
                for bad in (float("nan"), float("inf"), float("-inf")):
                    with pytest.raises(ConfigError, match="finite"):
                        settings_from_mapping({sec.name: {f.name: bad}})


def test_print_config_is_valid_json_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[uplink]\nbatch_interval_s = 2.5\n")
    for argv in (["--config", str(cfg), "--print-config"], ["status", "--config", str(cfg),
                 "--print-config"], ["run", "--config", str(cfg), "--print-config"]):  # fmt: skip
        assert cli_main(argv) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"# settings from: {cfg}\n")
        assert json.loads(out.split("\n", 1)[1])["uplink"]["batch_interval_s"] == 2.5


def test_no_command_and_no_print_config_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main([]) == 2
    assert "a COMMAND is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"leds": {"status_pin": 17}},
         "c.toml: [leds] status_pin: GPIO 17 is already [button] pin; each role needs its own pin"),
        ({"leds": {"link_pin": 27}},
         "c.toml: [leds] link_pin: GPIO 27 is already [leds] status_pin; each role needs its own"),
        ({"button": {"pin": 22}},
         "c.toml: [leds] link_pin: GPIO 22 is already [button] pin"),
    ],
)  # fmt: skip
def test_two_roles_on_one_gpio_pin_are_refused(raw: dict[str, dict[str, int]], line: str
                                                ) -> None:  # fmt: skip
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw, source="c.toml")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(line)


def test_a_pin_shared_with_a_disabled_role_is_fine() -> None:
    s = settings_from_mapping({"button": {"enabled": False, "pin": 27}})
    assert s.button.pin == s.leds.status_pin == 27
    s = settings_from_mapping({"leds": {"link_pin": -1, "status_pin": 22}})
    assert s.leds.status_pin == 22
    assert settings_problems(Settings()) == []


def test_missing_replay_file_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    missing = tmp_path / "ride.nmea"
    cfg.write_text(f'[gps]\nsource = "replay"\nreplay_file = "{missing}"\n')
    assert cli_main(["run", "--config", str(cfg)]) == 2  # at start, not a task restarting
    assert capsys.readouterr().err.strip() == (
        f"tracker: config error: {cfg}: [gps] replay_file: '{missing}': no such file "
        '(source = "replay" plays it)'
    )
    assert cli_main(["--config", str(cfg), "--print-config"]) == 2
    assert "no such file" in capsys.readouterr().err
    cfg.write_text('[gps]\nsource = "replay"\n')
    with pytest.raises(ConfigError, match=r'\[gps\] replay_file: empty; source = "replay" needs'):
        load_settings(cfg)
    missing.write_text("$GPRMC\n")
    cfg.write_text(f'[gps]\nsource = "replay"\nreplay_file = "{missing}"\n')
    assert load_settings(cfg).gps.replay_file == str(missing)


def test_plain_http_api_off_loopback_is_found_at_load() -> None:
    with pytest.raises(ConfigError, match=r"c.toml: \[api\] base_url: 'http://example.com/api3'"):
        settings_from_mapping({"api": {"base_url": "http://example.com/api3"}}, source="c.toml")
    for ok in ("https://www.mapmytracks.com/api3", "http://127.0.0.1:8080/api3",
               "http://[::1]:9/api3", "http://localhost/api3"):  # fmt: skip
        assert settings_from_mapping({"api": {"base_url": ok}}).api.base_url == ok


def test_heart_rate_device_problems_are_found_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[heart_rate\] device: empty"):
        settings_from_mapping({"heart_rate": {"enabled": True, "device": " "}})
    hr = {"enabled": True, "device": f"replay:{tmp_path}/hr.txt"}
    with pytest.raises(ConfigError, match=r"\[heart_rate\] device: .*hr.txt': no such file"):
        settings_from_mapping({"heart_rate": hr})
    assert not settings_from_mapping({"heart_rate": {"device": ""}}).heart_rate.enabled
