"""Build hook: compile the sampler's pure core with mypyc, or fall back to pure Python.

The metadata lives in pyproject.toml; this file only adds the compiled extensions (issue 17: the
sampler's cost per fix and the service's CPU per epoch on a Pi Zero). The pure core on the path
of every fix (``COMPILED``: the sampler with its geometry and ``geo``, and the NMEA decoder with
its framing, sentence parsers and the fix filters) is compiled by mypyc into one shared library,
for a wheel (``pip install .``, scripts/install-pi) and for the editable dev install (``pip
install -e .``, scripts/setup) alike, so tests, demo and benchmarks run what a Pi runs.

The compiled modules must give the same floats as CPython, bit for bit (the outbox, the
equivalence digest and crash recovery compare them). CPython rounds every ``a * b + c`` twice;
a C compiler may fuse it into one FMA instruction, rounded once, and GCC does so by default in
GNU mode on aarch64 (the Pi). So every extension gets ``-ffp-contract=off``, and nothing that
relaxes IEEE semantics (no -ffast-math, no -Ofast).

Fallback: ``TRACKER_PURE_PYTHON=1``, no mypyc, or a failed compile (no C compiler, no Python
headers) installs pure Python, with one warning line; the package behaves the same, slower.

A small generated file, ``tracker/_native_build.json``, records the sha256 of the sources
the compiled modules were built from; tests/unit/test_native_build.py fails when the .py beside
a loaded .so has changed since (an editable install's .so shadows later edits of the .py).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
COMPILED = [
    "tracker/geo.py",
    "tracker/ride/geometry.py",
    "tracker/ride/sampler.py",
    # the per-epoch GPS path (issue 17: the 1 Hz and 10 Hz budgets): NMEA framing, sentence
    # parsing, epoch assembly and the fix filters
    "tracker/gps/nmea/framing.py",
    "tracker/gps/nmea/sentences.py",
    "tracker/gps/nmea/decoder.py",
    "tracker/gps/filters.py",
]
# The shared library holding the compiled modules' code (the .so next to each .py is a shim).
# Top level, where mypyc expects it (it derives the modules' __file__ from its place).
GROUP = "tracker_native"
RECORD = "tracker/_native_build.json"
# Bit-for-bit CPython float semantics: no fused multiply-add (see the docstring).
FP_FLAGS = ["-ffp-contract=off"]


def warn(reason: str) -> None:
    print(f"tracker: WARNING: installing pure Python (no compiled sampler): {reason}",
          file=sys.stderr, flush=True)


def source_hashes(base: Path) -> dict[str, str]:
    return {p: hashlib.sha256((base / p).read_bytes()).hexdigest() for p in COMPILED}


def stale_outputs(base: Path, keep: Sequence[str] = ()) -> list[Path]:
    """Compiled files under ``base`` that this build does not make: module files under
    ``base/tracker`` whose source is not in ``keep`` (an earlier build compiled a module this one
    does not: in an editable install such a file would shadow its .py, or fail to import; the
    package has no other native extensions) and, for a pure build (nothing kept), the shared
    library and the source record."""
    stems = {src[: -len(".py")] for src in keep}
    found = [
        p
        for p in (base / "tracker").rglob("*")
        if p.suffix in (".so", ".pyd") and p.relative_to(base).as_posix().split(".")[0] not in stems
    ]
    if not keep:
        found += [Path(p) for p in glob.glob(str(base / f"{GROUP.replace('.', '/')}__mypyc.*"))]
        if (base / RECORD).exists():
            found.append(base / RECORD)
    return found


def remove_stale(base: Path, keep: Sequence[str] = ()) -> None:
    for path in stale_outputs(base, keep):
        path.unlink(missing_ok=True)


# Only a build compiles: pip's metadata steps (egg_info, dist_info) run this file too.
BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def native_extensions() -> list[Any]:
    if not BUILD_COMMANDS.intersection(sys.argv[1:]):
        return []
    if os.environ.get("TRACKER_PURE_PYTHON", "") not in ("", "0"):
        warn("TRACKER_PURE_PYTHON is set")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        warn(f"mypyc is not available ({exc})")
        return []
    try:
        extensions: list[Any] = mypycify(COMPILED, opt_level="3", group_name=GROUP)
    except (Exception, SystemExit) as exc:  # mypyc reports its errors by sys.exit
        warn(f"mypyc failed ({exc})")
        return []
    for ext in extensions:
        ext.extra_compile_args = [*ext.extra_compile_args, *FP_FLAGS]
    return extensions


class BuildPy(build_py):
    """A build removes what an earlier one left and this one does not make: the .so files in
    the tree (an editable install) and in build/lib (which a wheel would otherwise pack again)
    of modules it does not compile, and for a pure build the shared library and record too."""

    def run(self) -> None:
        keep = COMPILED if self.distribution.ext_modules else []
        remove_stale(Path(self.build_lib), keep)
        if getattr(self, "editable_mode", False):
            remove_stale(ROOT, keep)
        super().run()


class BuildExt(build_ext):
    """Build the extensions, or none: a compile failure leaves a working pure-Python install."""

    def run(self) -> None:
        inplace = self.inplace  # (setuptools clears it while building and does not restore it
        try:  # when the build raises)
            super().run()
        except (Exception, SystemExit) as exc:  # CompileError, LinkError, missing compiler
            self.inplace = inplace
            warn(f"the C build failed ({type(exc).__name__}; it needs a C compiler and Python's "
                 "headers: gcc, python3-dev)")
            self._discard()
            return
        base = Path(self.build_lib) if not self.inplace else ROOT
        record = base / RECORD
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"sources": source_hashes(ROOT)}, indent=1) + "\n")

    def _discard(self) -> None:
        remove_stale(Path(self.build_lib))
        if self.inplace:
            remove_stale(ROOT)
        self.extensions = []

    def get_outputs(self) -> list[str]:
        outputs: list[str] = super().get_outputs()
        if self.extensions and not self.inplace:
            outputs.append(str(Path(self.build_lib) / RECORD))
        return outputs


setup(ext_modules=native_extensions(), cmdclass={"build_py": BuildPy, "build_ext": BuildExt})
