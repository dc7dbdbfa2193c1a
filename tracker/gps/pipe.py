"""A live byte stream on a file descriptor (standard input from a pipe, a socket, a terminal).

``tracker fixes -`` reads a receiver this way (``cat /dev/ttyACM0 | tracker fixes -``,
``ssh pi gpspipe -r | tracker fixes -``): bytes are read in blocks as the event loop says they
are there, ``#`` comment lines (gpsd's log headers) are left out, and the stream ends at end of
file. A regular file on standard input is not live; the command reads it like a log file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from tracker.errors import GpsInputError

READ_BLOCK = 65536
# Silence after a sentence that ends a burst. A pipe has no baud; this is a few character
# times at 4800 baud and far below any receiver's pause between bursts (≥ 50 ms at 10 Hz).
PIPE_QUIET_S = 0.02


class PipeSource:
    """Async byte chunks from a readable, non-seekable descriptor, until end of file."""

    kind = "bytes"

    def __init__(
        self, fd: int, *, label: str = "stdin", quiet_gap_s: float | None = PIPE_QUIET_S
    ) -> None:
        self.fd = fd
        self.label = label
        self.quiet_gap_s = quiet_gap_s
        self.present = False

    @property
    def name(self) -> str:
        return f"pipe:{self.label}"

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        was_blocking = os.get_blocking(self.fd)
        os.set_blocking(self.fd, False)
        loop.add_reader(self.fd, ready.set)
        self.present = True
        tail = b""
        try:
            while True:
                await ready.wait()
                ready.clear()
                try:
                    data = os.read(self.fd, READ_BLOCK)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise GpsInputError(f"{self.label}: read failed: {exc.strerror}") from None
                if not data:
                    break
                cut = data.rfind(b"\n") + 1
                if not cut:
                    tail += data
                    continue
                block, tail = _uncommented(tail + data[:cut]), data[cut:]
                if block:
                    yield block
            if tail and not tail.startswith(b"#"):
                yield tail
        finally:
            self.present = False
            loop.remove_reader(self.fd)
            os.set_blocking(self.fd, was_blocking)

    async def aclose(self) -> None:
        """Nothing to release: the descriptor belongs to the caller."""


def _uncommented(lines: bytes) -> bytes:
    if b"#" not in lines:
        return lines
    return b"".join(line for line in lines.splitlines(keepends=True) if not line.startswith(b"#"))
