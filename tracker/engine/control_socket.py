"""The running service's control socket: `tracker start`, `tracker stop`, `tracker status`.

A Unix stream socket in the data dir (``tracker.sock``, mode 0600: only the service's user, or
root, may start or stop a ride). One JSON object per line each way: ``{"cmd": "status"}`` →
``{"ok": true, "status": {...}}``. A Unix socket rather than TCP because it needs no port, no
authentication beyond file permissions, and cannot be reached from the network.

The server side runs in the service's event loop; the client side is plain blocking ``socket``
code, because the commands that use it are short-lived and must start fast on a Pi Zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tracker.errors import ServiceNotRunningError, TrackerError
from tracker.logs import get_logger

log = get_logger("control")

SOCKET_NAME = "tracker.sock"
MAX_REQUEST_BYTES = 4096

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def socket_path(data_dir: Path) -> Path:
    return Path(data_dir) / SOCKET_NAME


class ControlServer:
    """Serves commands to ``handler(cmd, request) -> reply`` until closed."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._started = False

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if _is_live(self.path):
                raise TrackerError(
                    f"another tracker service is running (its socket {self.path} answers)"
                )
            self.path.unlink()  # left over from a killed service
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self._started = True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        if self._started:
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=5.0)
            except ValueError:  # no newline within the stream's limit (LimitOverrunError)
                log.warning("control request refused: too large", limit_bytes=MAX_REQUEST_BYTES)
                reply: dict[str, Any] = {
                    "ok": False,
                    "error": f"request too large (the limit is {MAX_REQUEST_BYTES} bytes)",
                }
            else:
                reply = await self._reply(line)
            writer.write(json.dumps(reply, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


    async def _reply(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line or b"{}")
            cmd = str(request.get("cmd", ""))
        except (ValueError, AttributeError):
            request, cmd = {}, ""
        try:
            return await self.handler(cmd, request)
        except TrackerError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control command failed", cmd=cmd)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def send_command(data_dir: Path, cmd: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
    """Ask the running service; raises ServiceNotRunningError when nobody answers."""
    path = socket_path(data_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ServiceNotRunningError(
                f"the tracker service is not running (no answer on {path}); start it with"
                " `tracker run` or `systemctl start tracker`"
            ) from None
        except PermissionError:
            raise ServiceNotRunningError(
                f"no permission to talk to the service at {path} (run as the service's user)"
            ) from None
        sock.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        reply = json.loads(raw)
    except ValueError:
        raise TrackerError(
            f"the service answered something that is not JSON: {raw[:80]!r}"
        ) from None
    if not isinstance(reply, dict):
        raise TrackerError("the service answered something that is not a JSON object")
    return reply
