"""The rider's button and status LEDs, through gpiozero.

Why it looks like this:

* **Pin factory by gpiozero's own mechanism.** ``[gpio] pin_factory`` names one of gpiozero's
  registered factories (entry point group ``gpiozero_pin_factories``: lgpio, rpigpio, native,
  mock). ``auto`` keeps a factory someone already set (``Device.pin_factory``, as the demo and
  the tests do), else honours ``GPIOZERO_PIN_FACTORY``, else lets gpiozero pick its default
  (lgpio first) when this is a Raspberry Pi. Not a Pi and nothing configured: no button, no
  LEDs, one log line saying so, and the tracker runs on.
* **Callbacks in the event loop.** gpiozero calls from its own thread (the pin's edge thread),
  the hold timer from its own. Every press is handed to the asyncio loop with
  ``call_soon_threadsafe``, so the engine's handlers never need a lock.
* **Presses during start-up are not lost.** The button is live as soon as :func:`open_hardware`
  returns; a press that arrives before the engine registered its handler waits in a small
  queue and is delivered, in order, when the handler is registered.
* **Short vs long.** A long press fires when the button has been held ``hold_time_s`` (while
  still held, so the LED can acknowledge it); a short press fires on release if no long press
  fired. Debouncing is gpiozero's ``bounce_time``, done by the pin driver (lgpio programs the
  kernel's debounce filter).
* **No polling.** The button is a plain ``DigitalInputDevice`` (edge callbacks only) and the
  hold is a one-shot timer started by the press. gpiozero's ``Button`` would start its
  ``HoldThread``, which wakes ten times a second for as long as the program runs, pressed or
  not: 1.3 ms of CPU a second here, more than recording a 1 Hz ride (issue 17).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from tracker.bike.device_state import DeviceState
from tracker.bike.led_patterns import (
    SHUTTING_DOWN,
    LedPattern,
    link_pattern,
    status_pattern,
)
from tracker.config import ButtonSettings, GpioSettings, LedSettings
from tracker.logs import get_logger

log = get_logger("gpio")

PressKind = Literal["short", "long"]
PressCallback = Callable[[], object]

# Where Linux tells which board this is (the first that exists is read).
MODEL_FILES = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))
# Presses kept while nobody listens yet; more than this during start-up is a stuck button.
MAX_PENDING_PRESSES = 16

_said_once: set[str] = set()
_said_lock = threading.Lock()


def _say_once(key: str, message: str, **fields: Any) -> None:
    """Log a hardware notice once per process, however often open_hardware is retried."""
    with _said_lock:
        if key in _said_once:
            return
        _said_once.add(key)
    log.warning(message, **fields)


def is_raspberry_pi() -> bool:
    """True when the device tree names a Raspberry Pi."""
    for path in MODEL_FILES:
        try:
            return "raspberry pi" in path.read_bytes().decode("ascii", "replace").lower()
        except OSError:
            continue
    return False


def _factory_name(factory: Any) -> str:
    return type(factory).__name__


def _load_factory(name: str) -> Any:
    """Instantiate gpiozero's registered pin factory ``name`` (its own entry points)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name == name:
            cls = ep.load()
            if name == "mock" and not os.environ.get("GPIOZERO_MOCK_PIN_CLASS"):
                # PWM-capable mock pins, so PWMLED fades work in tests and the demo.
                from gpiozero.pins.mock import MockPWMPin

                return cls(pin_class=MockPWMPin)
            return cls()
    raise LookupError(f"gpiozero has no pin factory named {name!r}")


def select_pin_factory(gpio: GpioSettings) -> Any | None:
    """The gpiozero pin factory to use, or None to run without button and LEDs (said once).

    gpiozero (and its pin libraries) is imported only when a factory may be used: not for
    ``"none"``, nor for ``"auto"`` off a Pi with nothing configured (a factory set by someone
    else means gpiozero is imported already).
    """
    choice = gpio.pin_factory
    if choice == "none":
        _say_once("none", "GPIO disabled ([gpio] pin_factory = \"none\"): no button, no LEDs")
        return None
    if (
        choice == "auto"
        and "gpiozero" not in sys.modules
        and not os.environ.get("GPIOZERO_PIN_FACTORY")
        and not is_raspberry_pi()
    ):
        _say_not_a_pi()
        return None
    from gpiozero import Device

    try:
        if choice == "auto":
            if Device.pin_factory is not None:
                return Device.pin_factory
            env = os.environ.get("GPIOZERO_PIN_FACTORY")
            if not env and not is_raspberry_pi():
                _say_not_a_pi()
                return None
            Device.ensure_pin_factory()  # gpiozero's own choice: $GPIOZERO_PIN_FACTORY or lgpio
            return Device.pin_factory
        current = Device.pin_factory
        if current is not None and _factory_name(current) == _factory_name_for(choice):
            return current
        factory = _load_factory(choice)
        if Device.pin_factory is None:
            Device.pin_factory = factory
        return factory
    except Exception as exc:
        _say_once(
            f"failed-{choice}",
            "GPIO pin factory unavailable: running without button and LEDs",
            pin_factory=choice,
            error=f"{type(exc).__name__}: {exc}",
        )
        return None


