"""The Pi installation files: systemd unit, udev rule, polkit/journald drop-ins, wiring
picture, and scripts/install-pi (dry run).

Real tools where they exist on the machine: ``systemd-analyze verify`` and
``systemd-analyze security --offline`` (against a throw-away root holding systemd's own units
and a stand-in for the venv's ``tracker``), ``udevadm verify`` when this udev has it (v254+),
and always a parser plus evaluator for the udev rule, so what it matches is tested too.
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tracker.cli import build_parser
from tracker.config import settings_from_mapping

REPO = Path(__file__).resolve().parents[2]
HW = REPO / "hardware"
UNIT = HW / "tracker.service"
RULE = HW / "99-tracker-gps.rules"
INSTALL = REPO / "scripts" / "install-pi"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (scripts/setup installs the Debian 'systemd' "
                    "package when run as root)")
    if not (SYSTEM_UNITS / "sysinit.target").exists():
        pytest.skip(f"systemd's own units are not in {SYSTEM_UNITS}")
    return tool


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """A root dir as the installer leaves it: the unit in /etc, the venv's tracker executable."""
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/tracker.service")
    exe = root / "opt/tracker/venv/bin/tracker"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return root


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_systemd_analyze(), *args], capture_output=True, text=True, timeout=60, check=False
    )


# ---- systemd unit ---------------------------------------------------------------------------


def test_unit_passes_systemd_analyze_verify(unit_root: Path) -> None:
    result = _analyze("verify", "--man=no", f"--root={unit_root}", "tracker.service")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # not even "Unknown key … ignoring"


def test_verify_would_catch_a_broken_unit(unit_root: Path) -> None:
    """The check above is not vacuous: a typo and a missing executable are both reported."""
    path = unit_root / "etc/systemd/system/tracker.service"
    path.write_text(path.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    (unit_root / "opt/tracker/venv/bin/tracker").unlink()
    result = _analyze("verify", "--man=no", f"--root={unit_root}", "tracker.service")
    assert "Unknown key" in result.stderr
    assert "is not executable" in result.stderr
    assert result.returncode != 0


def test_unit_exposure_is_low(unit_root: Path) -> None:
    result = _analyze(
        "security", "--offline=yes", "--threshold=35", f"--root={unit_root}", "tracker.service"
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level for tracker.service" in result.stdout


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_runs_the_tracker_as_asked() -> None:
    svc = _unit()["Service"]
    assert svc["Type"] == "notify"
    assert svc["NotifyAccess"] == "main"
    assert int(svc["WatchdogSec"]) >= 10
    assert svc["Restart"] == "always"
    assert svc["User"] == "tracker"
    assert set(svc["SupplementaryGroups"].split()) == {"dialout", "gpio"}
    exec_start = svc["ExecStart"].split()
    assert exec_start[0] == "/opt/tracker/venv/bin/tracker"
    args = build_parser().parse_args(exec_start[1:])  # the CLI accepts exactly this
    assert args.command == "run"
    assert args.log_json is True
    assert svc["StandardOutput"] == "journal"
    # The long-press power-off is allowed only inside this unit (tracker/bike/shutdown.py).
    assert "TRACKER_SERVICE=1" in svc["Environment"].split()
    # lgpio needs a writable directory for its notification pipes (gpiozero issue #1106).
    assert "LG_WD=/tmp" in svc["Environment"].split()
    assert svc["PrivateTmp"] == "yes"


def test_unit_is_hardened_and_only_the_data_dir_is_writable() -> None:
    svc = _unit()["Service"]
    assert svc["ProtectSystem"] == "strict"
    assert svc["ReadWritePaths"].split() == ["/var/lib/tracker"]
    assert svc["StateDirectory"] == "tracker"
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "ProtectKernelTunables",
                "ProtectControlGroups", "RestrictSUIDSGID"):
        assert svc[key] == "yes", key
    assert svc["CapabilityBoundingSet"] == ""
    # Devices must stay reachable: the receiver and /dev/gpiochip*.
    assert "PrivateDevices" not in svc
    assert "ProtectClock" not in svc
    assert "DevicePolicy" not in svc
    assert "AF_UNIX" in svc["RestrictAddressFamilies"]  # sd_notify, journald, D-Bus


def test_setup_installs_systemd_for_this_test_on_a_fresh_machine() -> None:
    setup = (REPO / "scripts" / "setup").read_text()
    assert "systemd-analyze" in setup
    assert "apt-get install" in setup


# ---- udev rule ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]+)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*'
    r'"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)'
)
_MATCH_KEYS = {"ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "ATTR", "ATTRS",
               "DRIVER", "DRIVERS", "ENV", "SYMLINK"}
