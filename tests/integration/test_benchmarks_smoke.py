"""The black-box benchmarks of `tracker run` (issue 17) still run and print their figures.

A few seconds of each, as real subprocesses, side by side: no figure is judged here (timings on
a shared machine prove nothing), only that every case ran to the end and printed what the
docs/BENCHMARKS.md section quotes, so a change to the service cannot silently break them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )


def test_cpu_budget_and_pi_sized_run_and_print_their_figures(shared_data: Path) -> None:
    cpu = start(
        "cpu_budget.py",
        "--seconds", "2", "--warmup", "1", "--cases", "10hz,import", "--import-runs", "1",
        "--log", str(shared_data / "tracks" / "ROB__tomales_data.shrinked.nmea"),
        "--slice", "2525:3215",
    )  # fmt: skip
    pi = start(
        "pi_sized.py",
        "--seconds", "3", "--cpu-percent", "50", "--batch-interval", "1", "--max-delay", "2",
        "--log", str(shared_data / "gpsd" / "nmea-rtk.log"),
    )  # fmt: skip
    cpu_out, _ = cpu.communicate(timeout=120)  # a safety net, not a timed assertion
    pi_out, _ = pi.communicate(timeout=120)

    assert cpu.returncode == 0, cpu_out
    for figure in (
        "case 10hz: 10 epoch/s",
        "CPU-s per ride-hour",
        "ms per epoch",
        "serial port open",
        "self times sum to",
        "python -m tracker run --help",
        "| 10 epoch/s | off |",
    ):
        assert figure in cpu_out, cpu_out
    assert "ratio tracker/gpsd" in cpu_out or "gpsd is not installed" in cpu_out, cpu_out

    assert pi.returncode == 0, pi_out
    for figure in ("serial port open", "CPU-s per ride-hour"):
        assert figure in pi_out, pi_out
    for criterion in ("no fix lost", "no growing backlog", "every point within"):
        assert f"PASS {criterion}" in pi_out or f"FAIL {criterion}" in pi_out, pi_out
