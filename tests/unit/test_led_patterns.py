"""The DeviceState → LED pattern table (pure) and its playing on gpiozero MockFactory pins."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from tracker.bike import led_patterns
from tracker.bike.device_state import DeviceState
from tracker.bike.gpio import Hardware, open_hardware
from tracker.bike.led_patterns import (
    LINK_PATTERNS,
    OFF,
    STATUS_PATTERNS,
    LedPattern,
    link_pattern,
    pattern_table,
    status_pattern,
)
from tracker.config import ButtonSettings, GpioSettings, LedSettings

REPO = Path(__file__).resolve().parents[2]
SAFETY_S = 10.0


# ---- the pure table -------------------------------------------------------------------------


def test_every_state_has_a_status_pattern() -> None:
    assert set(STATUS_PATTERNS) == set(DeviceState)
    for state in DeviceState:
        assert isinstance(status_pattern(state), LedPattern)


@pytest.mark.parametrize("plain", [False, True], ids=["pwm", "plain-led"])
def test_every_state_looks_different(plain: bool) -> None:
    """At a glance means: no two states share a rhythm, with or without PWM."""
    seen: dict[tuple[tuple[float, float], ...], DeviceState] = {}
    for state in DeviceState:
        pattern = status_pattern(state)
        if plain:
            pattern = pattern.for_plain_led()
        key = pattern.steps()
        assert key not in seen, f"{state} looks like {seen.get(key)}"
        seen[key] = state
    assert OFF.steps() not in seen  # dark means "shutting down" only


@pytest.mark.parametrize("pattern", [*STATUS_PATTERNS.values(), *LINK_PATTERNS.values(), OFF])
def test_steps_cover_one_period_with_valid_levels(pattern: LedPattern) -> None:
    steps = pattern.steps()
    assert all(0.0 <= level <= 1.0 and seconds > 0 for level, seconds in steps)
    assert sum(s for _, s in steps) == pytest.approx(pattern.period_s)
    assert all(a[0] != b[0] for a, b in itertools.pairwise(steps))  # merged


def test_the_documented_rhythms() -> None:
    # Riding live, the state of the ride's hours, wakes nothing (issue 17).
    assert STATUS_PATTERNS[DeviceState.RECORDING_LIVE].steady_level == 1.0
    assert status_pattern(DeviceState.SEARCHING).steps() == ((1.0, 0.5), (0.0, 0.5))
    flat = [x for step in status_pattern(DeviceState.LOGIN_NEEDED).steps() for x in step]
    assert flat == pytest.approx([1.0, 0.15, 0.0, 0.15, 1.0, 0.15, 0.0, 0.15 + 1.2])
    assert status_pattern(DeviceState.ERROR).period_s == pytest.approx(0.2)
    pulse = status_pattern(DeviceState.IDLE_FIX)
    # Two levels, each held a second: one change a second, no 25 Hz fade (issue 17).
    assert pulse.steps() == ((1.0, 1.0), (0.15, 1.0))
    assert not pulse.is_simple_blink  # blink() has no dim level: tracker's player plays it
    assert pulse.for_plain_led().steps() == ((1.0, 1.0), (0.0, 1.0))


def test_link_led() -> None:
    assert link_pattern(DeviceState.RECORDING_LIVE).steady_level == 1.0
    assert link_pattern(DeviceState.RECORDING_OFFLINE).steady_level is None
    for state in set(DeviceState) - {DeviceState.RECORDING_LIVE, DeviceState.RECORDING_OFFLINE}:
        assert link_pattern(state) is OFF


def test_bad_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="flashes"):
        LedPattern("x", on_s=-1.0)
    with pytest.raises(ValueError, match="flashes"):
        LedPattern("x", on_s=1.0, flashes=0)
    with pytest.raises(ValueError, match="low"):
        LedPattern("x", on_s=1.0, off_s=1.0, low=1.0)


def test_docs_show_every_pattern() -> None:
    """The module table, the troubleshooting table and the code agree."""
    doc = led_patterns.__doc__ or ""
    guide = (REPO / "docs" / "raspberry-pi.md").read_text(encoding="utf-8")
    for state, status_name, _link in pattern_table():
        assert state.upper() in doc
        assert status_name in guide, f"docs/raspberry-pi.md lacks {status_name!r} ({state})"


# ---- played on MockFactory pins -------------------------------------------------------------


class _Notifying:
    """Mixin for mock pins: wake a waiting test on every recorded level change."""

    states: list[Any]
    _changed: threading.Condition

    def _change_state(self, value: Any) -> bool:
        if not hasattr(self, "_changed"):
            self._changed = threading.Condition()
        with self._changed:
            changed: bool = super()._change_state(value)  # type: ignore[misc]
            self._changed.notify_all()
        return changed

    def wait_for_states(self, count: int, timeout: float) -> None:
        if not hasattr(self, "_changed"):
            self._changed = threading.Condition()
        with self._changed:
            self._changed.wait_for(lambda: len(self.states) >= count, timeout)


class NotifyingPWMPin(_Notifying, MockPWMPin):
    pass


class NotifyingPin(_Notifying, MockPin):
    pass


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    Device.pin_factory = MockFactory(pin_class=NotifyingPWMPin)
    yield Device.pin_factory
    Device.pin_factory.close()
    Device.pin_factory = None


def _expected_levels(pattern: LedPattern, start: float, count: int) -> list[float]:
    """The level changes a pin starting at ``start`` goes through while the pattern repeats."""
    levels = [level for level, _ in pattern.steps()]
    out: list[float] = []
    last = start
    while len(out) < count:
        for level in levels:
            if abs(level - last) > 1e-9:
                out.append(level)
                last = level
    return out[:count]


async def _observed_levels(pin: Any, count: int) -> list[float]:
    await asyncio.to_thread(pin.wait_for_states, count + 1, SAFETY_S)
    return [float(s.state) for s in pin.states[1 : count + 1]]


def _hardware(time_scale: float) -> Hardware:
    hw = open_hardware(
        GpioSettings(), ButtonSettings(), LedSettings(), time_scale=time_scale
    )
    assert hw is not None
    return hw


@pytest.mark.parametrize("state", list(DeviceState), ids=lambda s: s.value)
async def test_each_state_plays_its_pattern_on_the_status_pin(
    factory: MockFactory, state: DeviceState
) -> None:
    pattern = status_pattern(state)
    # Fast for on/off rhythms; real time for fades, whose steps are fixed at 25 per second.
    hw = _hardware(time_scale=1.0 if pattern.uses_fade else 0.02)
    pin = factory.pin(27)
    start = float(pin.state)
    pin.clear_states()
    hw.show(state)
    if pattern.steady_level is not None:
        assert pin.state == pattern.steady_level
    else:
        count = 12
        got = await _observed_levels(pin, count)
        assert got == pytest.approx(_expected_levels(pattern, start, count), abs=1e-6)
    hw.close()
    assert pin.state == 0  # closing leaves the LED dark


@pytest.mark.parametrize(
    "state", [DeviceState.RECORDING_LIVE, DeviceState.RECORDING_OFFLINE, DeviceState.SEARCHING]
)
async def test_link_led_follows_the_upload_state(factory: MockFactory, state: DeviceState) -> None:
    hw = _hardware(time_scale=0.02)
    pin = factory.pin(22)
    pin.clear_states()
    hw.show(state)
    pattern = link_pattern(state)
    if pattern.steady_level is not None:
        assert pin.state == pattern.steady_level
    else:
        got = await _observed_levels(pin, 6)
        assert got == _expected_levels(pattern, 0.0, 6)
    hw.close()


async def test_plain_leds_without_pwm_play_the_plain_rhythm() -> None:
    Device.pin_factory = MockFactory(pin_class=NotifyingPin)  # no PWM
    try:
        hw = _hardware(time_scale=0.02)
        assert not hw.pwm
        pin = Device.pin_factory.pin(27)
        for state in (DeviceState.IDLE_FIX, DeviceState.LOGIN_NEEDED):
            pin.clear_states()
            start = float(pin.state)
            hw.show(state)
            got = await _observed_levels(pin, 6)
            want = _expected_levels(status_pattern(state).for_plain_led(), start, 6)
            assert got == want
        hw.close()
    finally:
        Device.pin_factory.close()
        Device.pin_factory = None


async def test_showing_the_same_state_again_does_not_restart_the_pattern(
    factory: MockFactory,
) -> None:
    hw = _hardware(time_scale=1000.0)  # the first "on" lasts 500 s: nothing else can toggle it
    pin = factory.pin(27)
    pin.clear_states()
    hw.show(DeviceState.SEARCHING)
    assert await _observed_levels(pin, 1) == [1.0]  # blink() starts with "on"
    for _ in range(50):
        hw.show(DeviceState.SEARCHING)
    assert len(pin.states) == 2  # still the one change: no restart, no flicker
    hw.show(DeviceState.IDLE_FIX)
    assert hw.state is DeviceState.IDLE_FIX
    assert pin.state == 1
    hw.show_shutting_down()
    assert pin.state == 0
    assert factory.pin(22).state == 0
    hw.show(DeviceState.RECORDING_LIVE)  # the engine's state task keeps running while it flushes
    assert hw.state is DeviceState.RECORDING_LIVE
    assert pin.state == 0  # still dark
    assert factory.pin(22).state == 0
    hw.close()
