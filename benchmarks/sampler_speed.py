"""Sampler speed: µs per fix of the working tree against a baseline revision, in the same run.

    .venv/bin/python benchmarks/sampler_speed.py [--base REV] [--rounds 5] [--seeds 1,2,3,4,5]

The machine is shared and noisy, so absolute figures drift by tens of percent between runs; the
ratio to a baseline timed in the same process, interleaved round by round, is what to compare.
The baseline is ``tracker/ride/sampler.py``, ``tracker/ride/geometry.py`` and ``tracker/geo.py``
of REV (default: the commit before the speed-ups), loaded from ``git show`` as separate modules.
For every synthetic ride (sampler_rides; delay 60 s) and bound, each round feeds the whole ride
to a fresh sampler of each implementation (CPU time of feed + flush, the best round counts), and
the points of both must be equal, bit for bit (the full check is sampler_equivalence.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from sampler_rides import RIDES  # noqa: E402

from tracker.model import Fix, Point  # noqa: E402
from tracker.ride import sampler as current  # noqa: E402

BASE_REV = "5ea8979"  # main before the speed-ups of issue 17


def load_baseline(rev: str, tmp: Path) -> ModuleType:
    """REV's sampler as a module of its own (its geometry and geo too), sharing tracker.model."""
    names = {
        "tracker/geo.py": "_base_geo",
        "tracker/ride/geometry.py": "_base_geometry",
        "tracker/ride/sampler.py": "_base_sampler",
    }
    sys.path.insert(0, str(tmp))
    mod = None
    for path, name in names.items():
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        src = src.replace("from tracker.ride.geometry import", "from _base_geometry import")
        src = src.replace("from tracker.geo import", "from _base_geo import")
        file = tmp / f"{name}.py"
        file.write_text(src)
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None
        assert spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    assert mod is not None
    return mod


def run(
    mod: ModuleType, fixes: list[Fix], eps: float, lookahead: bool
) -> tuple[float, list[Point]]:
    s = mod.Sampler(eps, 60, lookahead=lookahead)
    feed = s.feed
    out: list[Point] = []
    t0 = time.process_time()
    for f in fixes:
        out += feed(f)
    out += s.flush()
    return time.process_time() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=BASE_REV)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--errors", default="5,10,20")
    ap.add_argument("--greedy", action="store_true", help="lookahead=False as well")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    errors = [float(e) for e in args.errors.split(",")]
    modes = [True, False] if args.greedy else [True]
    with tempfile.TemporaryDirectory() as tmp:
        base = load_baseline(args.base, Path(tmp))
        print(f"baseline {args.base}, {args.rounds} rounds, best round per cell, delay 60 s")
        print("| ride | err m | lookahead | fixes | baseline µs/fix | now µs/fix | now/baseline |")
        print("|---|---:|---|---:|---:|---:|---:|")
        totals = {True: [0.0, 0.0, 0], False: [0.0, 0.0, 0]}
        for name, gen in RIDES.items():
            for seed in seeds:
                fixes = gen(seed)
                for eps in errors:
                    for la in modes:
                        tb = tn = float("inf")
                        for _ in range(args.rounds):
                            db, pb = run(base, fixes, eps, la)
                            dn, pn = run(current, fixes, eps, la)
                            if pb != pn or repr(pb) != repr(pn):
                                sys.exit(f"OUTPUT DIFFERS: {name} #{seed} {eps:g} m la={la}")
                            tb = min(tb, db)
                            tn = min(tn, dn)
                        n = len(fixes)
                        tot = totals[la]
                        tot[0] += tb
                        tot[1] += tn
                        tot[2] += n
                        print(
                            f"| {name} #{seed} | {eps:g} | {'on' if la else 'off'} | {n} "
                            f"| {tb / n * 1e6:.1f} | {tn / n * 1e6:.1f} | {tn / tb:.2f} |",
                            flush=True,
                        )
        for la in modes:
            tb, tn, n = totals[la]
            if n:
                print(
                    f"\nall rides, lookahead {'on' if la else 'off'}: baseline "
                    f"{tb / n * 1e6:.1f} µs/fix, now {tn / n * 1e6:.1f} µs/fix, "
                    f"ratio {tn / tb:.2f}"
                )


if __name__ == "__main__":
    main()
