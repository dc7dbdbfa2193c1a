"""TOML configuration → typed, frozen settings objects.

Every setting has a default, so the tracker runs with no file at all. A file is looked up in
``--config PATH``, then ``$TRACKER_CONFIG``, then ``/etc/tracker/config.toml``, then the user
config dir (platformdirs). A bad file is reported with one line per problem, naming the file, the
key, what was wrong and what is allowed, and the CLI exits with code 2.

Validation is driven by the dataclass type hints below, plus a little ``metadata`` (``min``,
``max``, ``choices``), so adding a setting means adding one annotated field and nothing else.
Numbers must be finite: TOML allows ``nan`` and ``inf``, and either one slips past every bound
(``nan < 1`` is false) to freeze a timer or break a computation much later. Rules that span keys
(one GPIO pin per role, a replay file that exists, an https API) are checked here too, so
``--print-config`` finds every problem that ``tracker run`` would stop on.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from tracker.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/tracker/config.toml")
PRODUCTION_API = "https://www.mapmytracks.com/api3"

# The activity types the v3 contract documents (lower case).
ACTIVITY_TYPES = (
    "canoeing", "cross country skiing", "cycling", "driving", "enduro", "flying", "gliding",
    "hand cycling", "hang gliding", "hiking", "horse riding", "hot air ballooning",
    "indoor cycling", "inline skating", "jet skiing", "kayaking", "kiteboarding", "miscellaneous",
    "motor racing", "motorcycling", "mountain biking", "mountaineering", "nordic walking",
    "off road driving", "orienteering", "paragliding", "powerboating", "rowing", "running",
    "sailing", "sea kayaking", "snowshoeing", "skateboarding", "skating", "skiing",
    "snowboarding", "stand up paddle boarding", "swimming", "walking", "wheelchair",
    "windsurfing",
)  # fmt: skip

# Keys whose values are masked wherever settings are printed or logged.
SECRET_KEYS = frozenset({"client_secret"})


def _opt(default: Any, *, secret: bool = False, **meta: Any) -> Any:
    """A field with validation metadata (min, max, choices) next to its default."""
    if isinstance(default, list | tuple):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata={"secret": secret, **meta})
    return field(default=default, metadata={"secret": secret, **meta})


@dataclass(frozen=True)
class GpsSettings:
    """Where fixes come from."""

    source: Literal["serial", "gpsd", "replay"] = "serial"
    device: str = "auto"  # "auto" or a path such as /dev/gps0
    baud: int | Literal["auto"] = _opt("auto", choices=(4800, 9600, 19200, 38400, 57600, 115200))
    replay_file: str = ""
    replay_speed: float = _opt(1.0, min=0.0)  # 0 = as fast as possible
    gpsd_host: str = "127.0.0.1"
    gpsd_port: int = _opt(2947, min=1, max=65535)
    # A receiver that lost count of GPS weeks (10-bit rollover) reports dates 1024 weeks early:
    # a date before this floor is moved forward. "auto" = 2025-01-01 for a live receiver and
    # off for replay files; "off" keeps every date (e.g. an old log played through a pty);
    # or an ISO date such as "2026-01-01".
    week_rollover_floor: str = _opt("auto", iso_date_or=("auto", "off"))
    # A live receiver's fix times are checked against the system clock while the kernel says
    # it is synchronised (NTP, chrony): "auto". "ignore" for an old log played through a pty
    # (the demo, tests), whose times are years from now by design.
    system_clock: Literal["auto", "ignore"] = "auto"


@dataclass(frozen=True)
class FilterSettings:
    """Which fixes are not trusted as positions."""

    max_hdop: float = _opt(10.0, min=0.0)
    max_speed_mps: float = _opt(90.0, min=1.0)  # faster than this between fixes = an outlier


@dataclass(frozen=True)
class ApiSettings:
    """The Map My Tracks API and this installation's OAuth client."""

    base_url: str = PRODUCTION_API
    client_id: str = ""
    client_secret: str = _opt("", secret=True)
    redirect_port: int = _opt(8765, min=1, max=65535)
    timeout_s: float = _opt(30.0, min=1.0)