def _say_not_a_pi() -> None:
    _say_once(
        "not-pi",
        "not a Raspberry Pi and no pin factory configured: running without button "
        "and LEDs (set [gpio] pin_factory or GPIOZERO_PIN_FACTORY to use one)",
    )


def _factory_name_for(choice: str) -> str:
    return {
        "lgpio": "LGPIOFactory",
        "rpigpio": "RPiGPIOFactory",
        "native": "NativeFactory",
        "mock": "MockFactory",
    }.get(choice, choice)


class _PressRouter:
    """Turns gpiozero's pressed/held/released (any thread) into short/long presses in the loop.

    A small state machine under a lock: ``pressed`` is set on press; a hold while pressed is a
    long press; a release while pressed with no long press is a short press. A hold that races
    with the release (the hold timer fired just as the button came up) is dropped, so one
    press never yields both. With ``hold_time_s`` a press starts a one-shot timer that calls
    ``held`` (a thread that waits, then runs once); a release cancels it.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None, hold_time_s: float | None = None
    ) -> None:
        self.hold_time_s = hold_time_s
        self._hold_timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._loop = loop
        self._handlers: dict[PressKind, PressCallback] = {}
        self._pending: deque[PressKind] = deque()
        self._pressed = False
        self._long_fired = False
        self.counts: dict[PressKind, int] = {"short": 0, "long": 0}

    # gpiozero side (its threads) --------------------------------------------------------------
    def pressed(self) -> None:
        with self._lock:
            self._pressed = True
            self._long_fired = False
            self._cancel_hold()
            if self.hold_time_s is not None:
                timer = threading.Timer(self.hold_time_s, self.held)
                timer.name = "tracker-button-hold"
                timer.daemon = True
                self._hold_timer = timer
                timer.start()

    def _cancel_hold(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    def close(self) -> None:
        with self._lock:
            self._cancel_hold()

    def held(self) -> None:
        with self._lock:
            if not self._pressed or self._long_fired:
                return
            self._long_fired = True
        self._emit("long")

    def released(self) -> None:
        with self._lock:
            self._cancel_hold()
            if not self._pressed:
                return
            self._pressed = False
            short = not self._long_fired
        if short:
            self._emit("short")

    def _emit(self, kind: PressKind) -> None:
        with self._lock:
            self.counts[kind] += 1
            handler = self._handlers.get(kind)
            loop = self._loop
            if handler is None or loop is None:
                if len(self._pending) >= MAX_PENDING_PRESSES:
                    dropped = self._pending.popleft()
                    log.warning("too many button presses before start-up; oldest dropped",
                                dropped=dropped)
                self._pending.append(kind)
                log.info("button press queued until the engine listens", press=kind)
                return
        try:
            loop.call_soon_threadsafe(handler)
        except RuntimeError:  # the loop is closed: we are shutting down
            log.info("button press after the event loop closed; ignored", press=kind)

    # event loop side --------------------------------------------------------------------------
    def register(self, kind: PressKind, callback: PressCallback) -> None:
        with self._lock:
            if self._loop is None:
                try:
                    self._loop = asyncio.get_running_loop()
                except RuntimeError:
                    raise RuntimeError(
                        "register button callbacks from the event loop, or pass loop= to "
                        "open_hardware()"
                    ) from None
            self._handlers[kind] = callback
            waiting = [k for k in self._pending if k == kind]
            self._pending = deque(k for k in self._pending if k != kind)
            loop = self._loop
        for _ in waiting:
            loop.call_soon_threadsafe(callback)


class Hardware:
    """The open button and LEDs. Create with :func:`open_hardware`."""

    def __init__(
        self,
        factory: Any,
        button: ButtonSettings,
        leds: LedSettings,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self.factory = factory
        self._time_scale = time_scale
        self._router = _PressRouter(loop, button.hold_time_s if button.enabled else None)
        self._button: Any = None
        self.status_led: Any = None
        self.link_led: Any = None
        self.pwm = False
        self._shown: dict[str, LedPattern] = {}
        self.state: DeviceState | None = None
        self.shutting_down = False
        self._players: dict[str, Any] = {}
        try:
            if leds.enabled:
                self.status_led = self._make_led(leds.status_pin)
                if leds.link_pin >= 0:
                    self.link_led = self._make_led(leds.link_pin)
            if button.enabled:
                self._button = self._make_button(button)
        except Exception:
            self.close()
            raise

    # construction -----------------------------------------------------------------------------
    def _make_led(self, pin: int) -> Any:
        from gpiozero import LED, PWMLED
        from gpiozero.exc import PinPWMUnsupported

        try:
            led = PWMLED(pin, pin_factory=self.factory)
            self.pwm = True
            return led
        except PinPWMUnsupported:
            self.pwm = False
            return LED(pin, pin_factory=self.factory)

    def _make_button(self, settings: ButtonSettings) -> Any:
        # A DigitalInputDevice, not a Button: no polling HoldThread (module docstring).
        from gpiozero import DigitalInputDevice

        button = DigitalInputDevice(
            settings.pin,
            pull_up=True,  # wired to ground: pressed = low, no external resistor needed
            bounce_time=settings.bounce_time_s or None,
            pin_factory=self.factory,
        )
        if button.is_active:  # already held while we started: count it when released
            self._router.pressed()
        button.when_activated = self._router.pressed
        button.when_deactivated = self._router.released
        return button

    # the engine's side ------------------------------------------------------------------------
    def on_short_press(self, callback: PressCallback) -> None:
        """Call ``callback()`` in the event loop on each short press (start/stop the activity).

        Presses that arrived before this call are delivered now, in order.
        """
        self._router.register("short", callback)

    def on_long_press(self, callback: PressCallback) -> None:
        """Call ``callback()`` in the event loop when the button was held ``hold_time_s``."""
        self._router.register("long", callback)

    @property
    def press_counts(self) -> dict[PressKind, int]:
        return dict(self._router.counts)

    @property
    def has_button(self) -> bool:
        return self._button is not None

    def show(self, state: DeviceState) -> None:
        """Show a DeviceState on the LEDs. Cheap to call often: an unchanged pattern is kept.

        After :meth:`show_shutting_down` the LEDs stay dark whatever is shown.
        """
        self.state = state
        if self.shutting_down:
            return
        self._play("status", self.status_led, status_pattern(state))
        self._play("link", self.link_led, link_pattern(state))

    def show_shutting_down(self) -> None:
        """Both LEDs dark from now on: the long press was taken, the Pi flushes and powers off."""
        self.shutting_down = True
        self._play("status", self.status_led, SHUTTING_DOWN)
        self._play("link", self.link_led, SHUTTING_DOWN)

    def _play(self, slot: str, led: Any, pattern: LedPattern) -> None:
        if led is None or self._shown.get(slot) == pattern:
            return
        self._shown[slot] = pattern
        self._stop_player(slot)
        if not self.pwm:
            pattern = pattern.for_plain_led()
        steady = pattern.steady_level
        k = self._time_scale
        if steady is not None:
            led.value = steady
        elif pattern.is_simple_blink:
            if self.pwm:
                led.blink(
                    on_time=pattern.on_s * k, off_time=pattern.off_s * k,
                    fade_in_time=pattern.fade_in_s * k, fade_out_time=pattern.fade_out_s * k,
                )
            else:
                led.blink(on_time=pattern.on_s * k, off_time=pattern.off_s * k)
        else:
            self._start_player(slot, led, pattern)

    def _start_player(self, slot: str, led: Any, pattern: LedPattern) -> None:
        """Patterns blink() cannot express (flash groups): the same loop on a gpiozero thread."""
        from itertools import cycle

        from gpiozero.threads import GPIOThread

        led.off()  # stops any blink() of this LED
        steps = [(level, seconds * self._time_scale) for level, seconds in pattern.steps()]

        def play() -> None:
            for level, seconds in cycle(steps):
                led.value = level if self.pwm else (level >= 0.5)
                if thread.stopping.wait(seconds):
                    break

        thread = GPIOThread(play, name=f"tracker-led-{slot}")
        self._players[slot] = thread
        thread.start()

    def _stop_player(self, slot: str) -> None:
        thread = self._players.pop(slot, None)
        if thread is not None:
            thread.stop()

    def close(self) -> None:
        """Release the pins (LEDs off). Safe to call twice."""
        for slot in list(self._players):
            self._stop_player(slot)
        self._router.close()
        for name in ("_button", "status_led", "link_led"):
            device = getattr(self, name)
            if device is not None:
                try:
                    device.close()
                except Exception as exc:  # closing must not stop the shutdown
                    log.warning("could not release a GPIO device", device=name, error=str(exc))
                setattr(self, name, None)
        self._shown.clear()


def open_hardware(
    gpio: GpioSettings,
    button: ButtonSettings,
    leds: LedSettings,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    time_scale: float = 1.0,
) -> Hardware | None:
    """Open the button and LEDs, or None when there is no usable GPIO (said once in the log).

    ``loop`` is where callbacks run; by default the running loop when called from a coroutine,
    else the loop running when the first callback is registered. ``time_scale`` stretches or
    shrinks every LED time (tests and the sped-up demo use < 1).
    """
    if not button.enabled and not leds.enabled:
        return None
    factory = select_pin_factory(gpio)
    if factory is None:
        return None
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
    try:
        hardware = Hardware(factory, button, leds, loop=loop, time_scale=time_scale)
    except Exception as exc:
        _say_once(
            "open-failed",
            "could not open the button/LED pins: running without them",
            factory=_factory_name(factory),
            error=f"{type(exc).__name__}: {exc}",
        )
        return None
    log.info(
        "button and LEDs ready",
        factory=_factory_name(factory),
        button_pin=button.pin if button.enabled else None,
        status_led_pin=leds.status_pin if leds.enabled else None,
        pwm=hardware.pwm,
    )
    return hardware
