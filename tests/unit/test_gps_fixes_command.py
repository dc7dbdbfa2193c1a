"""`tracker fixes FILE [--json]`: one fix per line on stdout, the summary on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_file
from tracker.cli import main


def test_json_uses_gpsd_tpv_names_and_units(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_file("gpsd", "haicom-305N.log")
    assert main(["fixes", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    tpvs = [json.loads(line) for line in captured.out.splitlines()]
    assert tpvs
    first = tpvs[0]
    assert first["class"] == "TPV"
    assert first["time"].endswith("Z")
    assert first["time"].startswith("2007-04-08T")
    assert first["mode"] in (2, 3)
    assert {"lat", "lon", "speed", "track", "sats", "hdop"} <= set(first)
    assert all(t["hdop"] <= 10.0 for t in tpvs)  # the default filter applied
    assert "sentences" in captured.err
    assert "bad checksums" in captured.err
    assert "dropped:" in captured.err
    assert "hdop" in captured.err


def test_text_output_and_all(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_file("gpsd", "haicom-305N.log")
    assert main(["fixes", str(path), "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 74  # every epoch
    assert sum("DROPPED no_fix" in line for line in lines) == 6
    assert lines[-1].startswith("2007-04-08T")


def test_summary_counts_bad_checksums(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_file("gpsd", "firefly-II.log")
    assert main(["fixes", str(path)]) == 0
    assert "23 bad checksums" in capsys.readouterr().err


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "fixes", str(tmp_path / "nope.nmea")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot read the log" in result.stderr + result.stdout


def test_bad_override_is_a_usage_error(tmp_path: Path) -> None:
    log = tmp_path / "x.nmea"
    log.write_text("")
    assert main(["fixes", str(log), "--max-speed", "0"]) == 2