_ASSIGN_KEYS = {"SYMLINK", "ENV", "GROUP", "MODE", "OWNER", "TAG", "GOTO", "LABEL"}
_NEEDS_ATTR = {"ATTR", "ATTRS", "ENV"}

Rule = list[tuple[str, str | None, str, str]]


def parse_udev_rules(text: str) -> list[Rule]:
    """Parse rules with udev's syntax (one rule per line, key[{attr}] op "value", commas).

    Raises AssertionError naming the line for anything udev would reject or ignore.
    """
    rules: list[Rule] = []
    labels: set[str] = set()
    gotos: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        assert not stripped.endswith("\\"), f"line {number}: continuation not used here"
        pos, rule = 0, []
        while pos < len(stripped):
            m = _TOKEN.match(stripped, pos)
            assert m, f"line {number}: cannot parse at: {stripped[pos:]!r}"
            key, attr, op, value = m["key"], m["attr"], m["op"], m["value"]
            if op in ("==", "!="):
                assert key in _MATCH_KEYS, f"line {number}: {key} cannot be matched"
            else:
                assert key in _ASSIGN_KEYS, f"line {number}: {key} cannot be assigned"
            assert (attr is not None) == (key in _NEEDS_ATTR), f"line {number}: {key}{{}} use"
            if key == "LABEL":
                labels.add(value)
            if key == "GOTO":
                gotos.append((number, value))
            rule.append((key, attr, op, value))
            pos = m.end()
        rules.append(rule)
    for number, target in gotos:
        assert target in labels, f"line {number}: GOTO {target!r} has no LABEL"
    return rules


def _glob(pattern: str, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, alt) for alt in pattern.split("|"))


def evaluate(rules: list[Rule], device: dict[str, Any]) -> dict[str, Any]:
    """Apply the rules to a device the way udev does (enough of it for this rule file)."""
    result: dict[str, Any] = {"symlinks": [], "env": {}, "group": None, "mode": None}
    goto: str | None = None
    for rule in rules:
        if goto is not None:
            if ("LABEL", None, "=", goto) in rule:
                goto = None
            continue
        matched = True
        for key, attr, op, value in rule:
            if op not in ("==", "!="):
                continue
            if key in ("ATTRS", "ATTR"):
                actual = device["attrs"].get(attr)
                hit = actual is not None and _glob(value, actual)
            else:
                hit = _glob(value, device.get(key, ""))
            if hit != (op == "=="):
                matched = False
                break
        if not matched:
            continue
        for key, attr, op, value in rule:
            if key == "SYMLINK":
                result["symlinks"] += value.split()
            elif key == "ENV" and op == "=":
                result["env"][attr] = value
            elif key == "GROUP":
                result["group"] = value
            elif key == "MODE":
                result["mode"] = value
            elif key == "GOTO":
                goto = value
    return result


def _device(vid: str, pid: str, *, action: str = "add", subsystem: str = "tty",
            **attrs: str) -> dict[str, Any]:
    return {"ACTION": action, "SUBSYSTEM": subsystem,
            "attrs": {"idVendor": vid, "idProduct": pid, **attrs}}


def test_udev_rule_parses() -> None:
    rules = parse_udev_rules(RULE.read_text())
    assert len(rules) >= 12


@pytest.mark.parametrize(
    ("vid", "pid", "attrs"),
    [
        ("1546", "01a5", {}), ("1546", "01a6", {}), ("1546", "01a7", {}),
        ("1546", "01a8", {}), ("1546", "01a9", {}),
        ("067b", "2303", {"product": "USB-Serial Controller"}),  # GlobalSat BU-353S4 (SiRF)
        ("067b", "aaa0", {}),
        ("0e8d", "3329", {}),
        ("10c4", "ea60", {"product": "u-blox GNSS receiver"}),
        ("10c4", "ea60", {"product": "CP2102 USB to UART", "manufacturer": "u-blox AG"}),
        ("0403", "6001", {"product": "USB GPS Receiver"}),
        ("1a86", "7523", {"product": "GNSS module"}),
    ],
)  # fmt: skip
def test_common_gps_receivers_get_dev_gps0(vid: str, pid: str, attrs: dict[str, str]) -> None:
    result = evaluate(parse_udev_rules(RULE.read_text()), _device(vid, pid, **attrs))
    assert result["symlinks"] == ["gps0"]
    assert result["env"] == {"ID_MM_DEVICE_IGNORE": "1"}  # ModemManager leaves it alone
    assert result["group"] == "dialout"
    assert result["mode"] == "0660"


