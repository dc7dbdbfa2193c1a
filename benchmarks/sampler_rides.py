"""Seeded synthetic bike rides at 1 Hz: city stop-and-go, a climb with switchbacks, a descent.

A kinematic rider (speed with acceleration and braking limits, heading changed through a
curvature) follows a plan of legs; braking starts early enough to reach the next leg's speed.
The receiver adds GPS error the way a consumer chip does: a slowly wandering bias (first-order
Gauss-Markov, about 2-3 m, correlation time 20-40 s) plus a little white noise (0.5-0.8 m), and
reports every whole second. Speeds stay within 3-15 m/s while moving; stops are real stops.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.model import Fix, FixMode

T0 = 1_760_000_000  # 2025-10-09, a whole second
_DT = 0.1


@dataclass
class _Leg:
    kind: str  # "straight" | "turn" | "stop"
    amount: float  # metres, radians (signed) or seconds
    speed: float  # target speed on the leg (m/s)
    radius: float = 0.0
    wiggle: float = 0.0  # random curvature on straights (1/m)


def _simulate(legs: list[_Leg], rng: random.Random, grade: float) -> list[tuple[float, ...]]:
    """True (t, x, y, z) every _DT seconds."""
    x = y = z = 0.0
    heading = rng.uniform(0, 2 * math.pi)
    v = 0.0
    t = 0.0
    out = [(t, x, y, z)]
    accel, decel = 0.8, 1.6
    kappa_noise = 0.0
    for n, leg in enumerate(legs):
        nxt = legs[n + 1].speed if n + 1 < len(legs) else 0.0
        if leg.kind == "stop":
            nxt = 0.0
        done = 0.0
        while True:
            if leg.kind == "stop":
                target = 0.0
                if v <= 0.0:
                    if done >= leg.amount:
                        break
                    done += _DT
            else:
                remaining = leg.amount - done if leg.kind == "straight" else math.inf
                if leg.kind == "turn":
                    remaining = (abs(leg.amount) - done) * leg.radius
                if remaining <= 0:
                    break
                brake_dist = max(0.0, (v * v - nxt * nxt) / (2 * decel))
                target = nxt if remaining <= brake_dist + v * _DT else leg.speed
            if v < target:
                v = min(target, v + accel * _DT)
            elif v > target:
                v = max(target, v - decel * _DT)
            step = v * _DT
            if leg.kind == "turn":
                dh = step / leg.radius
                heading += math.copysign(dh, leg.amount)
                done += dh
            elif leg.kind == "straight":
                kappa_noise = 0.98 * kappa_noise + rng.gauss(0.0, leg.wiggle * 0.2)
                heading += kappa_noise * step
                done += step
            x += step * math.cos(heading)
            y += step * math.sin(heading)
            z += step * grade
            t += _DT
            out.append((t, x, y, z))
    return out


def _observe(
    truth: list[tuple[float, ...]], rng: random.Random, lat0: float, lon0: float, start: int
) -> list[Fix]:
    """Sample at whole seconds, add correlated GPS error, convert to WGS84 fixes."""
    sigma_bias = rng.uniform(2.0, 3.0)
    tau_bias = rng.uniform(20.0, 40.0)
    sigma_white = rng.uniform(0.5, 0.8)
    a = math.exp(-1.0 / tau_bias)
    q = sigma_bias * math.sqrt(1 - a * a)
    bx, by = rng.gauss(0, sigma_bias), rng.gauss(0, sigma_bias)
    ky = math.radians(1.0) * 6_371_008.8
    kx = ky * math.cos(math.radians(lat0))
    per_second = round(1.0 / _DT)
    fixes = []
    for idx in range(0, len(truth), per_second):
        t, x, y, z = truth[idx]
        bx = a * bx + rng.gauss(0, q)
        by = a * by + rng.gauss(0, q)
        ox = x + bx + rng.gauss(0, sigma_white)
        oy = y + by + rng.gauss(0, sigma_white)
        unix = start + round(t)
        fixes.append(
            Fix(
                time=datetime.fromtimestamp(unix, tz=UTC),
                unix=float(unix),
                lat=lat0 + oy / ky,
                lon=lon0 + ox / kx,
                mode=FixMode.FIX_3D,
                alt_msl=round(200.0 + z + rng.gauss(0, 1.5), 1),
                hdop=round(rng.uniform(0.7, 1.4), 1),
            )
        )
    return fixes


def city(seed: int = 1, minutes: float = 40.0) -> list[Fix]:
    """Stop-and-go in a street grid: blocks, right-angle turns, traffic lights, 5-9 m/s."""
    rng = random.Random(f"city-{seed}")
    legs: list[_Leg] = []
    total = 0.0
    while total < minutes * 60:
        cruise = rng.uniform(5.0, 9.0)
        length = rng.uniform(60.0, 260.0)
        legs.append(_Leg("straight", length, cruise, wiggle=0.002))
        total += length / cruise
        r = rng.random()
        if r < 0.3:
            wait = rng.uniform(8.0, 60.0)
            legs.append(_Leg("stop", wait, 0.0))
            total += wait + 10
        if rng.random() < 0.55:
            angle = math.copysign(math.pi / 2 * rng.uniform(0.85, 1.15), rng.random() - 0.5)
            legs.append(_Leg("turn", angle, rng.uniform(3.0, 4.5), radius=rng.uniform(6.0, 12.0)))
    legs.append(_Leg("stop", 5.0, 0.0))
    return _observe(_simulate(legs, rng, 0.0), rng, 48.8566, 2.3522, T0 + seed * 100_000)


def climb(seed: int = 1, minutes: float = 45.0) -> list[Fix]:
    """A mountain pass uphill: long ramps at 3-5 m/s joined by hairpins, gently curving."""
    rng = random.Random(f"climb-{seed}")
    legs: list[_Leg] = []
    total = 0.0
    side = 1.0
    while total < minutes * 60:
        v = rng.uniform(3.2, 5.0)
        for _ in range(rng.randint(1, 3)):
            length = rng.uniform(60.0, 200.0)
            legs.append(_Leg("straight", length, v, wiggle=0.004))
            total += length / v
            bend = rng.uniform(-0.6, 0.6)
            legs.append(_Leg("turn", bend, v, radius=rng.uniform(40.0, 120.0)))
        side = -side
        legs.append(_Leg("turn", side * math.pi * rng.uniform(0.9, 1.05), 3.0, radius=9.0))
        total += 15
    legs.append(_Leg("stop", 5.0, 0.0))
    return _observe(_simulate(legs, rng, 0.07), rng, 45.9237, 6.8694, T0 + 7_000_000 + seed)


def descent(seed: int = 1, minutes: float = 25.0) -> list[Fix]:
    """Downhill fast, 10-15 m/s on a winding road, braking to about 6 m/s for hairpins."""
    rng = random.Random(f"descent-{seed}")
    legs: list[_Leg] = []
    total = 0.0
    while total < minutes * 60:
        v = rng.uniform(10.0, 15.0)
        length = rng.uniform(100.0, 450.0)
        legs.append(_Leg("straight", length, v, wiggle=0.003))
        total += length / v
        if rng.random() < 0.35:
            legs.append(
                _Leg(
                    "turn",
                    math.copysign(math.pi * rng.uniform(0.8, 1.0), rng.random() - 0.5),
                    rng.uniform(5.5, 7.0),
                    radius=rng.uniform(12.0, 20.0),
                )
            )
            total += 10
        else:
            legs.append(
                _Leg("turn", rng.uniform(-1.2, 1.2), v * 0.85, radius=rng.uniform(50.0, 150.0))
            )
    legs.append(_Leg("stop", 5.0, 0.0))
    return _observe(_simulate(legs, rng, -0.06), rng, 44.1, 7.2, T0 + 9_000_000 + seed)


RIDES = {"city": city, "climb": climb, "descent": descent}
