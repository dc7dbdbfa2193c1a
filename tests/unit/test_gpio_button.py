"""The button through gpiozero's MockFactory: short/long presses, start-up queue, factory choice.

Presses are made the way the demo makes them: ``Device.pin_factory.pin(17).drive_low()`` /
``drive_high()``. Waits are on asyncio events with a generous safety timeout, never on sleeps.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from structlog.testing import capture_logs

from tracker.bike import gpio as gpio_mod
from tracker.bike.gpio import Hardware, _PressRouter, open_hardware, select_pin_factory
from tracker.bike.shutdown import SafeShutdown
from tracker.config import ButtonSettings, GpioSettings, LedSettings

SAFETY_S = 10.0  # only reached when something is broken


@pytest.fixture(autouse=True)
def clean_gpio(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No factory left over between tests, no env leaking in, and 'this is not a Pi'."""
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.delenv("GPIOZERO_MOCK_PIN_CLASS", raising=False)
    model = tmp_path / "model"
    model.write_text("Generic x86 test box\x00")
    monkeypatch.setattr(gpio_mod, "MODEL_FILES", (model,))
    monkeypatch.setattr(gpio_mod, "_said_once", set())
    Device.pin_factory = None
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()
    Device.pin_factory = None


@pytest.fixture
def mock_factory() -> MockFactory:
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    return Device.pin_factory


def _open(hold_time_s: float = 30.0, **button: Any) -> Hardware:
    hw = open_hardware(
        GpioSettings(), ButtonSettings(hold_time_s=hold_time_s, **button), LedSettings(),
        time_scale=0.01,
    )
    assert hw is not None
    return hw


def _press(pin: int = 17) -> None:
    p = Device.pin_factory.pin(pin)
    p.drive_low()
    p.drive_high()