@pytest.mark.parametrize(
    "device",
    [
        _device("10c4", "ea60", product="CP2102 USB to UART Bridge Controller",
                manufacturer="Silicon Labs"),  # an ESP32 board, not a GPS
        _device("0403", "6001", product="FT232R USB UART"),
        _device("1a86", "7523", product="USB Serial"),
        _device("1234", "5678", product="GPS but unknown vendor"),
        _device("1546", "01a7", action="remove"),
        _device("1546", "01a7", subsystem="usb"),
    ],
    ids=["cp210x-esp32", "ftdi-cable", "ch340-cable", "unknown-id", "remove", "not-tty"],
)  # fmt: skip
def test_generic_bridges_and_other_events_are_left_alone(device: dict[str, Any]) -> None:
    assert evaluate(parse_udev_rules(RULE.read_text()), device)["symlinks"] == []


def test_the_rule_parser_rejects_what_udev_would() -> None:
    with pytest.raises(AssertionError, match="cannot parse"):
        parse_udev_rules('ATTRS{idVendor}=="1546" SYMLINK+="gps0"\n')  # missing comma
    with pytest.raises(AssertionError, match="cannot be assigned"):
        parse_udev_rules('ATTRS{idVendor}="1546"\n')
    with pytest.raises(AssertionError, match="no LABEL"):
        parse_udev_rules('ACTION=="remove", GOTO="nowhere"\n')


