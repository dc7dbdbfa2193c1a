"""`tracker export` (being built: see the issue that owns it)."""

from __future__ import annotations

import argparse

from tracker.config import Settings
from tracker.errors import TrackerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options yet."""


def main(args: argparse.Namespace, settings: Settings) -> int:
    raise TrackerError("tracker export is not built yet")
