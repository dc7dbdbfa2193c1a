"""Sampler equivalence: a digest of every decision on every benchmark ride, to compare revisions.

    .venv/bin/python benchmarks/sampler_equivalence.py                    # print the digests
    .venv/bin/python benchmarks/sampler_equivalence.py --write FILE       # store them
    .venv/bin/python benchmarks/sampler_equivalence.py --check FILE       # compare to stored
    .venv/bin/python benchmarks/sampler_equivalence.py --rev REV          # compare to a commit

A speed-up of the sampler must not change what it keeps. For each case this prints the number of
points and a SHA-256 of the repr of every ``feed``/``flush`` result in order (so which fix
emitted which Point, bit for bit, not only the final list) and of the counters. The cases:

* the 15 synthetic rides of sampler_rides (city, climb, descent; seeds 1..5) at 5, 10 and 20 m,
  lookahead on and off, delay 60 s; and at 10 m with delays 10 s and 3 s (the deadline paths);
* every log in ../shared/data/tracks and ../shared/data/gpsd that decodes to fixes, through the
  `tracker run` filters and also unfiltered (glitches, repeated times, no-fix epochs), at 5, 10
  and 20 m, lookahead on and off;
* 300 rides of the property tests' generator (sub-second rates, phase offsets, gaps, wild
  fixes, bounds of 2-20 m, delays of 1-60 s), drawn deterministically, each also resumed from a
  JSON snapshot taken half-way.

``--rev REV`` extracts ``tracker/`` of that commit into a temporary directory and runs this
script there in a subprocess (the rides and the generator come from the working tree, so both
sides see the same input), then compares line by line. Exit status 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# --rev runs this script with SAMPLER_EQ_ROOT pointing at the extracted tree: its tracker wins.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
if os.environ.get("SAMPLER_EQ_ROOT"):
    sys.path.insert(0, os.environ["SAMPLER_EQ_ROOT"])

from tracker.model import Fix, Point  # noqa: E402
from tracker.ride.sampler import Sampler  # noqa: E402

SHARED = Path(os.environ.get("TRACKER_SHARED_DATA", ROOT.parent / "shared/data"))
ERRORS = (5.0, 10.0, 20.0)
PROPERTY_RIDES = 300


def _digest(fixes: list[Fix], eps: float, delay: int, lookahead: bool, cut: int | None) -> str:
    s = Sampler(eps, delay, lookahead=lookahead)
    outs: list[list[Point]] = []
    for i, f in enumerate(fixes):
        if cut is not None and i == cut:
            s = Sampler.restore(json.loads(json.dumps(s.snapshot())))
        outs.append(s.feed(f))
    outs.append(s.flush())
    # (samplers before counters() existed, for --rev: the snapshot lists them in the same order)
    counters = s.counters() if hasattr(s, "counters") else tuple(s.snapshot()["counters"])
    h = hashlib.sha256(repr(outs).encode())
    h.update(repr(counters).encode())
    n = sum(len(o) for o in outs)
    return f"{n}\t{h.hexdigest()[:24]}"


def _logs() -> Iterator[tuple[str, list[Fix], list[Fix]]]:
    """(name, filtered fixes, unfiltered fixes) of every shared log that decodes to fixes."""
    from tracker.commands.simplify import read_fixes
    from tracker.errors import GpsInputError
    from tracker.gps.filters import FixFilter

    for sub in ("tracks", "gpsd"):
        folder = SHARED / sub
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix in (".md", ".chk"):
                continue
            try:
                raw = list(read_fixes(str(path)))
            except GpsInputError as exc:  # a log the decoder refuses has no case
                print(f"skipped {path.name}: {exc}", file=sys.stderr)
                continue
            ff = FixFilter(10.0, 90.0)
            kept = [f for f in raw if ff.accept(f) is None]
            if len(raw) >= 2:
                yield f"{sub}/{path.name}", kept, raw


def _property_rides() -> list[tuple[list[Fix], float, int]]:
    """The property tests' ride generator, drawn deterministically (derandomized Hypothesis)."""
    from hypothesis import HealthCheck, given, settings

    sys.path.insert(0, str(ROOT / "tests" / "property"))
    from test_sampler_properties import rides  # type: ignore[import-not-found]

    got: list[tuple[list[Fix], float, int]] = []
    # Hypothesis mixes literal constants it finds in the *source* of every local module loaded
    # into what it draws (hypothesis.internal.conjecture.providers). A module compiled with
    # mypyc has no source to scan, so the rides changed with which modules were compiled (all
    # 300 of them when the GPS decoder was). Drawn without those constants, the rides depend on
    # the generator and its seed alone. (A private hook: if a Hypothesis release renames it,
    # this fails loudly here rather than drawing other rides silently.)
    from hypothesis.internal.conjecture import providers
    from hypothesis.internal.constants_ast import Constants

    scan = providers._get_local_constants
    providers._get_local_constants = Constants

    @settings(
        max_examples=PROPERTY_RIDES,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(rides())
    def collect(ride: tuple[list[Fix], float, int]) -> None:
        got.append(ride)

    try:
        collect()
    finally:
        providers._get_local_constants = scan
    return got


def cases() -> Iterator[tuple[str, Callable[[], str]]]:
    from sampler_rides import RIDES

    for name, gen in RIDES.items():
        for seed in range(1, 6):
            fixes = gen(seed)
            for eps in ERRORS:
                for la in (True, False):
                    yield (
                        f"bike {name} #{seed} {eps:g} m la={int(la)}",
                        lambda f=fixes, e=eps, la=la: _digest(f, e, 60, la, None),
                    )
            for delay in (10, 3):
                yield (
                    f"bike {name} #{seed} 10 m delay {delay}",
                    lambda f=fixes, d=delay: _digest(f, 10.0, d, True, None),
                )
    for name, kept, raw in _logs():
        for label, fixes in (("filtered", kept), ("raw", raw)):
            for eps in ERRORS:
                for la in (True, False):
                    yield (
                        f"{name} {label} {eps:g} m la={int(la)}",
                        lambda f=fixes, e=eps, la=la: _digest(f, e, 60, la, None),
                    )
    for i, (fixes, eps, delay) in enumerate(_property_rides()):
        yield (
            f"property #{i} {eps:g} m delay {delay}",
            lambda f=fixes, e=eps, d=delay: _digest(f, e, d, True, None),
        )
        yield (
            f"property #{i} {eps:g} m delay {delay} restored",
            lambda f=fixes, e=eps, d=delay: _digest(f, e, d, True, len(f) // 2),
        )


def emit() -> list[str]:
    lines = []
    for name, run in cases():
        lines.append(f"{name}\t{run()}")
    return lines


def _lines_of_rev(rev: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        blob = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "tracker"],
            check=True,
            capture_output=True,
        ).stdout
        tar_path = Path(tmp) / "rev.tar"
        tar_path.write_bytes(blob)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        env = dict(os.environ, SAMPLER_EQ_ROOT=tmp)
        out = subprocess.run(
            [sys.executable, __file__], check=True, capture_output=True, text=True, env=env
        ).stdout
    return out.splitlines()


def compare(mine: list[str], theirs: list[str], label: str) -> int:
    a = dict(line.split("\t", 1) for line in mine if line)
    b = dict(line.split("\t", 1) for line in theirs if line)
    diff = [k for k in a if a[k] != b.get(k)] + [k for k in b if k not in a]
    for k in diff:
        print(f"DIFFERS: {k}: here {a.get(k)} vs {label} {b.get(k)}")
    print(f"{len(a)} cases here, {len(b)} in {label}: {len(diff)} differ")
    return 1 if diff else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", metavar="FILE")
    g.add_argument("--check", metavar="FILE")
    g.add_argument("--rev", metavar="REV")
    args = ap.parse_args()
    t0 = time.perf_counter()
    mine = emit()
    took = time.perf_counter() - t0
    if args.write:
        Path(args.write).write_text("\n".join(mine) + "\n")
        print(f"{len(mine)} cases written to {args.write} ({took:.0f} s)")
    elif args.check:
        sys.exit(compare(mine, Path(args.check).read_text().splitlines(), args.check))
    elif args.rev:
        sys.exit(compare(mine, _lines_of_rev(args.rev), args.rev))
    else:
        print("\n".join(mine))


if __name__ == "__main__":
    main()
