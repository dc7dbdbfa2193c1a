"""The interactive OAuth 2 login (`tracker login`) and the revocation (`tracker logout`).

Authorization code grant, as the v3 contract describes it:

1. a one-shot HTTP server on ``127.0.0.1:[api] redirect_port`` waits for the browser's return at
   ``/callback`` (loopback only: nobody else on the network can feed it a code);
2. the authorize URL carries ``redirect_url`` (the name the v3 docs use) *and* ``redirect_uri``
   (RFC 6749), same value, and a random ``state`` (authlib's ``create_authorization_url``);
3. a browser is opened, or, on a headless Pi, the URL is printed with two ways to finish from a
   phone or a laptop: an SSH tunnel to the callback port, or pasting the final redirect URL
   (which fails to load on the other device) back on stdin;
4. ``state`` is checked (a return without it, or with another one, is refused and the wait goes
   on: a stale tab must not abort the login, a forged link must not complete it);
5. the code is exchanged (Basic client auth) and the pair is saved to the token store under its
   lock, atomically, 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import sys
import threading
import webbrowser
from collections.abc import Callable
from typing import Final, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
from aiohttp import web

from tracker.config import ApiSettings
from tracker.errors import ApiError, AuthError, StorageError, TrackerError
from tracker.logs import get_logger, register_secret
from tracker.mmt.expiry import WallClock, system_clock
from tracker.mmt.oauth import AiohttpOAuth2Client, TokenRefusedError, token_timeout
from tracker.mmt.tokens import TokenRecord, TokenStore

CALLBACK_PATH: Final = "/callback"
DEFAULT_LOGIN_TIMEOUT_S: Final = 600.0



log = get_logger("login")

_CALLBACK_PARAMS: Final = ("state", "code", "error")

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>tracker login</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto"><h1>{title}</h1><p>{text}</p>
</body></html>"""


class _Wait:
    """The first acceptable return (from the callback server or pasted), then the outcome of
    its code exchange, which the callback page waits for."""

    def __init__(self, state: str) -> None:
        self.state = state
        loop = asyncio.get_running_loop()
        self.future: asyncio.Future[str] = loop.create_future()
        # None: logged in; else why not (shown on the callback page).
        self.outcome: asyncio.Future[str | None] = loop.create_future()

    def offer(self, url: str) -> tuple[bool, str]:
        """Check a return URL; (accepted, message for the user)."""
        try:
            params = callback_params(url)
        except ValueError as exc:
            return False, str(exc)
        if params.get("state") != self.state:
            return False, "this link does not belong to the current login attempt (state differs)"
        if "error" in params:
            error = params["error"][:60]
            if not self.future.done():
                self.future.set_exception(
                    AuthError(f"the authorization was not granted ({error})")
                )
            return False, f"the authorization was not granted ({error})"
        code = params.get("code", "")
        if not code:
            return False, "the link carries no authorization code"
        register_secret(code)
        if not self.future.done():
            self.future.set_result(code)
        return True, "accepted"

    def finish(self, failure: str | None) -> None:
        """Tell the waiting callback page the outcome (the first call wins)."""
        if not self.outcome.done():
            self.outcome.set_result(failure)


def callback_params(url: str) -> dict[str, str]:
    """The query of a return URL, refused (ValueError, a message for the user) when it is not
    one clear answer: a parameter we read given twice, both a code and an error, bad encoding."""
    query = urlsplit(url.strip()).query
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=32)
    except ValueError:  # too many fields, or not UTF-8 (UnicodeDecodeError)
        raise ValueError("the link is malformed (bad encoding or too many parameters)") from None
    names = [name for name, _ in pairs]
    for name in _CALLBACK_PARAMS:
        if names.count(name) > 1:
            raise ValueError(f"the link is malformed (the parameter {name!r} appears twice)")
    params = dict(pairs)
    if "code" in params and "error" in params:
        raise ValueError("the link is malformed (it carries both a code and an error)")
    return params


def _page(title: str, text: str) -> str:
    return _PAGE.format(title=html.escape(title), text=html.escape(text))


