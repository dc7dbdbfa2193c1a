"""DeviceState → LED blink pattern: what the rider reads off the handlebar at a glance.

Pure data: the GPIO adapter (:mod:`tracker.bike.gpio`) plays these patterns with gpiozero
(``LED``/``PWMLED.blink``); tests and the docs read them from here, so the table below, the
docs and the lights cannot drift apart.

Status LED (the one that matters; every state has its own rhythm, readable without PWM too):

=================== ============================================= ==============================
state               status LED                                    meaning / what to do
=================== ============================================= ==============================
ERROR               fast flicker, 0.1 s on / 0.1 s off            look at ``journalctl -u tracker``
LOGIN_NEEDED        double flash, then 1.2 s dark                  run ``tracker login``
NO_RECEIVER         short blip every 2 s (0.1 s on / 1.9 s off)    plug in / check the receiver
SEARCHING           even blink, 0.5 s on / 0.5 s off               wait under open sky
IDLE_FIX            soft pulse, 1 s bright / 1 s dim              press the button to start
RECORDING_LIVE      steady on                                      riding, everything uploaded
RECORDING_OFFLINE   long on, short dark (1.5 s on / 0.5 s off)     riding, points kept offline
=================== ============================================= ==============================

Link LED (optional second LED): steady on while recording and uploaded, slow blink (0.25 s on /
1.75 s off) while recording with points waiting for the network, off otherwise.

On a pin without PWM a dim phase is dark and half of a fade's time is shown as on, half as off,
so the soft pulse becomes a 1 s on / 1 s off blink: still different from every other row. The
state a ride spends its hours in, recording live, is the one that costs nothing: steady, no
thread wakes for it (issue 17). It used to be a breathing fade, stepped at gpiozero's 25 levels
a second: a thread woke 25 times a second for the whole ride, 4.4 ms of CPU a second here, more
than recording the ride itself; then a soft pulse, still a wake-up and 0.18 ms every second.
Waiting with a fix, before the start, is the one that pulses now. After a long press asks for a
safe shutdown both LEDs go dark (no state is steady off), and the Pi's own green ACT LED shows
the shutdown; unplug when it has stopped flashing.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracker.bike.device_state import DeviceState


@dataclass(frozen=True, slots=True)
class LedPattern:
    """One repeating light pattern.

    A period is ``flashes`` times (fade in, on, fade out, off) followed by ``pause_s`` of dark.
    ``on_s`` with no off time and no fades is steady on; all zero is steady off.
    """

    name: str
    on_s: float
    off_s: float = 0.0
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    flashes: int = 1
    pause_s: float = 0.0
    low: float = 0.0  # the level of a flash's off part (0: dark; the pause is always dark)

    def __post_init__(self) -> None:
        times = (self.on_s, self.off_s, self.fade_in_s, self.fade_out_s, self.pause_s)
        if any(t < 0 for t in times) or self.flashes < 1 or not 0.0 <= self.low < 1.0:
            raise ValueError(
                f"LED pattern {self.name!r}: times must be >= 0, flashes >= 1, 0 <= low < 1"
            )

    @property
    def steady_level(self) -> float | None:
        """1.0 or 0.0 for a light that never changes, None for a blinking one."""
        if self.off_s == 0 and self.fade_in_s == 0 and self.fade_out_s == 0 and self.pause_s == 0:
            return 1.0 if self.on_s > 0 else 0.0
        return None

    @property
    def is_simple_blink(self) -> bool:
        """True when gpiozero's own ``blink()`` can play it (one flash per period, no pause)."""
        return (
            self.steady_level is None and self.flashes == 1 and self.pause_s == 0 and self.low == 0
        )

    @property
    def uses_fade(self) -> bool:
        return self.fade_in_s > 0 or self.fade_out_s > 0

    @property
    def period_s(self) -> float:
        one = self.fade_in_s + self.on_s + self.fade_out_s + self.off_s
        return one * self.flashes + self.pause_s

    def for_plain_led(self) -> LedPattern:
        """The same rhythm without PWM: a dim part is off, half of the fade time counts as on,
        half as off."""
        if not self.uses_fade and self.low == 0:
            return self
        half_fades = (self.fade_in_s + self.fade_out_s) / 2
        return LedPattern(
            name=self.name,
            on_s=self.on_s + half_fades,
            off_s=self.off_s + half_fades,
            flashes=self.flashes,
            pause_s=self.pause_s,
        )

    def steps(self, fps: int = 25) -> tuple[tuple[float, float], ...]:
        """One period as (level 0..1, seconds) steps; fades are stepped at ``fps`` like gpiozero.

        Consecutive steps with the same level are merged, zero-length steps dropped.
        """
        raw: list[tuple[float, float]] = []
        for _ in range(self.flashes):
            if self.fade_in_s > 0:
                n = max(1, int(fps * self.fade_in_s))
                raw += [(i / n, self.fade_in_s / n) for i in range(n)]
            raw.append((1.0, self.on_s))
            if self.fade_out_s > 0:
                n = max(1, int(fps * self.fade_out_s))
                raw += [(1 - i / n, self.fade_out_s / n) for i in range(n)]
            raw.append((self.low, self.off_s))
        raw.append((0.0, self.pause_s))
        merged: list[tuple[float, float]] = []
        for level, seconds in raw:
            if seconds <= 0:
                continue
            if merged and merged[-1][0] == level:
                merged[-1] = (level, merged[-1][1] + seconds)
            else:
                merged.append((level, seconds))
        return tuple(merged)


OFF = LedPattern("off", on_s=0.0)
STEADY = LedPattern("steady on", on_s=1.0)

STATUS_PATTERNS: dict[DeviceState, LedPattern] = {
    DeviceState.ERROR: LedPattern("fast flicker", on_s=0.1, off_s=0.1),
    DeviceState.LOGIN_NEEDED: LedPattern(
        "double flash", on_s=0.15, off_s=0.15, flashes=2, pause_s=1.2
    ),
    DeviceState.NO_RECEIVER: LedPattern("short blip", on_s=0.1, off_s=1.9),
    DeviceState.SEARCHING: LedPattern("even blink", on_s=0.5, off_s=0.5),
    DeviceState.IDLE_FIX: LedPattern("soft pulse", on_s=1.0, off_s=1.0, low=0.15),
    DeviceState.RECORDING_LIVE: STEADY,
    DeviceState.RECORDING_OFFLINE: LedPattern("long on, short dark", on_s=1.5, off_s=0.5),
}

LINK_PATTERNS: dict[DeviceState, LedPattern] = {
    DeviceState.RECORDING_LIVE: STEADY,
    DeviceState.RECORDING_OFFLINE: LedPattern("slow blink", on_s=0.25, off_s=1.75),
}

# After a long press asked for a safe shutdown: dark (no DeviceState is steady off).
SHUTTING_DOWN = OFF


def status_pattern(state: DeviceState) -> LedPattern:
    """The status LED pattern for a state (every state has one)."""
    return STATUS_PATTERNS[state]


def link_pattern(state: DeviceState) -> LedPattern:
    """The optional link LED: on when uploaded, slow blink when points wait, else off."""
    return LINK_PATTERNS.get(state, OFF)


def pattern_table() -> list[tuple[str, str, str]]:
    """(state, status LED, link LED) rows, for `tracker status` and the docs."""
    return [
        (state.value, status_pattern(state).name, link_pattern(state).name)
        for state in DeviceState
    ]
