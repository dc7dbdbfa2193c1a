"""CLI: help for every command, --version, exit codes, --print-config masking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tracker.cli import COMMANDS, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_and_config(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    assert "--config" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("tracker ")


def test_usage_error_exits_2() -> None:
    assert main(["no-such-command"]) == 2


def test_config_typo_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sampler]\nmax_eror_m = 5\n")
    assert main(["run", "--config", str(cfg), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: [sampler] max_eror_m: unknown key; allowed: max_error_m" in err


def test_print_config_masks_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[api]\nclient_id = "abc"\nclient_secret = "very-secret-value"\n')
    assert main(["run", "--config", str(cfg), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "very-secret-value" not in out
    body = json.loads(out.split("\n", 1)[1])
    assert body["api"]["client_secret"] == "***"
    assert body["api"]["client_id"] == "abc"


def test_console_script_runs_as_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "tracker" in done.stdout
