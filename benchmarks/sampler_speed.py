"""Sampler speed: µs per fix of the working tree against a baseline revision, in the same run.

    .venv/bin/python benchmarks/sampler_speed.py [--base REV] [--rounds 5] [--seeds 1,2,3,4,5]

The machine is shared and noisy, so absolute figures drift by tens of percent between runs; the
ratio to a baseline timed in the same process, interleaved round by round, is what to compare.
The baseline is ``tracker/ride/sampler.py``, ``tracker/ride/geometry.py`` and ``tracker/geo.py``
of REV (default: the commit before the speed-ups), loaded from ``git show`` as separate modules.
"Now" is the installed ``tracker.ride.sampler``: compiled by mypyc when the install compiled it
(setup.py), else pure Python; the first line says which. When it is compiled, the working
tree's pure-Python source (the same three .py files, loaded as separate interpreted modules) is
timed too, so the table shows baseline / pure now / compiled now.
For every synthetic ride (sampler_rides; delay 60 s) and bound, each round feeds the whole ride
to a fresh sampler of each implementation (CPU time of feed + flush, the best round counts), and
the points of all must be equal, bit for bit (the full check is sampler_equivalence.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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

    def show(path: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    return load_sources(show, "_base", tmp)


def load_pure(tmp: Path) -> ModuleType:
    """The working tree's sampler, interpreted from its .py files (even when the installed one
    is compiled), as a module of its own like the baseline."""
    return load_sources(lambda path: (ROOT / path).read_text(), "_pure", tmp)


def is_compiled(mod: ModuleType) -> bool:
    return str(mod.__file__).endswith((".so", ".pyd"))


def load_sources(read: Callable[[str], str], prefix: str, tmp: Path) -> ModuleType:
    names = {
        "tracker/geo.py": f"{prefix}_geo",
        "tracker/ride/geometry.py": f"{prefix}_geometry",
        "tracker/ride/sampler.py": f"{prefix}_sampler",
    }
    if str(tmp) not in sys.path:
        sys.path.insert(0, str(tmp))
    mod = None
    for path, name in names.items():
        src = read(path)
        src = src.replace("from tracker.ride.geometry import", f"from {prefix}_geometry import")
        src = src.replace("from tracker.geo import", f"from {prefix}_geo import")
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
    compiled = is_compiled(current)
    with tempfile.TemporaryDirectory() as tmp:
        impls: dict[str, ModuleType] = {"baseline": load_baseline(args.base, Path(tmp))}
        if compiled:
            impls["pure now"] = load_pure(Path(tmp))
            impls["compiled now"] = current
        else:
            impls["pure now"] = current
        print(
            f"installed sampler: {'compiled (mypyc)' if compiled else 'pure Python'} "
            f"({Path(str(current.__file__)).name})"
        )
        print(f"baseline {args.base}, {args.rounds} rounds, best round per cell, delay 60 s")
        labels = list(impls)
        ratios = [label for label in labels if label != "baseline"]
        if compiled:
            ratios.append("compiled/pure")
        print(
            "| ride | err m | lookahead | fixes | "
            + " | ".join(f"{label} µs/fix" for label in labels)
            + " | "
            + " | ".join(_ratio_name(r) for r in ratios)
            + " |"
        )
        print("|---|---:|---|---:|" + "---:|" * (len(labels) + len(ratios)))
        totals = {la: dict.fromkeys(labels, 0.0) for la in modes}
        counts = dict.fromkeys(modes, 0)
        for name, gen in RIDES.items():
            for seed in seeds:
                fixes = gen(seed)
                for eps in errors:
                    for la in modes:
                        best = dict.fromkeys(labels, float("inf"))
                        for _ in range(args.rounds):
                            outs = {}
                            for label, mod in impls.items():
                                d, outs[label] = run(mod, fixes, eps, la)
                                best[label] = min(best[label], d)
                            ref = repr(outs["baseline"])
                            if any(repr(o) != ref for o in outs.values()):
                                sys.exit(f"OUTPUT DIFFERS: {name} #{seed} {eps:g} m la={la}")
                        n = len(fixes)
                        counts[la] += n
                        for label in labels:
                            totals[la][label] += best[label]
                        print(
                            f"| {name} #{seed} | {eps:g} | {'on' if la else 'off'} | {n} | "
                            + " | ".join(f"{best[lb] / n * 1e6:.1f}" for lb in labels)
                            + " | "
                            + " | ".join(f"{_ratio(best, r):.2f}" for r in ratios)
                            + " |",
                            flush=True,
                        )
        for la in modes:
            n = counts[la]
            if n:
                tot = totals[la]
                print(
                    f"\nall rides, lookahead {'on' if la else 'off'}: "
                    + ", ".join(f"{lb} {tot[lb] / n * 1e6:.1f} µs/fix" for lb in labels)
                    + "; "
                    + ", ".join(f"{_ratio_name(r)} {_ratio(tot, r):.2f}" for r in ratios)
                )


def _ratio_name(r: str) -> str:
    return r if "/" in r else f"{r.replace(' now', '')}/baseline"


def _ratio(times: dict[str, float], r: str) -> float:
    if r == "compiled/pure":
        return times["compiled now"] / times["pure now"]
    return times[r] / times["baseline"]


if __name__ == "__main__":
    main()
