"""structlog set-up: one plain line per event on a terminal, JSON lines for journald.

Every event passes :func:`redact_secrets` last before rendering, so a token, a client secret or
an ``Authorization`` header can never reach a log, whatever a caller passes: keys that name a
secret (``access_token``, ``client_secret``, ``code``, ``Authorization``, … but not
``token_ttl``) are masked, ``Bearer …``/``Basic …`` credentials and ``"access_token": "…"``
pairs inside any string are masked, and every value registered with :func:`register_secret`
(the live tokens, the client secret) is cut out of any string it appears in.

Tracebacks keep their local variables (what a crash report needs), so they are the riskiest text
of all: an exception is turned into structured data (structlog's ``ExceptionDictTransformer``,
locals included, as reprs) *before* the redaction, which then masks them like any other value;
only afterwards is it rendered (text on a terminal, a list of frames in JSON). The same chain
serves structlog's own events and every stdlib record (aiohttp's "Error handling request").

**No console extras.** ``import structlog`` imports its dev console and traceback modules, which
import ``rich`` and ``better_exceptions`` when installed (~40 ms and several MiB on a Pi; rich
comes with the test tools). Nothing here uses them: tracebacks are rendered by
:func:`exception_as_text` (or as JSON), locals are plain ``repr``, the console renderer gets
``plain_traceback`` explicitly. So structlog is imported with those two hidden (only while it is
imported: anyone else may still import them), and the output is the same whether they are
installed or not.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from types import TracebackType
from typing import Any, Final, TextIO

# structlog's optional console extras; None in sys.modules makes their import fail (see above).
_UNUSED_EXTRAS: Final = ("rich", "better_exceptions")


def _import_structlog_without_extras() -> None:
    hidden = [name for name in _UNUSED_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401 - imports structlog.dev and .tracebacks, which look
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


_import_structlog_without_extras()

import structlog  # noqa: E402 - after the import above, which left the extras out
from structlog.tracebacks import ExceptionDictTransformer  # noqa: E402
from structlog.typing import FilteringBoundLogger  # noqa: E402

MASK = "***"

# Keys whose value is a secret. A key is secret when it is one of these or ends with one of the
# suffixes: ``access_token`` is, ``token_ttl`` and ``token_file`` are not.
_SECRET_KEYS: Final = frozenset({
    "token", "code", "secret", "password", "passwd", "passphrase", "authorization",
    "proxy_authorization", "auth_header", "cookie", "set_cookie", "api_key", "apikey",
    "credentials", "private_key",
})  # fmt: skip
_SECRET_SUFFIXES: Final = ("_token", "_secret", "_password", "_api_key")
_CREDENTIAL = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_QUERY_SECRET = re.compile(
    r"([?&](?:code|access_token|refresh_token|client_secret|token)=)[^&\s\"']+", re.IGNORECASE
)
# "access_token": "…" in JSON, 'refresh_token': '…' in a repr, id_token=… in a dataclass repr.
_KEYED_SECRET = re.compile(
    r"""(\b(?:access_token|refresh_token|id_token|client_secret|password|token)\b["']?"""
    r"""\s*[:=]\s*b?["']?)[^"'\s,&})]+""",
    re.IGNORECASE,
)
# A traceback's locals: reprs are made whole (so a secret inside is found), then cut short.
_LOCAL_REPR_MAX: Final = 300
_TRACEBACKS = ExceptionDictTransformer(
    show_locals=True, locals_max_string=10_000, locals_max_length=10, max_frames=30
)

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
    text = _KEYED_SECRET.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{MASK}", text)


def is_secret_key(key: str) -> bool:
    """Whether a log key (or a header, or a local variable's name) names a secret."""
    name = key.lower().replace("-", "_")
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def _redact(value: Any, key: str | None = None) -> Any:
    if key is not None and is_secret_key(key):
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


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _exc_info(value: object) -> ExcInfo | None:
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return type(value[1]), value[1], value[2]
    if value:
        current = sys.exc_info()
        if current[1] is not None:
            return type(current[1]), current[1], current[2]
    return None


def structure_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor, *before* :func:`redact_secrets`: ``exc_info`` → the traceback as
    data (frames with their locals as reprs), so the redaction sees every value in it."""
    info = _exc_info(event_dict.pop("exc_info", None))
    if info is not None:
        event_dict["exception"] = _TRACEBACKS(info)
    return event_dict


def _shorten_locals(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """After the redaction: cut long reprs of locals (whole until the secrets were masked)."""
    for stack in _stacks(event_dict):
        for frame in stack.get("frames") or ():
            local_vars = frame.get("locals")
            if isinstance(local_vars, dict):
                for name, text in local_vars.items():
                    if isinstance(text, str) and len(text) > _LOCAL_REPR_MAX:
                        local_vars[name] = text[:_LOCAL_REPR_MAX] + "…"
    return event_dict


def _stacks(event_dict: MutableMapping[str, Any]) -> list[dict[str, Any]]:
    stacks = event_dict.get("exception")
    if isinstance(stacks, list):
        return [s for s in stacks if isinstance(s, dict)]
    return []


def exception_as_text(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """For the console: the (already redacted) structured traceback as Python-style text, each
    frame followed by its locals."""
    stacks = _stacks(event_dict)
    if not stacks:
        return event_dict
    lines: list[str] = []
    for stack in reversed(stacks):  # the root cause first, as Python prints it
        if lines:
            lines += ["", "The above exception caused the following one:", ""]
        lines.append("Traceback (most recent call last):")
        for frame in stack.get("frames") or ():
            lines.append(
                f'  File "{frame.get("filename")}", line {frame.get("lineno")}, '
                f"in {frame.get('name')}"
            )
            for name, text in (frame.get("locals") or {}).items():
                shown = str(text).replace("\n", "\n" + " " * 10)
                lines.append(f"      {name} = {shown}")
        lines.append(f"{stack.get('exc_type')}: {stack.get('exc_value')}")
    event_dict["exception"] = "\n".join(lines)
    return event_dict


def configure_logging(
    level: str = "info", *, json: bool = False, stream: TextIO | None = None
) -> None:
    """Configure structlog (and stdlib logging, for libraries) once per process."""
    stream = stream or sys.stderr
    numeric = getattr(logging, level.upper(), logging.INFO)
    # Exception → data → redaction → (text) → renderer: nothing renders a traceback unredacted.
    redaction: list[Any] = [structure_exception, redact_secrets, _shorten_locals]
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        redaction.append(exception_as_text)
        # Tracebacks arrive as text from exception_as_text; plain_traceback only for the case
        # of an exc_info that bypassed it (never rich's renderer, which shows live locals).
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *redaction,
    ]
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
                *redaction,
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
