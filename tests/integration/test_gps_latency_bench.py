"""benchmarks/gps_latency.py: a few-second smoke run, and its baseline is the old rule.

No timed assertions (the machine is shared); what is checked is that the benchmark runs end to
end through real ptys and that its "old" decoder closes an epoch exactly when the next begins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gps_latency import LOGS, excerpt, main
from tracker.gps.nmea import FixDecoder
from tracker.gps.nmea.pacing import epochs


@pytest.fixture(autouse=True)
def _recordings(shared_data: Path) -> None:
    """The benchmark plays receivers' logs from ../shared/data: skip with the reason without."""


def test_smoke_run_prints_a_row_and_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--epochs", "4", "--rates", "10", "--logs", "haicom-305N"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("haicom-305N"))
    assert "10 Hz" in row
    assert "too few fixes" not in row
    assert "all receivers   10 Hz: new p50" in out


@pytest.mark.parametrize("name", sorted(LOGS))
def test_baseline_closes_each_epoch_when_the_next_begins(name: str) -> None:
    """Fed burst by burst, the old rule returns epoch k with burst k+1; the new one with k."""
    lines, tods = excerpt(LOGS[name], 12)
    bursts = [b"".join(burst.lines) for burst in epochs(lines) if burst.timed]
    old, new = FixDecoder(learn_cycle_end=False), FixDecoder()
    old_when: dict[int, int] = {}
    new_when: dict[int, int] = {}
    for k, data in enumerate(bursts):
        for fix in old.feed(data):
            old_when.setdefault(round(fix.unix * 1000) % 86_400_000, k)
        for fix in new.feed(data):
            new_when.setdefault(round(fix.unix * 1000) % 86_400_000, k)
    assert old.stats.closed_at_cycle_end == 0
    for k, tod in enumerate(tods[:-1]):
        assert old_when[tod] == k + 1
    assert tods[-1] not in old_when  # held until more bytes come (or the end)
    # Once the cycle is learned (ENDER_CONFIRM epochs), the new rule closes in the burst itself.
    assert all(new_when[tod] == k for k, tod in enumerate(tods) if k >= 3)