class Recorder:
    """Callbacks that note (kind, thread) and wake the test."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.threads: set[int] = set()
        self.changed = asyncio.Event()

    def make(self, kind: str) -> Any:
        def callback() -> None:
            self.events.append(kind)
            self.threads.add(threading.get_ident())
            self.changed.set()

        return callback

    async def wait_for(self, count: int) -> list[str]:
        async with asyncio.timeout(SAFETY_S):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.events


async def test_short_press_calls_back_in_the_event_loop_thread(mock_factory: MockFactory) -> None:
    hw = _open()
    rec = Recorder()
    hw.on_short_press(rec.make("short"))
    hw.on_long_press(rec.make("long"))
    await asyncio.to_thread(_press)  # gpiozero's edge callback runs in another thread
    assert await rec.wait_for(1) == ["short"]
    assert rec.threads == {threading.get_ident()}
    hw.close()


async def test_presses_during_start_up_are_queued_then_delivered_in_order(
    mock_factory: MockFactory,
) -> None:
    hw = _open()
    _press()
    _press()
    await asyncio.sleep(0)
    rec = Recorder()
    assert rec.events == []
    hw.on_short_press(rec.make("short"))
    assert await rec.wait_for(2) == ["short", "short"]
    _press()
    assert await rec.wait_for(3) == ["short"] * 3
    hw.close()


async def test_long_press_fires_while_held_and_release_is_not_a_short_press(
    mock_factory: MockFactory,
) -> None:
    hw = _open(hold_time_s=0.05)
    rec = Recorder()
    hw.on_short_press(rec.make("short"))
    hw.on_long_press(rec.make("long"))
    pin = Device.pin_factory.pin(17)
    pin.drive_low()
    assert await rec.wait_for(1) == ["long"]  # still held: the rider gets feedback now
    pin.drive_high()
    await asyncio.sleep(0)
    assert hw.press_counts == {"short": 0, "long": 1}
    assert rec.events == ["long"]
    hw.close()


async def test_press_and_hold_sequence_drives_start_stop_and_safe_shutdown(
    mock_factory: MockFactory, tmp_path: Path
) -> None:
    """Short = start/stop the activity; long = flush then the (harmless) power-off command."""
    marker = tmp_path / "order.txt"
    recording = False
    log: list[str] = []

    async def flush() -> None:
        log.append("flush")
        marker.write_text("flushed\n")

    command = [sys.executable, "-c",
               f"open({str(marker)!r}, 'a').write('poweroff\\n')"]
    shutdown = SafeShutdown(command, flush=flush, require_service=False)
    done = asyncio.Event()
    hw = _open()

    def toggle() -> None:
        nonlocal recording
        recording = not recording
        log.append("start" if recording else "stop")
        done.set()

    async def long_press() -> None:
        hw.show_shutting_down()
        log.append(f"poweroff ok={await shutdown()}")
        done.set()

    hw.on_short_press(toggle)
    hw.on_long_press(lambda: asyncio.ensure_future(long_press()))

    for expected in (["start"], ["start", "stop"], ["start", "stop", "start"]):
        done.clear()
        _press()
        async with asyncio.timeout(SAFETY_S):
            await done.wait()
        assert log == expected

    hw._router.hold_time_s = 0.05  # a long press without a 3 s wait in the test
    pin = Device.pin_factory.pin(17)
    done.clear()
    pin.drive_low()
    async with asyncio.timeout(SAFETY_S):
        await done.wait()
    pin.drive_high()
    assert log == ["start", "stop", "start", "flush", "poweroff ok=True"]
    assert marker.read_text() == "flushed\npoweroff\n"  # the flush reached disk first
    assert Device.pin_factory.pin(27).state == 0  # LEDs dark: the long press was taken
    hw.close()


def test_a_hold_that_races_with_the_release_is_dropped() -> None:
    loop = asyncio.new_event_loop()
    try:
        router = _PressRouter(loop)
        router.pressed()
        router.released()
        router.held()  # the hold timer fired just as the button came up
        assert router.counts == {"short": 1, "long": 0}
        router.pressed()
        router.held()
        router.held()
        router.released()
        assert router.counts == {"short": 1, "long": 1}
        router.released()  # a release with no press (button held at start-up, etc.)
        assert router.counts == {"short": 1, "long": 1}
    finally:
        loop.close()


def test_button_uses_pull_up_and_gpiozero_debounce(mock_factory: MockFactory) -> None:
    hw = _open(bounce_time_s=0.05, pin=5)
    pin = Device.pin_factory.pin(5)
    assert pin.pull == "up"
    assert pin.bounce == pytest.approx(0.05)  # the pin driver debounces (lgpio: in the kernel)
    assert hw._router.hold_time_s == 30.0
    hw.close()


def test_registering_outside_an_event_loop_without_a_loop_is_refused(
    mock_factory: MockFactory,
) -> None:
    hw = _open()
    with pytest.raises(RuntimeError, match="event loop"):
        hw.on_short_press(lambda: None)
    hw.close()


class HeldDownPin(MockPWMPin):
    """A pin whose button is already pressed: the pull-up cannot lift it (the mock's normally
    would, which is why the stock MockPin cannot show this)."""

    def _set_pull(self, value: str) -> None:
        self._pull = value


async def test_a_button_held_at_start_up_counts_when_released(mock_factory: MockFactory) -> None:
    held = mock_factory.pin(17, pin_class=HeldDownPin)
    held.drive_low()
    hw = _open()
    assert hw._button.is_active  # pressed (pulled low)
    rec = Recorder()
    hw.on_short_press(rec.make("short"))
    mock_factory.pin(17).drive_high()
    assert await rec.wait_for(1) == ["short"]
    hw.close()


def test_not_a_pi_and_not_configured_runs_without_gpio_and_says_so_once() -> None:
    with capture_logs() as logs:
        assert open_hardware(GpioSettings(), ButtonSettings(), LedSettings()) is None
        assert open_hardware(GpioSettings(), ButtonSettings(), LedSettings()) is None
    notices = [e for e in logs if "not a Raspberry Pi" in e["event"]]
    assert len(notices) == 1
    assert Device.pin_factory is None


def test_pin_factory_none_in_config_disables_gpio() -> None:
    with capture_logs() as logs:
        assert select_pin_factory(GpioSettings(pin_factory="none")) is None
    assert any("GPIO disabled" in e["event"] for e in logs)


async def test_config_mock_factory_is_what_the_demo_drives() -> None:
    """[gpio] pin_factory = "mock": gpiozero's registered MockFactory, PWM-capable, global."""
    hw = open_hardware(
        GpioSettings(pin_factory="mock"), ButtonSettings(), LedSettings(), time_scale=0.01
    )
    assert hw is not None
    assert isinstance(Device.pin_factory, MockFactory)
    assert hw.factory is Device.pin_factory
    assert hw.pwm
    rec = Recorder()
    hw.on_short_press(rec.make("short"))
    Device.pin_factory.pin(17).drive_low()
    Device.pin_factory.pin(17).drive_high()
    assert await rec.wait_for(1) == ["short"]
    hw.close()