def test_udevadm_verify_when_available(tmp_path: Path) -> None:
    udevadm = shutil.which("udevadm")
    if udevadm is None:
        pytest.skip("udevadm not installed")
    probe = subprocess.run([udevadm, "verify", "--help"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        version = subprocess.run([udevadm, "--version"], capture_output=True, text=True,
                                 check=False).stdout.strip()
        pytest.skip(f"udevadm {version} has no 'verify' (added in systemd 254); "
                    "the parser tests above cover the syntax")
    result = subprocess.run([udevadm, "verify", "--resolve-names=never", str(RULE)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- small drop-ins and the picture ---------------------------------------------------------


def test_journald_and_polkit_drop_ins() -> None:
    journald = configparser.ConfigParser()
    journald.optionxform = str  # type: ignore[assignment,method-assign]
    journald.read_string((HW / "journald-tracker.conf").read_text())
    assert journald["Journal"]["SystemMaxUse"] == "64M"
    polkit = (HW / "50-tracker-poweroff.rules").read_text()
    assert 'subject.user == "tracker"' in polkit
    assert "org.freedesktop.login1.power-off" in polkit
    assert polkit.count("polkit.Result.YES") == 1


def test_wiring_picture_is_current_and_valid_svg() -> None:
    result = subprocess.run(
        [sys.executable, str(HW / "make_wiring_svg.py"), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    root = ET.parse(HW / "wiring.svg").getroot()  # noqa: S314 - our own file
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for needle in ("GPIO17 (11)", "GPIO27 (13)", "GPIO22 (15)", "330 Ω", "GND"):
        assert needle in text
    assert "wiring.svg" in (REPO / "docs" / "raspberry-pi.md").read_text()


# ---- scripts/install-pi ---------------------------------------------------------------------


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=120,
        check=False, env={**os.environ, "LC_ALL": "C"},
    )


def test_install_pi_is_valid_bash() -> None:
    assert os.access(INSTALL, os.X_OK)
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)


def test_install_pi_dry_run_lists_every_step_and_changes_nothing() -> None:
    watched = [Path(p) for p in ("/etc/tracker", "/opt/tracker", "/var/lib/tracker",
                                 "/etc/systemd/system/tracker.service",
                                 "/etc/udev/rules.d/99-tracker-gps.rules",
                                 "/usr/local/bin/tracker")]
    before = {p: p.exists() for p in watched}
    first = _install("--dry-run")
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    out = first.stdout
    assert "dry run: nothing will be changed" in out
    steps = re.findall(r"^\[(\d+)\] (.*)$", out, re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, 11))
    titles = " | ".join(t for _, t in steps)
    for needle in ("apt packages", "service user tracker", "directories", "virtualenv",
                   "command /usr/local/bin/tracker", "config /etc/tracker/config.toml",
                   "udev rule", "polkit rule", "journald", "systemd unit"):
        assert needle in titles
    assert "running:" not in out  # nothing executed
    for line in out.splitlines():
        if line.strip().startswith("would run:"):
            assert line.split("would run: ", 1)[1]
    # Either it would do each thing, or it says it is already done.
    for expected in ("systemctl enable tracker.service", "tracker.service", "pip install"):
        assert expected in out
    assert "sudo -u tracker tracker login" in out.splitlines()[-2]
    assert {p: p.exists() for p in watched} == before
    assert _install("--dry-run").stdout == out  # deterministic: same plan twice


def test_install_pi_writes_a_config_the_tracker_accepts() -> None:
    out = _install("--dry-run").stdout
    if "kept your /etc/tracker/config.toml" in out:
        pytest.skip("this machine already has /etc/tracker/config.toml")
    lines = [line.split("| ", 1)[1] if "| " in line else ""
             for line in out.splitlines() if line.startswith("        |")]
    raw = tomllib.loads("\n".join(lines))
    settings = settings_from_mapping(raw, source="install-pi")
    assert settings.storage.data_dir == "/var/lib/tracker"
    assert settings.button.pin == 17
    assert settings.leds.status_pin == 27


def test_install_pi_refuses_unknown_options_and_has_help() -> None:
    bad = _install("--frobnicate")
    assert bad.returncode == 2
    assert "unknown option" in bad.stderr
    helped = _install("--help")
    assert helped.returncode == 0
    assert "--dry-run" in helped.stdout


# ---- scripts/install-pi --gpsd: gpsd owns the receiver and feeds chrony ----------------------

GPSD_PATHS = [Path(p) for p in ("/etc/default/gpsd", "/etc/udev/rules.d/99-tracker-gpsd.rules",
                                "/etc/chrony/conf.d/tracker-gpsd.conf", "/etc/tracker")]


def _written(out: str) -> dict[str, str]:
    """What a dry run would write: {path: text}, from its "would write PATH" blocks."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        m = re.match(r"    would write (\S+) \(", line)
        if m:
            current = files[m[1]] = []
        elif current is not None and line.startswith("        |"):
            current.append(line[10:])
        else:
            current = None
    return {path: "\n".join(lines) + "\n" for path, lines in files.items()}


def _shell_vars(text: str, tmp_path: Path) -> dict[str, str]:
    """The variables a shell gets from sourcing ``text`` (as gpsd's unit does with
    EnvironmentFile=, and Debian's scripts with ``.``)."""
    path = tmp_path / "defaults"
    path.write_text(text)
    names = ("START_DAEMON", "DEVICES", "GPSD_OPTIONS", "USBAUTO")
    script = f'. "{path}"; ' + "; ".join(f'printf "%s\\n" "${name}"' for name in names)
    values = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    return dict(zip(names, values.stdout.split("\n"), strict=False))


def test_install_pi_gpsd_dry_run_sets_up_gpsd_chrony_and_the_config(tmp_path: Path) -> None:
    before = {p: p.exists() for p in GPSD_PATHS}
    result = _install("--dry-run", "--gpsd")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "running:" not in out
    steps = re.findall(r"^\[(\d+)\] (.*)$", out, re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, 12))  # one step more than without
    titles = [t for _, t in steps]
    assert titles[7].startswith("gpsd + chrony: the receiver (/dev/gps0)")
    assert titles[6].startswith("udev rule")
    assert titles[10].startswith("systemd unit")
    assert all(pkg in titles[0].split() for pkg in ("gpsd", "gpsd-clients", "chrony"))
    files = _written(out)

    defaults = _shell_vars(files["/etc/default/gpsd"], tmp_path)
    assert defaults["GPSD_OPTIONS"].split() == ["-n"]  # poll without clients: chrony's time
    assert defaults["START_DAEMON"] == "true"
    # A USB receiver is added by udev (gpsdctl@) by its kernel name: not named twice.
    assert defaults["DEVICES"] == ""
    assert defaults["USBAUTO"] == "true"
    rule_text = files["/etc/udev/rules.d/99-tracker-gpsd.rules"]
    rules = parse_udev_rules(rule_text)
    assert len(rules) == 1
    assert ("SYMLINK", None, "==", "gps0") in rules[0]
    assert ("ENV", "SYSTEMD_WANTS", "+=", "gpsdctl@%k.service") in rules[0]
    assert ("ACTION", None, "==", "add") in rules[0]
    chrony = [line for line in files["/etc/chrony/conf.d/tracker-gpsd.conf"].splitlines()
              if line and not line.startswith("#")]  # fmt: skip
    assert chrony == ["refclock SHM 0 offset 0.5 delay 0.2 refid NMEA", "rtcsync"]
    for command in ("systemctl enable gpsd.service", "systemctl restart gpsd.service",
                    "systemctl restart chrony.service"):  # fmt: skip
        assert f"would run: {command}" in out

    if "kept your /etc/tracker/config.toml" not in out:
        settings = settings_from_mapping(
            tomllib.loads(files["/etc/tracker/config.toml"]), source="install-pi --gpsd"
        )
        assert settings.gps.source == "gpsd"
        assert (settings.gps.gpsd_host, settings.gps.gpsd_port) == ("127.0.0.1", 2947)
        assert settings.storage.data_dir == "/var/lib/tracker"
    assert {p: p.exists() for p in GPSD_PATHS} == before
    assert _install("--dry-run", "--gpsd").stdout == out


def test_install_pi_gpsd_with_a_fixed_device(tmp_path: Path) -> None:
    """A UART receiver is never unplugged: gpsd opens it at start; no hot-plug rule."""
    result = _install("--dry-run", "--gpsd-device=/dev/serial0")
    assert result.returncode == 0, result.stderr
    files = _written(result.stdout)
    defaults = _shell_vars(files["/etc/default/gpsd"], tmp_path)
    assert defaults["DEVICES"] == "/dev/serial0"
    assert defaults["GPSD_OPTIONS"].split() == ["-n"]
    assert "/etc/udev/rules.d/99-tracker-gpsd.rules" not in files
    assert "refclock SHM 0" in files["/etc/chrony/conf.d/tracker-gpsd.conf"]


def test_install_pi_without_gpsd_leaves_gpsd_and_chrony_alone() -> None:
    out = _install("--dry-run").stdout
    assert "gpsd" not in out.replace("99-tracker-gps.rules", "")
    assert "chrony" not in out
    assert 'device = "auto"' in out
    helped = _install("--help").stdout
    assert "--gpsd" in helped
    assert "--gpsd-device=PATH" in helped


# ---- scripts/install-pi: the compiled sampler (setup.py, mypyc) ------------------------------

BUILD_PACKAGES = ("gcc", "libc6-dev", "python3-dev")
VENV_PY = "/opt/tracker/venv/bin/python"


def _dpkg_installed(pkg: str) -> bool | None:
    if shutil.which("dpkg-query") is None:
        return None
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                            text=True, check=False)  # fmt: skip
    return "install ok installed" in result.stdout


def test_install_pi_installs_what_compiles_the_sampler_and_may_do_without() -> None:
    out = _install("--dry-run").stdout
    steps = dict(re.findall(r"^\[(\d+)\] (.*)$", out, re.MULTILINE))
    assert steps["1"].endswith(" (to compile the sampler: " + " ".join(BUILD_PACKAGES) + ")")
    apt_lines = [line for line in out.splitlines() if "would run: apt-get install" in line]
    for pkg in BUILD_PACKAGES:
        installed = _dpkg_installed(pkg)
        if installed is False:
            # in their own apt-get call, whose failure is a warning, not the end of the install
            (line,) = [line for line in apt_lines if pkg in line.split()]
            assert not set(line.split()) & {"python3-venv", "bluez"}, line
        elif installed is True:
            assert not any(pkg in line.split() for line in apt_lines)
    assert f"would run: {VENV_PY} -m pip install --quiet --upgrade {REPO}" in out
    assert "TRACKER_PURE_PYTHON" not in out


def test_install_pi_pure_python_skips_the_compiler() -> None:
    result = _install("--dry-run", "--pure-python")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = re.findall(r"^\[(\d+)\] (.*)$", out, re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, 11))
    assert "compile" not in steps[0][1]
    assert not any(pkg in line.split() for line in out.splitlines() for pkg in BUILD_PACKAGES)
    assert "--pure-python: the sampler is not compiled" in out
    pip = [line for line in out.splitlines() if "pip install" in line]
    assert pip == [f"    would run: env TRACKER_PURE_PYTHON=1 {VENV_PY} -m pip install --quiet "
                   f"--upgrade {REPO}"]  # fmt: skip
    assert "--pure-python" in _install("--help").stdout
