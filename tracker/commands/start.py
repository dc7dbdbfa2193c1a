"""`tracker start`: ask the running service to start a new activity (like a button press)."""

from __future__ import annotations

import argparse

from tracker.config import Settings
from tracker.errors import TrackerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the activity type, status and title prefix come from [activity]."""


def main(args: argparse.Namespace, settings: Settings) -> int:
    from tracker.engine.control_socket import send_command

    reply = send_command(settings.storage.resolved_data_dir(), "start")
    if not reply.get("ok"):
        raise TrackerError(f"the service refused: {reply.get('error')}")
    if reply.get("started"):
        print(f"started: {reply.get('activity')}")
    else:
        print(f"already recording: {reply.get('activity')}")
    return 0
