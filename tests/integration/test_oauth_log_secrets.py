"""No token reaches a log, tracebacks with their local variables included (issue 14, item 7).

Every component of the tracker logs through :mod:`tracker.logs` (``tracker run``, the login, the
emulator, and aiohttp through stdlib logging). Here each of them logs an exception while live
tokens sit in local variables (got from a real login against the emulator), with both renderers;
then the whole output is searched for the tokens. The tracebacks must still show the locals:
masking them away entirely would hide what a crash report needs.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import pkgutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import aiohttp
import pytest

import tracker
from tracker.emulator import EmulatorHandle, running_emulator
from tracker.logs import configure_logging
from tracker.mmt.login import login
from tracker.mmt.tokens import TokenStore

from .engine_support import api_settings

UNREGISTERED = "unregistered-token-5f4e3d2c1b0a"  # a token this process never registered


class ExceptionLogger(Protocol):
    def exception(self, event: str) -> object: ...


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator(port=0, auto_approve=True) as emu:
        yield emu


async def browser(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, allow_redirects=False) as resp:
            back = resp.headers["Location"]
        async with session.get(back) as resp:
            assert resp.status == 200


def every_component_logger() -> list[tuple[str, ExceptionLogger]]:
    """The module-level ``log`` of every tracker module."""
    found: list[tuple[str, ExceptionLogger]] = []
    for info in pkgutil.walk_packages(tracker.__path__, "tracker."):
        if info.name == "tracker.__main__":
            continue  # runs the CLI when imported
        module = importlib.import_module(info.name)
        log = getattr(module, "log", None)
        if log is not None and hasattr(log, "exception"):
            found.append((info.name, log))
    return found


def fail_holding(log: ExceptionLogger, access: str, refresh: str) -> None:
    pair = {"access_token": access, "refresh_token": refresh, "token_type": "Bearer"}
    plain_name = access  # a local whose name says nothing about what it holds
    tail_of_a_url = f"/callback?code=abc&access_token={refresh}"
    reply_body = json.dumps({"access_token": UNREGISTERED, "expires_in": 3600}).encode()
    reply_repr = repr({"refresh_token": UNREGISTERED})
    header = f"Authorization: Bearer {UNREGISTERED}"
    try:
        raise RuntimeError(f"the refresh failed for {plain_name}")
    except RuntimeError:
        log.exception("refresh failed")
    del pair, tail_of_a_url, reply_body, reply_repr, header


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "console"])
async def test_no_token_in_any_traceback_of_any_component(
    emulator: EmulatorHandle, tmp_path: Path, as_json: bool
) -> None:
    store = TokenStore.in_dir(tmp_path)
    await login(api_settings(emulator), store, open_browser=False, port=0, out=io.StringIO(),
                on_authorize_url=browser)  # fmt: skip
    record = store.load_tokens()
    assert record is not None
    access, refresh = record["access_token"], record["refresh_token"]

    stream = io.StringIO()
    configure_logging("debug", json=as_json, stream=stream)
    loggers = every_component_logger()
    assert len(loggers) >= 15
    for _name, log in loggers:
        fail_holding(log, access, refresh)
    # Libraries log through stdlib logging (aiohttp's "Error handling request" has exc_info).
    for name in ("aiohttp.server", "aiohttp.access", "asyncio"):
        fail_holding(logging.getLogger(name), access, refresh)

    text = stream.getvalue()
    for secret in (access, refresh, UNREGISTERED):
        assert secret not in text, "a traceback leaks a token"
    # The tracebacks are there, with their locals (names shown, secrets masked).
    assert text.count("refresh failed") >= len(loggers) + 3
    assert "plain_name" in text
    assert "tail_of_a_url" in text
    assert "token_type" in text
