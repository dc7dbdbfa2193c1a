"""Shared fixtures: where the read-only recordings live, and a clean structlog per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRACKER_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (read-only). Tests that need it skip with the reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"recordings not found at {SHARED_DATA} (set TRACKER_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _clean_structlog() -> object:
    """Put back the logging configuration a test found. `tracker.cli.main` and some tests call
    ``configure_logging``, which points structlog and the root logger at the current
    ``sys.stderr``: under pytest that is the test's own capture stream, closed when the test
    ends, so every later test that makes a logger would fail with "I/O operation on closed
    file". The very same objects are restored (not defaults), so loggers bound at import time
    and ``structlog.testing.capture_logs`` keep working."""
    import logging

    import structlog

    before = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    structlog.configure(**before)
    root.handlers[:] = handlers
    root.setLevel(level)


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the calling test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"recording {path} is not available")
    return path


# Hypothesis: the same examples on every run (CI must be steady), no per-example deadline (the
# machine is shared and slow examples are not failures), and the blob to reproduce a failure.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile(
    "tracker", derandomize=True, deadline=None, print_blob=True, database=None
)
_hypothesis_settings.load_profile("tracker")