@dataclass(frozen=True)
class ActivitySettings:
    """How new activities are created."""

    type: str = _opt("cycling", choices=ACTIVITY_TYPES)
    status: Literal["public", "private"] = "private"
    title_prefix: str = "Ride"
    tags: tuple[str, ...] = _opt(())
    autostart: bool = False


@dataclass(frozen=True)
class SamplerSettings:
    """The error and delay bounds of the online thinning."""

    max_error_m: float = _opt(10.0, min=0.5, max=1000.0)
    max_delay_s: int = _opt(60, min=1, max=3600)


@dataclass(frozen=True)
class UplinkSettings:
    """How points are sent."""

    batch_interval_s: float = _opt(10.0, min=0.01, max=3600.0)
    max_batch_points: int = _opt(500, min=1, max=10000)
    max_backoff_s: float = _opt(300.0, min=1.0)
    drain_interval_s: float = _opt(1.0, min=0.0)  # pause between backlog batches after an outage


@dataclass(frozen=True)
class StorageSettings:
    """Where the outbox, tokens and status socket live, and how much they may keep."""

    data_dir: str = ""  # "" = the platform's user data dir (e.g. ~/.local/share/tracker)
    keep_days: float = _opt(30.0, min=0.0)
    max_mb: float = _opt(200.0, min=1.0)

    def resolved_data_dir(self) -> Path:
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        from platformdirs import user_data_dir

        return Path(user_data_dir("tracker", appauthor=False))


@dataclass(frozen=True)
class GpioSettings:
    """Which gpiozero pin factory drives the button and LEDs."""

    pin_factory: Literal["auto", "lgpio", "rpigpio", "native", "mock", "none"] = "auto"


@dataclass(frozen=True)
class ButtonSettings:
    """The rider's one push button (BCM numbering, wired to ground, internal pull-up)."""

    enabled: bool = True
    pin: int = _opt(17, min=0, max=27)
    hold_time_s: float = _opt(3.0, min=0.5, max=30.0)
    bounce_time_s: float = _opt(0.05, min=0.0, max=1.0)
    long_press: Literal["shutdown", "upload", "none"] = "shutdown"
    # What "shutdown" runs after the outbox is flushed; only ever run under the systemd service.
    shutdown_command: tuple[str, ...] = _opt(("systemctl", "poweroff"))


@dataclass(frozen=True)
class LedSettings:
    """Status LEDs (BCM numbering, through a resistor to ground)."""

    enabled: bool = True
    status_pin: int = _opt(27, min=0, max=27)
    link_pin: int = _opt(22, min=-1, max=27)  # -1 = no second LED


@dataclass(frozen=True)
class HeartRateSettings:
    """An optional Bluetooth LE heart-rate strap."""

    enabled: bool = False
    device: str = "auto"  # a BLE address, a name, or "auto"


