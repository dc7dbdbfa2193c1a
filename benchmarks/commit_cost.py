"""What one group commit costs in CPU, with and without the fsync the durability promise needs.

    .venv/bin/python benchmarks/commit_cost.py [--commits 300] [--rounds 3] [--dir DIR]

At 1 fix a second every fix needs its own commit (docs/engine.md: on disk within
``commit_interval_s``), so this is a per-second cost of `tracker run` that gpsd, which writes
nothing, does not have. Each commit is the outbox's real one (``storage.schema.connect``, WAL,
``storage.rows.write_batch``): the sampler snapshot of a real ride 10 minutes in (pickled as the
outbox stores it) and, every 20th commit, one point. ``synchronous=FULL`` (what the tracker
uses: on disk when COMMIT returns, a power cut included) is timed against ``NORMAL`` (the same
writes, no fsync per commit; survives a crash of the process, not a power cut) in the same run,
interleaved round by round, with a 2 ms pause between commits (at 1 Hz the writer is cold every
time). CPU is the calling thread's (user + system), as schedstat counts it for the service. The
directory defaults to the system temp dir, where benchmarks/cpu_budget.py puts the tracker's
data; pass ``--dir`` to measure another disk (an SD card).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from sampler_rides import RIDES  # noqa: E402

from tracker.model import Point  # noqa: E402
from tracker.ride.sampler import Sampler  # noqa: E402
from tracker.storage.rows import Batch, encode_snapshot, write_batch  # noqa: E402
from tracker.storage.schema import connect, transaction  # noqa: E402

ACTIVITY = 1


def snapshot_blob() -> bytes:
    """The sampler's stored state 600 fixes into a real-shaped ride (as the outbox stores it)."""
    sampler = Sampler(10.0, 60)
    for fix in next(iter(RIDES.values()))(1)[:600]:
        sampler.feed(fix)
    return encode_snapshot(sampler.snapshot())


def one_round(directory: Path, mode: str, commits: int, blob: bytes) -> float:
    """CPU seconds per commit for ``commits`` commits in ``mode``."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        db = connect(Path(tmp) / "outbox.sqlite", 64 * 1024 * 1024)
        db.execute(f"PRAGMA synchronous={mode}")
        with transaction(db):
            db.execute(
                "INSERT INTO activities(id, title, state, created_at) VALUES (?,?,?,?)",
                (ACTIVITY, "bench", "recording", time.time()),
            )
        spent = 0.0
        for i in range(commits):
            batch = Batch()
            batch.samplers[ACTIVITY] = (blob, 1_700_000_000.0 + i)
            if i % 20 == 0:
                batch.points[ACTIVITY] = [Point(1_700_000_000 + i, 48.1, 11.5, 500.0)]
                batch.hr[ACTIVITY] = []
            time.sleep(0.002)
            t0 = time.thread_time()
            write_batch(db, batch)
            spent += time.thread_time() - t0
        db.close()
    return spent / commits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args()
    blob = snapshot_blob()
    results: dict[str, list[float]] = {"FULL": [], "NORMAL": []}
    for _ in range(args.rounds):
        for mode in results:
            results[mode].append(one_round(Path(args.dir), mode, args.commits, blob))
    full = statistics.median(results["FULL"]) * 1e6
    normal = statistics.median(results["NORMAL"]) * 1e6
    print(f"directory {args.dir}; sampler snapshot {len(blob)} B; {args.commits} commits x "
          f"{args.rounds} rounds per mode, medians of the rounds")
    print(f"synchronous=FULL   (the tracker): {full:7.1f} us CPU per commit")
    print(f"synchronous=NORMAL (no fsync)   : {normal:7.1f} us CPU per commit")
    print(f"the fsync: {full - normal:.1f} us per commit, {full / normal:.2f}x; at 1 Hz that is "
          f"{(full - normal) / 1000:.3f} ms of CPU a second")


if __name__ == "__main__":
    main()
