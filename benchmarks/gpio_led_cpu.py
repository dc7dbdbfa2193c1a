"""CPU cost of playing each status-LED pattern (gpiozero threads), against a steady LED.

On a Pi Zero every background wake-up counts. This plays each DeviceState's pattern on
gpiozero MockFactory PWM pins for a few seconds and reports the process CPU time per minute of
pattern, and the ratio to the baseline (steady on, which uses no thread). The pin writes are
mock writes, so this measures the Python side (thread wake-ups, gpiozero's value plumbing);
lgpio's own cost on a real Pi comes on top.

    .venv/bin/python benchmarks/gpio_led_cpu.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import threading
import time

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from tracker.bike.device_state import DeviceState
from tracker.bike.gpio import open_hardware
from tracker.bike.led_patterns import status_pattern
from tracker.config import ButtonSettings, GpioSettings, LedSettings
from tracker.logs import configure_logging


def cpu_per_minute(state: DeviceState, seconds: float) -> tuple[float, int]:
    """(CPU seconds per minute of showing ``state``, pin writes seen)."""
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    hw = open_hardware(
        GpioSettings(), ButtonSettings(enabled=False), LedSettings(link_pin=-1)
    )
    assert hw is not None
    pin = Device.pin_factory.pin(27)
    pin.clear_states()
    start = time.process_time()
    hw.show(state)
    threading.Event().wait(seconds)  # let the pattern play
    used = time.process_time() - start
    writes = len(pin.states) - 1
    hw.close()
    Device.pin_factory.close()
    Device.pin_factory = None
    return used / seconds * 60.0, writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    configure_logging("warning")
    baseline, _ = cpu_per_minute(DeviceState.IDLE_FIX, args.seconds)
    print(f"{'state':<20} {'pattern':<22} {'CPU s/min':>10} {'writes/s':>9} {'vs steady':>10}")
    for state in DeviceState:
        cpu, writes = cpu_per_minute(state, args.seconds)
        ratio = cpu / baseline if baseline > 0 else float("inf")
        print(f"{state.value:<20} {status_pattern(state).name:<22} {cpu:>10.4f} "
              f"{writes / args.seconds:>9.1f} {ratio:>9.1f}x")
    print(f"baseline (steady on, no thread): {baseline:.4f} CPU s/min")


if __name__ == "__main__":
    main()
