"""Fault settings: how badly the emulator misbehaves, and the seeded dice that decide each request.

A fault spec is what a human types (``"latency=0.2,error_rate=0.1,seed=7"``) or what a test posts
as JSON to ``/_emulator/faults``; both end up merged into one :class:`FaultSettings`. Every random
choice comes from one ``random.Random`` seeded with ``seed``, so a run is repeatable: the same
sequence of requests meets the same sequence of faults.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

#: HTTP statuses an ``error_rate`` fault answers with (chosen at random, seeded).
ERROR_STATUSES = (500, 502, 503)


class FaultError(ValueError):
    """A fault spec or JSON object names an unknown fault or an impossible value."""


class Action(Enum):
    """What the fault dice decided for one request."""

    PASS = "pass"  # noqa: S105 - not a password
    ERROR = "error"  # answer 500/502/503 without applying
    DROP = "drop"  # close the connection before applying
    LOST_REPLY = "lost_reply"  # apply, then close the connection with no reply


@dataclass(frozen=True)
class FaultSettings:
    """The current misbehaviour. All rates are probabilities per request, 0..1."""

    latency: float = 0.0  # seconds before each /api3/ request is handled
    error_rate: float = 0.0
    drop_rate: float = 0.0
    lost_reply_rate: float = 0.0
    down: bool = False  # every /api3/ connection closed at once with no reply
    token_ttl: int | None = None  # access-token lifetime for new tokens (None: the default)
    # A front end's body size limit (nginx's client_max_body_size): a larger request gets HTTP
    # 413 and is not applied. None: no limit beyond the server's own.
    max_body: int | None = None
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def merged(self, changes: Mapping[str, Any]) -> FaultSettings:
        """These settings with ``changes`` applied, after checking every key and value."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise FaultError(
                f"unknown fault {', '.join(unknown)} (known: {', '.join(sorted(fields))})"
            )
        values = self.as_dict()
        for key, raw in changes.items():
            values[key] = _coerce(key, raw)
        total = values["error_rate"] + values["drop_rate"] + values["lost_reply_rate"]
        if total > 1.0 + 1e-9:
            raise FaultError(
                f"error_rate + drop_rate + lost_reply_rate must be at most 1, got {total:g}"
            )
        return FaultSettings(**values)


def _coerce(key: str, raw: Any) -> Any:
    if key == "down":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no",
                                                    "off"):
            return raw.lower() in ("1", "true", "yes", "on")
        raise FaultError(f"down must be true or false, got {raw!r}")
    if key in ("token_ttl", "seed", "max_body"):
        if raw is None or (isinstance(raw, str) and raw.lower() in ("", "none", "null")):
            return None
        value = _number(key, raw)
        if value != int(value):
            raise FaultError(f"{key} must be a whole number, got {raw!r}")
        if key == "token_ttl" and value < 1:
            raise FaultError(f"token_ttl must be at least 1 second, got {raw!r}")
        if key == "max_body" and value < 1:
            raise FaultError(f"max_body must be at least 1 byte, got {raw!r}")
        return int(value)
    value = _number(key, raw)
    if key == "latency":
        if not 0.0 <= value <= 600.0:
            raise FaultError(f"latency must be between 0 and 600 seconds, got {raw!r}")
        return value
    if not 0.0 <= value <= 1.0:
        raise FaultError(f"{key} must be a probability between 0 and 1, got {raw!r}")
    return value


def _number(key: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise FaultError(f"{key} must be a number, got {raw!r}")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    raise FaultError(f"{key} must be a number, got {raw!r}")


def parse_fault_spec(spec: str) -> dict[str, Any]:
    """``"latency=0.2,error_rate=0.1"`` → ``{"latency": "0.2", "error_rate": "0.1"}``.

    Values stay strings here; :meth:`FaultSettings.merged` checks and converts them, so a spec
    and a JSON object are validated by the same code.
    """
    changes: dict[str, Any] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise FaultError(f"fault {part!r} is not NAME=VALUE")
        changes[key.strip()] = value.strip()
    return changes


def faults_from(spec: str | Mapping[str, Any] | None) -> FaultSettings:
    """Settings from a spec string, a mapping, or nothing (no faults)."""
    if spec is None:
        return FaultSettings()
    changes = parse_fault_spec(spec) if isinstance(spec, str) else dict(spec)
    return FaultSettings().merged(changes)


class FaultDice:
    """The seeded random source that turns settings into one :class:`Action` per request."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._random = random.Random(settings.seed)

    def update(self, settings: FaultSettings) -> None:
        """Switch settings; a newly given seed restarts the random sequence."""
        reseed = settings.seed != self.settings.seed
        self.settings = settings
        if reseed:
            self._random = random.Random(settings.seed)

    def roll(self) -> tuple[Action, int]:
        """One decision: the action and, for ERROR, the status to answer with."""
        s = self.settings
        if s.error_rate == s.drop_rate == s.lost_reply_rate == 0.0:
            return Action.PASS, 200
        r = self._random.random()
        if r < s.error_rate:
            return Action.ERROR, self._random.choice(ERROR_STATUSES)
        if r < s.error_rate + s.drop_rate:
            return Action.DROP, 0
        if r < s.error_rate + s.drop_rate + s.lost_reply_rate:
            return Action.LOST_REPLY, 0
        return Action.PASS, 200
