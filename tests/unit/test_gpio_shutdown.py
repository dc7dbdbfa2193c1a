"""Long-press safe shutdown: flush first, then the configured command, never in a test for real.

The "power-off" command here is a real subprocess that only appends to a temp file.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tracker.bike.shutdown import SafeShutdown
from tracker.config import ButtonSettings, settings_from_mapping


def _marker_command(path: Path, word: str = "poweroff", code: int = 0) -> list[str]:
    return [sys.executable, "-c",
            f"import sys; open({str(path)!r}, 'a').write({word + chr(10)!r}); sys.exit({code})"]


async def test_flush_runs_before_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "log"

    async def flush() -> None:
        marker.write_text("flush\n")

    shutdown = SafeShutdown(_marker_command(marker), require_service=False)
    shutdown.set_flush(flush)
    assert await shutdown() is True
    assert marker.read_text() == "flush\npoweroff\n"
    assert shutdown.returncode == 0
    assert await shutdown() is False  # a second long press does not run it twice
    assert marker.read_text() == "flush\npoweroff\n"


async def test_a_failed_or_hung_flush_still_powers_off(tmp_path: Path) -> None:
    marker = tmp_path / "log"

    async def broken() -> None:
        raise OSError("disk full")

    with capture_logs() as logs:
        assert await SafeShutdown(_marker_command(marker), flush=broken,
                                  require_service=False)() is True
    assert any("flush before shutdown failed" in e["event"] for e in logs)

    never = asyncio.Event()

    async def hung() -> None:
        await never.wait()

    with capture_logs() as logs:
        assert await SafeShutdown(_marker_command(marker), flush=hung, flush_timeout_s=0.01,
                                  require_service=False)() is True
    assert any("timed out" in e["event"] for e in logs)
    assert marker.read_text() == "poweroff\npoweroff\n"


async def test_outside_the_systemd_service_the_command_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "log"
    flushed: list[bool] = []

    async def flush() -> None:
        flushed.append(True)

    with capture_logs() as logs:
        ok = await SafeShutdown(_marker_command(marker), flush=flush, env={})()
    assert ok is False
    assert flushed == [True]  # still flushed: the rider's data is safe either way
    assert not marker.exists()
    assert any("not running as the systemd service" in e["event"] for e in logs)

    # A CI runner that is itself a systemd service: INVOCATION_ID alone is not enough.
    other_service = SafeShutdown(_marker_command(marker), env={"INVOCATION_ID": "abc123"})
    assert await other_service() is False
    assert not marker.exists()

    ours = SafeShutdown(_marker_command(marker),
                        env={"INVOCATION_ID": "abc123", "TRACKER_SERVICE": "1"})
    assert await ours() is True
    assert marker.read_text() == "poweroff\n"


async def test_a_failing_or_missing_command_is_reported(tmp_path: Path) -> None:
    with capture_logs() as logs:
        ok = await SafeShutdown(_marker_command(tmp_path / "x", code=3),
                                require_service=False)()
    assert ok is False
    assert any(e["event"] == "shutdown command failed" and e["returncode"] == 3 for e in logs)

    with capture_logs() as logs:
        ok = await SafeShutdown([str(tmp_path / "no-such-program")], require_service=False)()
    assert ok is False
    assert any("could not start" in e["event"] for e in logs)

    assert await SafeShutdown([], require_service=False)() is False


def test_the_command_is_configurable() -> None:
    assert ButtonSettings().shutdown_command == ("systemctl", "poweroff")
    settings = settings_from_mapping({"button": {"shutdown_command": ["sudo", "halt"]}})
    shutdown = SafeShutdown.from_settings(settings.button)
    assert shutdown.command == ("sudo", "halt")
    assert shutdown.require_service is True
    with pytest.raises(Exception, match="list of strings"):
        settings_from_mapping({"button": {"shutdown_command": "systemctl poweroff"}})