@dataclass(frozen=True)
class LogSettings:
    """Logging: human-readable on a terminal, JSON lines for journald."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    json: bool = False


@dataclass(frozen=True)
class Settings:
    """All settings. ``source`` names the file they came from (None = built-in defaults)."""

    gps: GpsSettings = field(default_factory=GpsSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    activity: ActivitySettings = field(default_factory=ActivitySettings)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    uplink: UplinkSettings = field(default_factory=UplinkSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    button: ButtonSettings = field(default_factory=ButtonSettings)
    leds: LedSettings = field(default_factory=LedSettings)
    heart_rate: HeartRateSettings = field(default_factory=HeartRateSettings)
    log: LogSettings = field(default_factory=LogSettings)
    source: str | None = field(default=None, compare=False)

    def replace(self, section: str, **changes: Any) -> Settings:
        """A copy with some keys of one section changed (used by the demo and tests)."""
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **changes)})

    def to_dict(self, *, mask_secrets: bool = True) -> dict[str, dict[str, Any]]:
        """The effective settings as plain data, secrets masked unless asked otherwise."""
        out: dict[str, dict[str, Any]] = {}
        for sec in dataclasses.fields(self):
            if sec.name == "source":
                continue
            obj = getattr(self, sec.name)
            values: dict[str, Any] = {}
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if mask_secrets and f.metadata.get("secret") and value:
                    value = "***"
                values[f.name] = list(value) if isinstance(value, tuple) else value
            out[sec.name] = values
        return out


def find_config_file(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The file to read, in lookup order; None when there is none (defaults apply).

    An explicit ``--config`` or ``$TRACKER_CONFIG`` that does not exist is an error: the user
    asked for that file. The system and user locations are optional.
    """
    for asked in (explicit, os.environ.get("TRACKER_CONFIG") or None):
        if asked is not None:
            path = Path(asked).expanduser()
            if not path.is_file():
                raise ConfigError(f"{path}: no such config file")
            return path
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG
    from platformdirs import user_config_dir

    user = Path(user_config_dir("tracker", appauthor=False)) / "config.toml"
    return user if user.is_file() else None


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    """Find, read and validate the configuration. Raises ConfigError listing every problem."""
    path = find_config_file(explicit)
    if path is None:
        return Settings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    return settings_from_mapping(raw, source=str(path))