def test_gpiozero_env_variable_is_honoured_in_auto_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")  # plain MockPin: no PWM
    hw = open_hardware(GpioSettings(), ButtonSettings(), LedSettings(), time_scale=0.01)
    assert hw is not None
    assert isinstance(hw.factory, MockFactory)
    assert not hw.pwm  # LEDs fall back to on/off LED devices
    hw.close()


def test_on_a_pi_gpiozero_picks_its_default_and_a_failure_is_said_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = tmp_path / "pi-model"
    model.write_text("Raspberry Pi Zero 2 W Rev 1.0\x00")
    monkeypatch.setattr(gpio_mod, "MODEL_FILES", (model,))
    assert gpio_mod.is_raspberry_pi()
    picked: list[str] = []

    def fake_default() -> Any:
        picked.append("default")
        return MockFactory()

    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(fake_default))
    assert isinstance(select_pin_factory(GpioSettings()), MockFactory)
    assert picked == ["default"]  # gpiozero's own choice (lgpio first on a real Pi)

    Device.pin_factory.close()
    Device.pin_factory = None

    def broken() -> Any:
        raise OSError("no /dev/gpiochip0")

    monkeypatch.setattr(Device, "_default_pin_factory", staticmethod(broken))
    with capture_logs() as logs:
        assert select_pin_factory(GpioSettings()) is None
        assert select_pin_factory(GpioSettings()) is None
    assert [e["event"] for e in logs] == [
        "GPIO pin factory unavailable: running without button and LEDs"
    ]
    assert "gpiochip0" in logs[0]["error"]


def test_a_pin_conflict_is_reported_and_gpio_is_skipped(mock_factory: MockFactory) -> None:
    with capture_logs() as logs:
        hw = open_hardware(
            GpioSettings(), ButtonSettings(pin=27), LedSettings(status_pin=27)
        )
    assert hw is None
    assert any("could not open the button/LED pins" in e["event"] for e in logs)
    again = _open()  # nothing stayed reserved
    again.close()


def test_close_releases_the_pins(mock_factory: MockFactory) -> None:
    hw = _open()
    hw.close()
    hw.close()
    _open().close()


def test_button_disabled_still_gives_leds(mock_factory: MockFactory) -> None:
    hw = open_hardware(GpioSettings(), ButtonSettings(enabled=False), LedSettings())
    assert hw is not None
    assert not hw.has_button
    assert hw.status_led is not None
    hw.close()
    both_off = open_hardware(
        GpioSettings(), ButtonSettings(enabled=False), LedSettings(enabled=False)
    )
    assert both_off is None


async def test_an_idle_button_runs_no_thread_and_a_press_one_timer(
    mock_factory: MockFactory,
) -> None:
    # gpiozero's Button runs a HoldThread that wakes ten times a second for ever (1.3 ms of CPU
    # a second measured): the button here is edge callbacks only, plus one waiting timer
    # while it is held.
    before = set(threading.enumerate())
    hw = _open(hold_time_s=30.0)
    assert [t.name for t in threading.enumerate() if t not in before] == []
    pin = Device.pin_factory.pin(17)
    pin.drive_low()
    held = [t for t in threading.enumerate() if t not in before]
    assert [t.name for t in held] == ["tracker-button-hold"]
    pin.drive_high()
    held[0].join(timeout=SAFETY_S)
    assert not held[0].is_alive()  # the release cancelled it
    assert [t.name for t in threading.enumerate() if t not in before] == []
    hw.close()
