"""The `tracker` console script: a thin argparse layer over the library.

Each subcommand lives in ``tracker/commands/<name>.py`` with two functions:
``add_arguments(parser)`` and ``main(args, settings) -> int``. Command modules import only the
standard library at module level, so ``tracker --help`` stays fast on a Pi Zero; the work (and
the heavy imports: aiohttp, authlib, sqlite) happens inside ``main``. Only the module of the
command given is imported (``tracker run`` never imports the other ten), and the version only
for ``--version``.

Exit codes: 0 ok, 1 runtime failure (a TrackerError), 2 usage or configuration error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tracker.errors import ConfigError, TrackerError

if TYPE_CHECKING:
    from tracker.config import Settings

# name → one-line description; the module is tracker.commands.<name with - as _>.
COMMANDS: dict[str, str] = {
    "run": "Run the tracker service: GPS → sampler → durable outbox → Map My Tracks.",
    "demo": "Ride a recorded track against the local emulator, end to end, with no hardware.",
    "login": "Log in to Map My Tracks (OAuth 2) and store the tokens safely.",
    "logout": "Revoke the stored tokens at the server and delete them.",
    "status": "Show login state and, when the service runs, fix, activity and upload state.",
    "start": "Ask the running service to start a new activity.",
    "stop": "Ask the running service to stop the current activity.",
    "emulator": "Run the local Map My Tracks API v3 emulator (OAuth, faults, a track page).",
    "fixes": "Parse an NMEA log and print one fix per line (gpsd TPV names with --json).",
    "simplify": "Thin an NMEA log or GPX track with the sampler and print the kept points.",
    "export": "Write a recorded activity from the outbox as a GPX file.",
}


PRINT_CONFIG_HELP = ("check the configuration and print the effective settings (secrets "
                     "masked) as JSON, then exit (2 on any config error)")


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f"tracker.commands.{name.replace('-', '_')}")


class _Version(argparse.Action):
    """``--version``: the package metadata is read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from tracker import __version__

        print(f"tracker {__version__}")
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` (a command name) only that command's module is imported, the
    others are listed without their own options (what ``main`` does for the command given)."""
    parser = argparse.ArgumentParser(
        prog="tracker",
        description="Live GPS tracker for a Raspberry Pi, streaming to Map My Tracks.",
        epilog="Run `tracker COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument("--config", metavar="PATH", dest="top_config",
                        help="config file for --print-config")  # fmt: skip
    parser.add_argument("--print-config", action="store_true", help=PRINT_CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in COMMANDS.items():
        cmd = sub.add_parser(name, help=summary, description=summary)
        common = cmd.add_argument_group("common options")
        common.add_argument(
            "--config", metavar="PATH", help="config file (default: $TRACKER_CONFIG, "
            "/etc/tracker/config.toml, then the user config dir)",
        )
        common.add_argument(
            "--log-level", choices=("debug", "info", "warning", "error"),
            help="override [log] level",
        )
        common.add_argument(
            "--log-json", action="store_true", default=None,
            help="log JSON lines (what journald wants) instead of plain text",
        )
        common.add_argument("--print-config", action="store_true", default=argparse.SUPPRESS,
                            help=PRINT_CONFIG_HELP)  # fmt: skip
        if only is None or name == only:
            _command_module(name).add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command is None and not args.print_config:
        parser.print_usage(sys.stderr)
        print("tracker: error: a COMMAND is required (or --print-config)", file=sys.stderr)
        return 2
    from tracker.config import load_settings
    from tracker.logs import configure_logging, get_logger

    try:
        settings = load_settings(getattr(args, "config", None) or args.top_config)
    except ConfigError as exc:
        for line in exc.problems:
            print(f"tracker: config error: {line}", file=sys.stderr)
        return 2
    if args.print_config:
        return _print_config(settings)
    level = args.log_level or settings.log.level
    configure_logging(level, json=bool(args.log_json or settings.log.json))
    try:
        return int(_command_module(args.command).main(args, settings))
    except ConfigError as exc:
        for line in exc.problems:
            print(f"tracker: config error: {line}", file=sys.stderr)
        return exc.exit_code
    except TrackerError as exc:
        get_logger("cli").error(str(exc), error=type(exc).__name__)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _print_config(settings: Settings) -> int:
    """Print the settings load_settings validated (every check a command would meet at start)."""
    print(f"# settings from: {settings.source or 'built-in defaults (no config file)'}")
    print(json.dumps(settings.to_dict(mask_secrets=True), indent=2, allow_nan=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
