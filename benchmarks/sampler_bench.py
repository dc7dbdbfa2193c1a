"""Sampler benchmark: points kept vs the offline optima, max SED, µs per fix.

    .venv/bin/python benchmarks/sampler_bench.py [--quick] [--errors 5,10,20] [--seeds 1,2,3]

For every track (the seeded synthetic bike rides of sampler_rides, and each real log in
../shared/data/tracks that decodes to fixes, through the same filters as `tracker run`) and every
error bound, with the delay bound of 60 s:

* OPT_d, OPT: the offline optima over original fixes (with and without the delay bound);
* OW: opening window (online, original fixes, with the delay bound); DP: Douglas-Peucker (SED,
  offline, no delay bound); greedy: cone intersection keeping the centre of each region
  (CISED-W-like, `Sampler(lookahead=False)`); sampler: this sampler.

Ratios are points / OPT_d measured in the same run. "max SED" is measured by the independent
checker of sampler_reference (haversine on the interpolated lat/lon of the kept points) over
the fixes the sampler accepted; "viol" counts accepted fixes beyond the bound (must be 0), and
"(skipped n)" the fixes it refused (docs/sampler.md). Timing is CPU time of feed/flush.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sampler_reference import Track, check_sed, douglas_peucker, opening_window, opt
from sampler_rides import RIDES

from tracker.model import Fix
from tracker.ride.sampler import Sampler

DELAY = 60
SHARED = Path(
    os.environ.get("TRACKER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data")
)
OPT_BUDGET_FIXES = 5000  # OPT without delay bound is skipped above this (minutes on slow boats)


def real_tracks() -> dict[str, list[Fix]]:
    from tracker.commands.simplify import read_fixes
    from tracker.gps.filters import FixFilter

    out = {}
    folder = SHARED / "tracks"
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if path.name == "INDEX.md":
            continue
        ff = FixFilter(10.0, 90.0)
        fixes = [f for f in read_fixes(str(path)) if ff.accept(f) is None]
        out[path.name] = fixes
    return out


def run_sampler(
    fixes: list[Fix], eps: float, lookahead: bool
) -> tuple[list[tuple[float, float, float]], float, Sampler]:
    s = Sampler(eps, DELAY, lookahead=lookahead)
    pts = []
    t0 = time.process_time()
    for f in fixes:
        pts += s.feed(f)
    pts += s.flush()
    us = (time.process_time() - t0) / max(1, len(fixes)) * 1e6
    # which fixes it accepted (the bound is for those): replay, counting (not timed)
    s2 = Sampler(eps, DELAY, lookahead=lookahead)
    accepted = []
    for f in fixes:
        before = s2.fixes_accepted
        s2.feed(f)
        if s2.fixes_accepted > before:
            accepted.append(f)
    s.accepted = accepted  # type: ignore[attr-defined]
    return [(p.timestamp, p.lat, p.lon) for p in pts], us, s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--errors", default="5,10,20")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--quick", action="store_true", help="synthetic rides at 10 m only")
    ap.add_argument("--no-real", action="store_true")
    args = ap.parse_args()
    errors = [10.0] if args.quick else [float(e) for e in args.errors.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    tracks: dict[str, list[Fix]] = {}
    for name, gen in RIDES.items():
        for seed in seeds:
            tracks[f"bike {name} #{seed}"] = gen(seed)
    if not (args.quick or args.no_real):
        for name, fixes in real_tracks().items():
            tracks[name] = fixes
    print(
        "| track | fixes | err m | OPT | OPT_d | OW/OPT_d | DP/OPT_d | greedy/OPT_d "
        "| **sampler** | **/OPT_d** | max SED m | viol | µs/fix | greedy µs/fix |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    goal_ratios = []
    for name, fixes in tracks.items():
        if len(fixes) < 2:
            print(f"| {name} | {len(fixes)} | – | no dated fixes in this log | | | | | | | | | | |")
            continue
        t = [f.unix for f in fixes]
        la = [f.lat for f in fixes]
        lo = [f.lon for f in fixes]
        tr = Track.from_latlon(t, la, lo)
        for eps in errors:
            od = len(opt(tr, eps, DELAY))
            o = len(opt(tr, eps)) if len(fixes) <= OPT_BUDGET_FIXES or eps < 20 else None
            ow = len(opening_window(tr, eps, DELAY))
            dp = len(douglas_peucker(tr, eps))
            gk, gus, _ = run_sampler(fixes, eps, lookahead=False)
            kept, us, s = run_sampler(fixes, eps, lookahead=True)
            acc = s.fixes_accepted == len(fixes)
            ok = s.accepted  # type: ignore[attr-defined]
            rep = check_sed(
                [f.unix for f in ok], [f.lat for f in ok], [f.lon for f in ok], kept, eps
            )
            ratio = len(kept) / od
            if name.startswith("bike") and eps == 10.0:
                goal_ratios.append((name, ratio))
            print(
                f"| {name} | {len(fixes)} | {eps:g} | {o if o is not None else '–'} | {od} "
                f"| {ow / od:.3f} | {dp / od:.3f} | {len(gk) / od:.3f} | {len(kept)} "
                f"| **{ratio:.3f}** | {rep.max_sed_m:.2f} | {rep.violations + rep.uncovered}"
                f"{'' if acc else ' (skipped ' + str(len(fixes) - s.fixes_accepted) + ')'} "
                f"| {us:.0f} | {gus:.0f} |",
                flush=True,
            )
    if goal_ratios:
        worst = max(r for _, r in goal_ratios)
        mean = sum(r for _, r in goal_ratios) / len(goal_ratios)
        print(
            f"\nbike rides at 10 m, delay {DELAY} s: sampler/OPT_d mean {mean:.3f}, "
            f"worst {worst:.3f} ({'meets' if worst <= 0.95 else 'misses'} the 0.95 goal)"
        )


if __name__ == "__main__":
    main()
