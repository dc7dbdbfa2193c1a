"""The compiled sampler (setup.py, mypyc): the install is what it says, and never stale.

An editable install's compiled ``.so`` next to ``geometry.py`` is imported instead of the
``.py``: edit the source and the old code keeps running. ``tracker/_native_build.json``,
written at build time, records the sha256 of the sources the ``.so`` files were built from;
the first test fails with one line when they no longer match. The wheel tests build from a copy
of the tree (offline, ``--no-build-isolation`` with the venv's setuptools and mypy) and check
the three ways out: compiled, pure on request, pure when the C compiler fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

import tracker
import tracker.geo
import tracker.gps.filters
import tracker.gps.nmea.decoder
import tracker.gps.nmea.framing
import tracker.gps.nmea.sentences
import tracker.ride.geometry
import tracker.ride.sampler

REPO = Path(__file__).resolve().parents[2]
COMPILED = {
    "tracker/geo.py": tracker.geo,
    "tracker/ride/geometry.py": tracker.ride.geometry,
    "tracker/ride/sampler.py": tracker.ride.sampler,
    "tracker/gps/nmea/framing.py": tracker.gps.nmea.framing,
    "tracker/gps/nmea/sentences.py": tracker.gps.nmea.sentences,
    "tracker/gps/nmea/decoder.py": tracker.gps.nmea.decoder,
    "tracker/gps/filters.py": tracker.gps.filters,
}
RECORD = Path(tracker.__file__).parent / "_native_build.json"


def is_compiled(module: ModuleType) -> bool:
    return str(module.__file__).endswith((".so", ".pyd"))


def test_compiled_modules_were_built_from_the_source_beside_them() -> None:
    compiled = [path for path, module in COMPILED.items() if is_compiled(module)]
    if not compiled:
        return  # a pure install runs the .py files themselves: nothing can be stale
    if len(compiled) != len(COMPILED) or not RECORD.is_file():
        pytest.fail("the compiled sampler is incomplete (a partial build): run ./scripts/setup",
                    pytrace=False)
    built = json.loads(RECORD.read_text())["sources"]
    for path, module in COMPILED.items():
        source = Path(str(module.__file__)).parent / Path(path).name
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if built.get(path) != digest:
            pytest.fail(f"{path} changed since it was compiled (the .so runs the old code): "
                        "run ./scripts/setup", pytrace=False)


def _can_compile() -> str | None:
    """Why this machine cannot build the extensions, or None when it can."""
    if os.environ.get("TRACKER_PURE_PYTHON", "") not in ("", "0"):
        return "TRACKER_PURE_PYTHON is set"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(os.environ.get("CC", cc).split()[0]) is None:
        return f"no C compiler ({cc})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return "no Python headers (python3-dev)"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed"
    return None


def test_the_dev_install_runs_the_compiled_sampler() -> None:
    """Where a compiler exists, tests, demo and benchmarks run what a Pi runs: the .so."""
    reason = _can_compile()
    if reason is not None:
        pytest.skip(f"pure-Python install expected here: {reason}")
    for path, module in COMPILED.items():
        assert is_compiled(module), f"{path} is not compiled: run ./scripts/setup"


# ---- wheels built from a copy of the tree ---------------------------------------------------


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "tracker",
        src / "tracker",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "_native_build.json"),
    )
    return src


def _wheel(tmp_path: Path, src: Path | None = None, **env: str) -> tuple[zipfile.ZipFile, str]:
    """Build a wheel of the tree (pip -v: the build's own output), return it and that output."""
    src = src or _tree(tmp_path)
    out = tmp_path / f"dist-{len(list(tmp_path.glob('dist-*')))}"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), "."],
        cwd=src, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TRACKER_PURE_PYTHON": "", **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("tracker-*.whl")
    return zipfile.ZipFile(wheel), result.stdout + result.stderr


def _run_from(wheel: zipfile.ZipFile, tmp_path: Path) -> dict[str, str]:
    """Unpack the wheel and, in a clean interpreter (-S -I: no site, not this tree), import the
    three modules and feed a sampler a short ride; their __file__ and the ride's points."""
    site = tmp_path / f"site-{len(list(tmp_path.glob('site-*')))}"
    wheel.extractall(site)
    code = """
import json, sys
sys.path.insert(0, sys.argv[1])
from datetime import UTC, datetime
import tracker.geo, tracker.ride.geometry, tracker.ride.sampler as s
from tracker.model import Fix
sampler = s.Sampler(5.0, 10)
pts = []
for i in range(120):
    t = 1_700_000_000 + i
    f = Fix(time=datetime.fromtimestamp(t, tz=UTC), unix=t, lat=48 + i * 1e-5,
            lon=11 + (i % 13) * 3e-5, alt_msl=None)
    pts += sampler.feed(f)
pts += sampler.flush()
print(json.dumps({"files": [m.__file__ for m in (tracker.geo, tracker.ride.geometry, s)],
                  "points": repr(pts)}))
"""
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code, str(site)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    info: dict[str, str] = json.loads(result.stdout)
    return info


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if "tracker: WARNING" in line]


