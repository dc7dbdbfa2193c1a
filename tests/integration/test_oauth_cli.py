"""`tracker login`, `tracker status`, `tracker logout` as real processes against a real
`tracker emulator --port 0 --auto-approve` process.

The test plays the browser: it reads the authorize address the login process prints, follows
the emulator's redirect to the login process's callback server, and the login completes. The
headless variant pastes the final redirect address on the login process's stdin instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Emulator:
    base_url: str
    client_id: str
    client_secret: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
async def emulator_process() -> AsyncIterator[Emulator]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracker", "emulator", "--port", "0", "--auto-approve", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=child_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    values: dict[str, str] = {}
    try:
        while not {"base_url", "client_id", "client_secret"} <= values.keys():
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, "the emulator exited early"
            key, _, value = line.strip().partition("=")
            values[key] = value
        yield Emulator(values["base_url"], values["client_id"], values["client_secret"])
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)


def write_config(tmp_path: Path, emu: Emulator) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[api]\nbase_url = "{emu.base_url}"\nclient_id = "{emu.client_id}"\n'
        f'client_secret = "{emu.client_secret}"\nredirect_port = {free_port()}\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
    )
    return config


async def tracker(config: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracker", *args, "--config", str(config), cwd=REPO,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env(),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def start_login(config: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracker", "login", "--no-browser", "--config", str(config),
        cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=child_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line, "tracker login exited before printing the address"
        if line.strip().startswith("http"):
            return proc, line.strip()


async def status(config: Path) -> dict[str, object]:
    code, out, _ = await tracker(config, "status", "--json")
    assert code == 0
    login: dict[str, object] = json.loads(out)["login"]
    return login


async def test_login_status_logout_as_processes(
    emulator_process: Emulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, emulator_process)
    assert (await status(config))["state"] == "logged_out"
    proc, url = await start_login(config)
    assert url.startswith(emulator_process.base_url + "/oauth/authorize?")
    async with aiohttp.ClientSession() as session:
        async with session.get(url, allow_redirects=False) as redirect:
            callback = redirect.headers["Location"]
        async with session.get(callback) as resp:
            assert resp.status == 200
            assert "Logged in" in await resp.text()
    code_value = parse_qs(urlsplit(callback).query)["code"][0]
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "Logged in" in out.decode()
    logged_in = await status(config)
    assert logged_in["state"] == "logged_in"
    assert isinstance(logged_in["token_seconds_left"], int)
    assert 3500 < logged_in["token_seconds_left"] <= 3600
    code, text, _ = await tracker(config, "status")
    assert code == 0
    assert "login: logged in" in text
    code, out_text, err_text = await tracker(config, "logout")
    assert code == 0, err_text
    assert "revoked" in out_text
    assert (await status(config))["state"] == "logged_out"
    assert not (tmp_path / "data" / "tokens.json").exists()
    assert code_value not in out.decode() + err.decode()


async def test_headless_login_by_pasting_on_stdin(
    emulator_process: Emulator, tmp_path: Path
) -> None:
    config = write_config(tmp_path, emulator_process)
    proc, url = await start_login(config)
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as r:
        final = r.headers["Location"]  # the phone's browser cannot open this: the user copies it
    assert proc.stdin is not None
    proc.stdin.write(final.encode() + b"\n")
    await proc.stdin.drain()
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert (await status(config))["state"] == "logged_in"


async def test_login_without_client_credentials_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[api]\nbase_url = "http://127.0.0.1:9/api3"\n'
                      f'[storage]\ndata_dir = "{tmp_path}"\n')  # fmt: skip
    code, _, err = await tracker(config, "login", "--no-browser")
    assert code == 2
    assert "client_id and client_secret" in err


async def test_login_over_plain_http_elsewhere_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[api]\nbase_url = "http://mapmytracks.com/api3"\nclient_id = "a"\n'
                      f'client_secret = "b"\n[storage]\ndata_dir = "{tmp_path}"\n')  # fmt: skip
    code, _, err = await tracker(config, "login", "--no-browser")
    assert code == 2
    assert "https" in err
