"""`tracker status [--json]`: is the tracker logged in, and (with the service running) what is
it doing.

The status is collected as a plain dict, one key per section, so the text and the ``--json``
forms show the same facts and each part adds its own section:

* ``login``: from the token file alone (works whether or not the service runs):
  ``state`` (``logged_in`` | ``login_needed`` | ``logged_out``), the access token's expiry.
* ``service``: asked over the control socket: ``running``, and when it runs the engine's one
  typed status (:class:`tracker.engine.status.ServiceStatus`) as JSON, keys documented in
  docs/engine.md; the text form reads it back into that type.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tracker.config import Settings

Collector = Callable[[Settings], dict[str, Any]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def login_status(settings: Settings, *, now: float | None = None) -> dict[str, Any]:
    """The login section: from the token file only, no network."""
    from tracker.errors import StorageError
    from tracker.mmt.expiry import MAX_CLOCK_SKEW_S, system_clock
    from tracker.mmt.tokens import TokenStore

    store = TokenStore.in_dir(settings.storage.resolved_data_dir())
    info: dict[str, Any] = {"token_file": str(store.path)}
    try:
        record = store.load()
    except StorageError as exc:
        return {**info, "state": "login_needed", "reason": str(exc)}
    if record is None:
        return {**info, "state": "logged_out", "reason": "not logged in: run `tracker login`"}
    if record.get("state") != "logged_in":
        reason = record.get("reason") or "the server refused the stored login"
        return {**info, "state": "login_needed", "reason": f"{reason}: run `tracker login`"}
    info["state"] = "logged_in"
    info["token_expires_in"] = record.get("expires_in")
    expires_at = record.get("expires_at")
    now = system_clock() if now is None else now
    left = None
    if isinstance(expires_at, int | float) and now is not None:
        expires_at = float(expires_at)
        left = expires_at - now
        lifetime = record.get("expires_in")
        if isinstance(lifetime, int | float) and left > lifetime + MAX_CLOCK_SKEW_S:
            left = None  # stored or read on a wrong clock: do not pretend to know
    if left is None or not isinstance(expires_at, float):
        info["token_expires_at"] = None
        info["token_seconds_left"] = None
    else:
        info["token_expires_at"] = datetime.fromtimestamp(expires_at, UTC).isoformat(
            timespec="seconds"
        )
        info["token_seconds_left"] = round(left)
    return info


# Each section of the status; the service part appends its own collector.
COLLECTORS: dict[str, Collector] = {"login": login_status}


def collect(settings: Settings) -> dict[str, Any]:
    """Every section, as plain data (what ``--json`` prints)."""
    return {name: collector(settings) for name, collector in COLLECTORS.items()}


def render_login(info: dict[str, Any]) -> list[str]:
    state = info.get("state")
    if state == "logged_in":
        left = info.get("token_seconds_left")
        if left is None:
            expiry = "expiry unknown (no trusted clock); it is renewed when the server asks"
        elif left > 0:
            expiry = f"expires {info['token_expires_at']} (in {_duration(left)}), renews itself"
        else:
            expiry = f"expired {info['token_expires_at']}; renewed on the next upload"
        return ["login: logged in", f"  access token: {expiry}", f"  tokens: {info['token_file']}"]
    return [f"login: {str(state).replace('_', ' ')}", f"  {info.get('reason', '')}"]


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds} s"


RENDERERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {"login": render_login}


# -- the running service (issue 8) --------------------------------------------------------------


def service_status(settings: Settings) -> dict[str, Any]:
    """The service section: asked over the control socket; ``running: false`` when none."""
    from tracker.engine.control_socket import send_command
    from tracker.errors import TrackerError

    try:
        reply = send_command(settings.storage.resolved_data_dir(), "status", timeout_s=5.0)
    except TrackerError as exc:
        return {"running": False, "reason": str(exc)}
    except OSError as exc:
        return {"running": False, "reason": f"the service did not answer: {exc}"}
    if not reply.get("ok"):
        return {"running": True, "error": reply.get("error")}
    return {"running": True, **reply.get("status", {})}


def render_service(info: dict[str, Any]) -> list[str]:
    from tracker.engine.status import ServiceStatus

    if not info.get("running"):
        return [f"service: not running ({info.get('reason', '')})"]
    if "error" in info:
        return [f"service: running, but its status failed: {info['error']}"]
    try:
        st = ServiceStatus.from_json({k: v for k, v in info.items() if k != "running"})
    except (KeyError, TypeError, ValueError) as exc:
        return [f"service: running, but its status is not understood ({type(exc).__name__}: "
                f"{exc}); see `tracker status --json`"]  # fmt: skip
    gps = st.gps
    fix = "fix" if gps.has_fix else "no fix"
    receiver = "receiver present" if gps.receiver_present else "NO RECEIVER"
    last = gps.receiver.get("last_fix") or {}
    sats = last.get("sats", gps.sats)
    lines = [
        f"service: running (pid {st.pid}, up {_duration(st.uptime_s)}),"
        f" LED shows {st.device_state.value}",
        f"  gps: {receiver}, {fix}, satellites {sats if sats is not None else '?'},"
        f" fixes {st.engine.fixes}",
    ]
    drops = {k: v for k, v in st.drops.items() if k != "accepted" and v}
    if drops:
        lines.append("  dropped fixes: " + ", ".join(f"{k} {v}" for k, v in drops.items()))
    act = st.activity
    if act:
        lines.append(f"  activity: {act.title} ({act.state}), remote id {act.remote_id or '-'}")
        lines.append(
            f"  points: recorded {act.points_recorded}, sent {act.points_sent},"
            f" waiting {act.points_waiting}"
        )
    else:
        lines.append("  activity: none (press the button or run `tracker start`)")
    others = [r for r in st.rides if not act or r.title != act.title]
    for ride in others:
        lines.append(f"  other ride: {ride.title} ({ride.state}),"
                     f" {ride.points_waiting} points not on the server: {ride.upload}")  # fmt: skip
    if act:
        mine = next((r for r in st.rides if r.title == act.title), None)
        if mine is not None and mine.upload != "sending":
            lines.append(f"  upload: {mine.upload}")
    up = st.uplink
    link = f"  link: {up.link}, last successful upload {up.last_success or 'never'}"
    if up.last_error:
        link += f"; last error: {up.last_error}"
    lines.append(link)
    lines.append(f"  login (service): {st.login.state}")
    if st.storage.error:
        lines.append(f"  STORAGE: {st.storage.error}")
    hr = st.heart_rate
    if hr and hr.get("state") != "disabled":
        from tracker.bike.heart_rate.protocol import heart_rate_status_lines

        lines += ["  " + line for line in heart_rate_status_lines(hr)]
    return lines


COLLECTORS["service"] = service_status
RENDERERS["service"] = render_service


def main(args: argparse.Namespace, settings: Settings) -> int:
    status = collect(settings)
    status["collected_at"] = time.time()
    if args.json:
        print(json.dumps(status, sort_keys=True))
        return 0
    for name, section in status.items():
        renderer = RENDERERS.get(name)
        if renderer is not None:
            print("\n".join(renderer(section)))
    return 0