def settings_from_mapping(raw: dict[str, Any], *, source: str = "<config>") -> Settings:
    """Validate a parsed TOML document into Settings; every problem is collected first."""
    problems: list[str] = []
    sections: dict[str, Any] = {}
    section_fields = {f.name: f for f in dataclasses.fields(Settings) if f.name != "source"}
    for name, value in raw.items():
        if name not in section_fields:
            problems.append(
                f"{source}: [{name}]: unknown section; allowed: {', '.join(section_fields)}"
            )
            continue
        if not isinstance(value, dict):
            problems.append(f"{source}: {name}: must be a [{name}] table, got {_show(value)}")
            continue
        cls = _section_class(name)
        sections[name] = _build_section(cls, name, value, source, problems)
    if problems:
        raise ConfigError(problems)
    settings = Settings(**sections, source=source)
    problems = settings_problems(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def settings_problems(settings: Settings) -> list[str]:
    """The rules that span keys, one line per problem (empty when all is well).

    Each of these would otherwise surface only once the service runs: a task that restarts
    forever on a missing replay file, two gpiozero devices fighting over one pin.
    """
    where = settings.source or "<config>"
    problems: list[str] = []
    gps = settings.gps
    if gps.source == "replay":
        if not gps.replay_file:
            problems.append(f'{where}: [gps] replay_file: empty; source = "replay" needs '
                            'replay_file = "PATH" (a recorded NMEA log)')  # fmt: skip
        elif not Path(gps.replay_file).expanduser().is_file():
            problems.append(f"{where}: [gps] replay_file: {gps.replay_file!r}: no such file "
                            '(source = "replay" plays it)')  # fmt: skip
    problems += [f"{where}: {p}" for p in _pin_conflicts(settings)]
    url_problem = base_url_problem(settings.api.base_url)
    if url_problem:
        problems.append(f"{where}: [api] base_url: {url_problem}")
    hr = settings.heart_rate
    if hr.enabled:
        device = hr.device.strip()
        if not device:
            problems.append(f'{where}: [heart_rate] device: empty; use "auto", a BLE address '
                            "or a name")  # fmt: skip
        elif device.startswith("replay:"):
            path = Path(device.removeprefix("replay:")).expanduser()
            if not path.is_file():
                problems.append(f"{where}: [heart_rate] device: {str(path)!r}: no such file")
    return problems


def _pin_conflicts(settings: Settings) -> list[str]:
    """Two roles on one GPIO pin: gpiozero would refuse the second, or both would misbehave."""
    roles: list[tuple[str, int]] = []
    if settings.button.enabled:
        roles.append(("[button] pin", settings.button.pin))
    if settings.leds.enabled:
        roles.append(("[leds] status_pin", settings.leds.status_pin))
        if settings.leds.link_pin >= 0:
            roles.append(("[leds] link_pin", settings.leds.link_pin))
    problems: list[str] = []
    seen: dict[int, str] = {}
    for role, pin in roles:
        if pin in seen:
            problems.append(f"{role}: GPIO {pin} is already {seen[pin]}; each role needs its "
                            "own pin")  # fmt: skip
        else:
            seen[pin] = role
    return problems


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_problem(base_url: str) -> str:
    """Why ``base_url`` may not carry tokens ("" when it may): https, or http on loopback only."""
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
    except ValueError as exc:
        return f"{base_url!r} is not a URL: {exc}"
    if parts.scheme == "https" and host:
        return ""
    if parts.scheme == "http" and _is_loopback(host):
        return ""
    return (f"{base_url!r}: must be https:// (plain http:// is allowed only for loopback "
            "addresses: 127.0.0.0/8, ::1, localhost)")  # fmt: skip


def _section_class(name: str) -> type[Any]:
    hints = typing.get_type_hints(Settings)
    cls = hints[name]
    assert isinstance(cls, type)
    return cls


def _build_section(
    cls: type[Any], section: str, values: dict[str, Any], source: str, problems: list[str]
) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{source}: [{section}] {key}"
        if key not in fields:
            problems.append(f"{where}: unknown key; allowed: {', '.join(fields)}")
            continue
        meta = fields[key].metadata
        error, converted = _check_value(value, hints[key], meta)
        if error:
            problems.append(f"{where}: {error}")
        else:
            kwargs[key] = converted
    return cls(**kwargs)


def _check_value(value: Any, hint: Any, meta: typing.Mapping[str, Any]) -> tuple[str, Any]:
    """Return (problem, converted value); problem is "" when the value is fine."""
    options = _union_members(hint)
    tried: list[str] = []
    for option in options:
        ok, converted, expected = _match(value, option)
        tried.append(expected)
        if ok:
            problem = _check_bounds(converted, meta)
            return (problem, converted) if problem else ("", converted)
    return f"expected {' or '.join(tried)}, got {_show(value)}", None


def _union_members(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return list(typing.get_args(hint))
    return [hint]


def _match(value: Any, option: Any) -> tuple[bool, Any, str]:
    origin = typing.get_origin(option)
    if origin is Literal:
        allowed = typing.get_args(option)
        shown = " | ".join(f'"{a}"' for a in allowed)
        return value in allowed and isinstance(value, str), value, f"one of {shown}"
    if origin is tuple:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, tuple(value) if ok else None, "a list of strings"
    if option is bool:
        return isinstance(value, bool), value, "true or false"
    if option is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return ok, value, "a whole number"
    if option is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else None, "a number"
    if option is str:
        return isinstance(value, str), value, "a string"
    return False, None, str(option)  # pragma: no cover - a type this loader does not know


def _check_bounds(value: Any, meta: typing.Mapping[str, Any]) -> str:
    choices: tuple[Any, ...] = tuple(meta.get("choices") or ())
    # Choices constrain values of their own kind only: baud's numbers say nothing of "auto".
    same_kind = any(type(c) is type(value) for c in choices)
    if same_kind and value not in choices:
        return f"{value!r} is not allowed; allowed: {', '.join(map(str, choices))}"
    keywords = meta.get("iso_date_or")
    if keywords is not None and value not in keywords:
        try:
            date.fromisoformat(value)
        except ValueError:
            shown = ", ".join(f'"{k}"' for k in keywords)
            return f"{value!r} is not allowed; allowed: {shown} or a date like \"2025-01-01\""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not allowed; allowed: a finite number"
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = meta.get("min"), meta.get("max")
        if low is not None and value < low:
            return f"{value} is too small; allowed: {low} or more"
        if high is not None and value > high:
            return f"{value} is too large; allowed: {high} or less"
    return ""


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
