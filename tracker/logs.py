"""structlog set-up: one plain line per event on a terminal, JSON lines for journald.

Every event passes :func:`redact_secrets` last before rendering, so a token, a client secret or
an ``Authorization`` header can never reach a log, whatever a caller passes: keys that name a
secret are masked, ``Bearer …``/``Basic …`` credentials inside any string are masked, and every
value registered with :func:`register_secret` (the live tokens, the client secret) is cut out of
any string it appears in.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger

MASK = "***"

_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|authorization|auth_header|cookie|api_key|\bcode\b)",
    re.IGNORECASE,
)
_CREDENTIAL = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_QUERY_SECRET = re.compile(
    r"([?&](?:code|access_token|refresh_token|client_secret|token)=)[^&\s\"']+", re.IGNORECASE
)
# Keys that carry counts or states about secrets rather than secrets themselves.
_SAFE_KEYS = frozenset({"token_state", "token_expires_at", "token_expires_in", "login_state"})

_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it later appears in a log line (min. 6 chars)."""
    if value and len(value) >= 6:
        with _lock:
            _known_secrets.add(value)


def scrub(text: str) -> str:
    """Mask credentials in free text: known secret values, Bearer/Basic, secret query params."""
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{MASK}", text)


def _redact(value: Any, key: str | None = None) -> Any:
    if key is not None and key not in _SAFE_KEYS and _SECRET_KEY.search(key):
        return MASK if value not in (None, "", 0, False) else value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v) for v in value)
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask every secret in the event (see module docstring)."""
    for key in list(event_dict):
        event_dict[key] = _redact(event_dict[key], None if key == "event" else key)
    return event_dict


def _scrub_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Rendered tracebacks can quote local values; scrub the text like any other string.
    if "exception" in event_dict and isinstance(event_dict["exception"], str):
        event_dict["exception"] = scrub(event_dict["exception"])
    return event_dict


def configure_logging(
    level: str = "info", *, json: bool = False, stream: TextIO | None = None
) -> None:
    """Configure structlog (and stdlib logging, for libraries) once per process."""
    stream = stream or sys.stderr
    numeric = getattr(logging, level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    # Tracebacks are rendered to text here, before rendering, so they can be scrubbed too.
    shared += [structlog.processors.format_exc_info, _scrub_exception]
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiohttp, asyncio) log through stdlib logging: route them through the same
    # redaction and rendering so nothing bypasses the masking.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact_secrets,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_log_level],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger bound to a component name.

    Lazy: the configuration (redaction, level, stream, JSON) is looked up when a line is logged,
    not when the logger is made, so a module-level logger created at import time, before
    :func:`configure_logging`, still goes through :func:`redact_secrets`.
    """
    logger: FilteringBoundLogger = structlog.get_logger(name, component=name)
    return logger