async def _start_callback_server(wait_ref: list[_Wait], port: int) -> tuple[web.AppRunner, int]:
    async def callback(request: web.Request) -> web.Response:
        if not wait_ref:
            return web.Response(status=503, text="not ready")
        wait = wait_ref[0]
        ok, message = wait.offer(str(request.url))
        if not ok:
            log.warning("login callback refused", reason=message)
            page = _page("Not logged in", f"Not accepted: {message}.")
            return web.Response(status=400, text=page, content_type="text/html")
        failure = await asyncio.shield(wait.outcome)
        if failure is None:
            page = _page("Logged in", "The tracker is logged in. You can close this tab.")
            return web.Response(text=page, content_type="text/html")
        page = _page("Not logged in", f"The login failed: {failure}")
        return web.Response(status=400, text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get(CALLBACK_PATH, callback)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise TrackerError(
            f"cannot listen on 127.0.0.1:{port} for the login callback ({exc.strerror}); "
            "set [api] redirect_port to a free port"
        ) from None
    bound = runner.addresses[0][1]
    return runner, int(bound)


def _fail_wait_on_error(task: asyncio.Task[object], wait: _Wait) -> None:
    """A failing ``on_authorize_url`` helper ends the wait with its error instead of a hang."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None and not wait.future.done():
        wait.future.set_exception(error)


def _read_pasted_lines(
    stream: TextIO, loop: asyncio.AbstractEventLoop, deliver: Callable[[str], None]
) -> None:
    """Thread body: hand each pasted line to the loop (daemon: a blocked read never holds up
    the exit)."""
    try:
        for line in stream:
            if line.strip():
                loop.call_soon_threadsafe(deliver, line)
    except (OSError, ValueError):
        return


def graphical_session() -> bool:
    """Whether a graphical browser can open here. Without one, :func:`webbrowser.open` would
    start a console browser (w3m, lynx) in this terminal on a Debian Pi: print the address
    instead."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def instructions(url: str, port: int, *, browser_opened: bool) -> str:
    lines = []
    if browser_opened:
        lines.append("A browser window should open to log in to Map My Tracks. If it did not,")
        lines.append("open this address yourself:")
    else:
        lines.append("Open this address in a browser to log in to Map My Tracks:")
    lines += [
        "",
        f"  {url}",
        "",
        "On a headless Pi, finish from a phone or a laptop on the same network:",
        f"  * laptop: run `ssh -L {port}:127.0.0.1:{port} <user>@<this Pi>`, then open the",
        "    address above on the laptop: the approval comes back through the tunnel; or",
        "  * any device: approve, then the browser tries to open",
        f"    http://127.0.0.1:{port}{CALLBACK_PATH}?code=... and fails (that is expected):",
        "    copy that whole address from the address bar and paste it here, then Enter.",
        "",
        "Waiting for the approval (Ctrl-C to give up)...",
    ]
    return "\n".join(lines)


def _protocol_client(
    session: aiohttp.ClientSession,
    settings: ApiSettings,
    *,
    redirect_uri: str | None = None,
    clock: WallClock = system_clock,
    timeout: aiohttp.ClientTimeout | None = None,
) -> AiohttpOAuth2Client:
    """A bare protocol client (no token store) for the ``[api]`` section's server and app;
    by default with the token endpoint's generous timeout (see :func:`token_timeout`)."""
    return AiohttpOAuth2Client(
        session,
        base_url=settings.base_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        redirect_uri=redirect_uri,
        timeout=timeout or token_timeout(settings.timeout_s),
        clock=clock,
    )


async def login(
    settings: ApiSettings,
    store: TokenStore,
    *,
    open_browser: bool = True,
    port: int | None = None,
    out: TextIO | None = None,
    paste_input: TextIO | None = None,
    timeout_s: float = DEFAULT_LOGIN_TIMEOUT_S,
    clock: WallClock = system_clock,
    browser: Callable[[str], object] = webbrowser.open,
    on_authorize_url: Callable[[str], object] | None = None,
) -> TokenRecord:
    """Run the whole login; return the stored record. Raises AuthError on refusal/timeout.

    The callback page answers only once the code is exchanged and the pair stored (or refused).
    ``port`` overrides ``settings.redirect_port`` (0 = any free port, for tests);
    ``on_authorize_url`` is called with the URL once the callback server listens (tests use it
    to play the browser).
    """
    out = out or sys.stdout
    wait_ref: list[_Wait] = []
    runner, bound_port = await _start_callback_server(
        wait_ref, settings.redirect_port if port is None else port
    )
    redirect_uri = f"http://127.0.0.1:{bound_port}{CALLBACK_PATH}"
    try:
        async with aiohttp.ClientSession() as session:
            oauth = _protocol_client(session, settings, redirect_uri=redirect_uri, clock=clock)
            url, state = oauth.create_authorization_url(
                oauth.endpoints.authorize, redirect_url=redirect_uri
            )
            wait = _Wait(state)
            wait_ref.append(wait)
            opened = False
            if open_browser and (browser is not webbrowser.open or graphical_session()):
                with contextlib.suppress(Exception):
                    opened = bool(await asyncio.to_thread(browser, url))
            print(instructions(url, bound_port, browser_opened=opened), file=out, flush=True)
            log.info("waiting for the login approval", port=bound_port)
            if paste_input is not None:
                _read_pastes(paste_input, wait, out)
            helper: asyncio.Task[object] | None = None
            if on_authorize_url is not None:
                result = on_authorize_url(url)
                if asyncio.iscoroutine(result):
                    helper = asyncio.ensure_future(result)
                    helper.add_done_callback(lambda task: _fail_wait_on_error(task, wait))
            try:
                code = await _approval(wait, timeout_s)
                try:
                    record = await _exchange(oauth, store, redirect_uri, code, state)
                except TrackerError as exc:
                    wait.finish(str(exc))
                    raise
                wait.finish(None)
            finally:
                wait.finish("the login was interrupted")
                await _settle(helper, wait)
    finally:
        await runner.cleanup()
    log.info("logged in", token_expires_in=record.get("expires_in"), path=str(store.path))
    return record


def _read_pastes(paste_input: TextIO, wait: _Wait, out: TextIO) -> None:
    loop = asyncio.get_running_loop()

    def deliver(line: str) -> None:
        ok, message = wait.offer(line)
        if not ok and not wait.future.done():
            print(f"Not accepted: {message}. Paste the full address.", file=out)

    threading.Thread(
        target=_read_pasted_lines,
        args=(paste_input, loop, deliver),
        name="login-paste",
        daemon=True,
    ).start()


async def _approval(wait: _Wait, timeout_s: float) -> str:
    """The authorization code of the first acceptable return."""
    try:
        async with asyncio.timeout(timeout_s):
            return await wait.future
    except TimeoutError:
        raise AuthError(f"no login approval within {timeout_s:g} s; try again") from None


async def _exchange(
    oauth: AiohttpOAuth2Client, store: TokenStore, redirect_uri: str, code: str, state: str
) -> TokenRecord:
    """Exchange the code (authlib checks ``state`` once more) and store the pair."""
    returned = f"{redirect_uri}?{urlencode({'code': code, 'state': state})}"
    try:
        token = await oauth.fetch_token(
            oauth.endpoints.token, authorization_response=returned, state=state
        )
    except TokenRefusedError as exc:
        code = exc.error
        raise AuthError(
            f"the server refused the authorization code ({code}); run `tracker login` "
            "again" + (" and check [api] client_id/client_secret"
                       if code == "invalid_client" else "")
        ) from None  # fmt: skip
    with store.locked():
        return store.save(token)


async def _settle(helper: asyncio.Task[object] | None, wait: _Wait) -> None:
    """Let a browser-playing helper read the outcome page, then stop it."""
    if helper is None or helper.done():
        return
    answered = wait.future.done() and not wait.future.cancelled()
    if answered and wait.future.exception() is None:
        await asyncio.wait({helper}, timeout=10)
    helper.cancel()


async def logout(
    settings: ApiSettings, store: TokenStore, *, forget: bool = False
) -> tuple[bool, str]:
    """Revoke the stored refresh token (RFC 7009) and delete the token file.

    Returns (was_logged_in, message). A revocation that fails (network, server) keeps the file
    so the user can retry, unless ``forget``: then the file is deleted anyway. So is a damaged
    file with ``forget`` (nothing in it can be revoked).
    """
    with store.locked():
        try:
            record = store.load()
        except StorageError as exc:
            if not forget:
                raise TrackerError(
                    f"{exc}; `tracker logout --forget` deletes it without revoking"
                ) from None
            store.delete()
            return False, f"the token file was damaged ({exc}); deleted it without revoking"
        if record is None:
            return False, "not logged in (no stored tokens)"
        if record.get("state") != "logged_in":
            store.delete()
            return False, "the stored login was already refused by the server; deleted it"
        token, hint = record.get("refresh_token"), "refresh_token"
        if not token:
            token, hint = record.get("access_token"), "access_token"
        request_timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        try:
            async with aiohttp.ClientSession() as session:
                # A revocation rotates nothing: the plain request timeout is enough.
                oauth = _protocol_client(session, settings, timeout=request_timeout)
                await oauth.revoke(str(token), hint)
        except (ApiError, AuthError) as exc:
            if not forget:
                raise TrackerError(
                    f"could not revoke the login at the server ({exc}); the tokens are kept: "
                    "try again, or `tracker logout --forget` to delete them anyway"
                ) from None
            store.delete()
            return True, f"could not revoke at the server ({exc}); deleted the local tokens"
        store.delete()
    log.info("logged out", path=str(store.path))
    return True, "logged out: the login was revoked at the server and the tokens deleted"