@pytest.mark.slow
def test_a_wheel_carries_the_compiled_sampler_built_without_fma(tmp_path: Path) -> None:
    reason = _can_compile()
    if reason is not None:
        pytest.skip(reason)
    wheel, output = _wheel(tmp_path)
    names = wheel.namelist()
    for stem in (path.removesuffix(".py") for path in COMPILED):
        assert any(n.startswith(stem + ".") and n.endswith(".so") for n in names), stem
        assert f"{stem}.py" in names  # the source ships too (tracebacks, the equivalence test)
    assert any(n.startswith("tracker_native__mypyc.") for n in names)
    assert "tracker/_native_build.json" in names
    assert _warnings(output) == []
    # Every C compile of the build: no FMA contraction, nothing that relaxes IEEE floats.
    compiles = [line for line in output.splitlines() if " -c " in line and ".c " in line]
    assert compiles
    for line in compiles:
        assert "-ffp-contract=off" in line.split(), line
        assert "fast-math" not in line
        assert "-Ofast" not in line
    info = _run_from(wheel, tmp_path)
    assert all(f.endswith(".so") for f in info["files"]), info["files"]
    assert info["points"] == repr(_pure_points())
    # Then a pure build of the same checkout (install-pi --pure-python after a compiled
    # install): the old .so files in its build/lib must not come back in the wheel.
    assert list((tmp_path / "src" / "build").glob("lib*/tracker/ride/sampler.*.so"))
    pure, _ = _wheel(tmp_path, tmp_path / "src", TRACKER_PURE_PYTHON="1")
    assert not [n for n in pure.namelist() if n.endswith((".so", ".pyd"))]
    assert "tracker/_native_build.json" not in pure.namelist()


def _pure_points() -> list[object]:
    """The same ride through the sampler of this process (compiled or not: both agree)."""
    from datetime import UTC, datetime

    from tracker.model import Fix

    sampler = tracker.ride.sampler.Sampler(5.0, 10)
    pts: list[object] = []
    for i in range(120):
        t = 1_700_000_000 + i
        f = Fix(time=datetime.fromtimestamp(t, tz=UTC), unix=t, lat=48 + i * 1e-5,
                lon=11 + (i % 13) * 3e-5, alt_msl=None)  # fmt: skip
        pts += sampler.feed(f)
    pts += sampler.flush()
    return pts


def test_tracker_pure_python_builds_a_pure_wheel_that_works(tmp_path: Path) -> None:
    wheel, output = _wheel(tmp_path, TRACKER_PURE_PYTHON="1")
    info = _assert_pure_wheel_that_runs(wheel, output, tmp_path, says="TRACKER_PURE_PYTHON")
    assert info["points"] == repr(_pure_points())


@pytest.mark.slow
def test_a_failing_c_compiler_falls_back_to_pure_python(tmp_path: Path) -> None:
    """No compiler, no headers, a compiler error: the install still succeeds, pure, and says so
    in one line."""
    if shutil.which("false") is None:
        pytest.skip("no false(1) to stand in for a broken compiler")
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        pytest.skip("mypyc is not installed: the build never reaches the compiler")
    wheel, output = _wheel(tmp_path, CC="false")
    _assert_pure_wheel_that_runs(wheel, output, tmp_path, says="C build failed")


def _assert_pure_wheel_that_runs(
    wheel: zipfile.ZipFile, output: str, tmp_path: Path, *, says: str
) -> dict[str, str]:
    """No compiled file in the wheel, one warning line saying ``says``, and the installed
    modules are the .py files; what the wheel's sampler gave (``_run_from``)."""
    assert not [n for n in wheel.namelist() if n.endswith((".so", ".pyd"))]
    assert "tracker/_native_build.json" not in wheel.namelist()
    (line,) = _warnings(output)
    assert says in line
    info = _run_from(wheel, tmp_path)
    assert all(f.endswith(".py") for f in info["files"]), info["files"]
    return info


def test_setup_and_the_setup_script_compile_the_modules_this_test_checks() -> None:
    """One list in three places (setup.py builds, scripts/setup rebuilds on a change, this test
    guards): a module added to one and not the others would go stale or be missed."""
    setup_py = (REPO / "setup.py").read_text()
    setup_sh = (REPO / "scripts" / "setup").read_text()
    compiled_list = setup_py.split("COMPILED = ", 1)[1].split("]")[0]
    listed = re.findall(r"\"(tracker/[\w/]+\.py)\"", compiled_list)
    assert sorted(listed) == sorted(COMPILED)
    for path in COMPILED:
        assert path in setup_sh, path
