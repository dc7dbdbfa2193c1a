"""`tracker stop`: ask the running service to stop the current activity (like a button press)."""

from __future__ import annotations

import argparse

from tracker.config import Settings
from tracker.errors import TrackerError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def main(args: argparse.Namespace, settings: Settings) -> int:
    from tracker.engine.control_socket import send_command

    reply = send_command(settings.storage.resolved_data_dir(), "stop")
    if not reply.get("ok"):
        raise TrackerError(f"the service refused: {reply.get('error')}")
    if reply.get("stopped"):
        print(f"stopping: {reply.get('activity')} (the rest of its points go out, then it closes)")
    else:
        print("nothing was recording")
    return 0
