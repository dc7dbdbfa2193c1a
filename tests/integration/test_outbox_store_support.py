"""Storage helpers for the outbox and engine tests: a small tmpfs, a read-only directory."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _can_mount() -> bool:
    return (
        os.geteuid() == 0
        and subprocess.run(["mount", "--version"], capture_output=True, check=False).returncode == 0
    )


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if not _can_mount():
        pytest.skip("mounting a small tmpfs needs root")
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    ).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        path.chmod(0o555)
        for f in path.iterdir():
            f.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if (
        not _can_mount()
        or subprocess.run(
            ["mount", "--bind", str(path), str(path)], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("cannot make a read-only directory here (root, no bind mount)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run with this process umask (inherited by subprocesses started meanwhile), restored after."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def db_modes(db: Path) -> dict[str, int]:
    """The permission bits of the database and of whichever of its -wal/-shm exist."""
    files = [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm"))]
    return {f.name: mode(f) for f in files if f.exists()}
