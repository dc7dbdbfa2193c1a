"""The compiled core (mypyc, setup.py) gives exactly what its pure-Python source gives.

The installed ``tracker.geo``, ``tracker.ride.geometry``, ``tracker.ride.sampler`` and the NMEA
decoder with its framing, sentence parsers and fix filters are the compiled ones when the install
compiled them; their ``.py`` sources are loaded here again as
separate, interpreted modules. Both must agree to the last bit (``repr`` of every float) on
chains of disk clips and on whole rides, snapshots included: a C compiler that fused
``a * b + c`` into an FMA, or a mypyc semantics gap, shows up here. Skipped on a pure install.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracker.geo
import tracker.gps.filters
import tracker.gps.nmea.decoder
import tracker.gps.nmea.framing
import tracker.gps.nmea.sentences
import tracker.ride.geometry
import tracker.ride.sampler
from tests.property.test_sampler_properties import rides
from tracker.model import Fix

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "tracker.geo": "_pure_geo",
    "tracker.ride.geometry": "_pure_geometry",
    "tracker.ride.sampler": "_pure_sampler",
    "tracker.gps.nmea.framing": "_pure_framing",
    "tracker.gps.nmea.sentences": "_pure_sentences",
    "tracker.gps.nmea.decoder": "_pure_decoder",
    "tracker.gps.filters": "_pure_filters",
}
NATIVE = (
    tracker.geo,
    tracker.ride.geometry,
    tracker.ride.sampler,
    tracker.gps.nmea.framing,
    tracker.gps.nmea.sentences,
    tracker.gps.nmea.decoder,
    tracker.gps.filters,
)


def is_compiled(module: ModuleType) -> bool:
    return str(module.__file__).endswith((".so", ".pyd"))


pytestmark = pytest.mark.skipif(
    not all(is_compiled(m) for m in NATIVE),
    reason="pure-Python install: nothing compiled to compare (TRACKER_PURE_PYTHON, or no C "
    "compiler when ./scripts/setup ran)",
)


def load_pure_sources() -> dict[str, ModuleType]:
    """The three modules' .py files, interpreted, as modules of their own (sharing
    tracker.model), each importing the others' pure copies instead of the compiled ones."""
    loaded: dict[str, ModuleType] = {}
    for dotted, name in SOURCES.items():
        if name in sys.modules:
            loaded[dotted] = sys.modules[name]
            continue
        path = ROOT / (dotted.replace(".", "/") + ".py")
        src = path.read_text()
        for other, other_name in SOURCES.items():
            src = src.replace(f"from {other} import", f"from {other_name} import")
        module = ModuleType(name)
        module.__file__ = str(path)
        sys.modules[name] = module  # dataclasses look their module up while being made
        exec(compile(src, str(path), "exec"), module.__dict__)  # noqa: S102 - our own source
        loaded[dotted] = module
    return loaded


PURE = load_pure_sources()


def test_the_pure_copies_are_interpreted() -> None:
    """The comparison is not vacuous: one side is bytecode, the other native code."""
    assert type(PURE["tracker.ride.geometry"].clip_disk).__name__ == "function"
    assert type(tracker.ride.geometry.clip_disk).__name__ == "builtin_function_or_method"
    assert not hasattr(tracker.ride.sampler.Sampler.feed, "__code__")
    assert hasattr(PURE["tracker.ride.sampler"].Sampler.feed, "__code__")
    assert not hasattr(tracker.gps.nmea.decoder.FixDecoder.feed, "__code__")
    assert hasattr(PURE["tracker.gps.nmea.decoder"].FixDecoder.feed, "__code__")


def _outcome(fn: Any, *args: Any) -> str:
    try:
        return repr(fn(*args))
    except Exception as exc:  # the same error, from both, is agreement too
        return f"raised {type(exc).__name__}: {exc}"


coord = st.floats(-200.0, 200.0, allow_nan=False, allow_infinity=False)
frac = st.floats(-1.5, 1.5, allow_nan=False)
# Disks that overlap the first one mostly (as the sampler's cone does), and some edge radii.
disk_chains = st.tuples(
    coord,
    coord,
    st.one_of(st.floats(1e-3, 300.0), st.sampled_from([1e-9, 1.0, 5.0, 10.0])),
    st.lists(st.tuples(frac, frac, st.floats(0.2, 2.5)), min_size=1, max_size=14),
)


@settings(max_examples=300)
@given(disk_chains)
def test_clip_disk_chains_are_identical(
    chain: tuple[float, float, float, list[tuple[float, float, float]]],
) -> None:
    x0, y0, r0, steps = chain
    pure = PURE["tracker.ride.geometry"]
    native = tracker.ride.geometry
    poly_p: list[float] | None = None
    poly_n: list[float] | None = None
    for fx, fy, fr in [(0.0, 0.0, 1.0), *steps]:
        cx, cy, r = x0 + fx * r0, y0 + fy * r0, fr * r0
        out_p = _outcome(pure.clip_disk, poly_p, cx, cy, r)
        out_n = _outcome(native.clip_disk, poly_n, cx, cy, r)
        assert out_n == out_p, (cx, cy, r)
        if out_p.startswith("raised"):
            return
        poly_p = pure.clip_disk(poly_p, cx, cy, r)
        poly_n = native.clip_disk(poly_n, cx, cy, r)
        if not poly_p:
            return
        assert repr(pure.area(poly_p)) == repr(native.area(poly_n))
        assert repr(pure.centroid(poly_p)) == repr(native.centroid(poly_n))
        assert repr(pure.nearest_point(poly_p, cx + r, cy)) == repr(
            native.nearest_point(poly_n, cx + r, cy)
        )


@settings(max_examples=300)
@given(coord, coord, coord, coord)
def test_local_frame_and_haversine_are_identical(
    lat: float, lon: float, dlat: float, dlon: float
) -> None:
    lat1, lon1 = max(-89.0, min(89.0, lat / 2.5)), lon
    lat2, lon2 = max(-89.0, min(89.0, lat1 + dlat / 1000)), lon1 + dlon / 1000
    pure = PURE["tracker.geo"]
    native = tracker.geo
    assert repr(pure.haversine_m(lat1, lon1, lat2, lon2)) == repr(
        native.haversine_m(lat1, lon1, lat2, lon2)
    )


def _ride(module: ModuleType, fixes: list[Fix], eps: float, delay: int, lookahead: bool,
          cut: int) -> list[str]:
    """Every feed's output, the counters, and a snapshot part way and at the end, as text."""
    sampler = module.Sampler(eps, delay, lookahead=lookahead)
    seen: list[str] = []
    for i, fix in enumerate(fixes):
        if i == cut:
            seen.append(json.dumps(sampler.snapshot(), sort_keys=True))
        seen.append(repr(sampler.feed(fix)))
    seen.append(repr(sampler.counters()))
    seen.append(json.dumps(sampler.snapshot(), sort_keys=True))
    seen.append(repr(sampler.flush()))
    return seen


@settings(max_examples=40)
@given(rides(), st.booleans(), st.integers(0, 10_000))
def test_whole_rides_are_identical(
    ride: tuple[list[Fix], float, int], lookahead: bool, cut: int
) -> None:
    fixes, eps, delay = ride
    cut = cut % (len(fixes) + 1)
    pure = _ride(PURE["tracker.ride.sampler"], fixes, eps, delay, lookahead, cut)
    native = _ride(tracker.ride.sampler, fixes, eps, delay, lookahead, cut)
    assert len(native) == len(pure)
    for i, (n, p) in enumerate(zip(native, pure, strict=True)):
        assert n == p, f"step {i} of {len(pure)} differs"


def test_a_snapshot_moves_between_the_implementations() -> None:
    """Crash recovery across an upgrade from pure to compiled (or back) continues the ride."""
    from tests.property.test_sampler_properties import _fix

    fixes = [_fix(1_700_000_000 + i, 48.0 + i * 1e-5, 11.0 + (i % 17) * 2e-5) for i in range(300)]
    native = tracker.ride.sampler.Sampler(5.0, 30)
    pure_cls = PURE["tracker.ride.sampler"].Sampler
    out_n: list[str] = []
    out_p: list[str] = []
    for f in fixes[:150]:
        out_n.append(repr(native.feed(f)))
    state = json.loads(json.dumps(native.snapshot()))
    pure = pure_cls.restore(state)
    native2 = tracker.ride.sampler.Sampler.restore(state)
    for f in fixes[150:]:
        out_p.append(repr(pure.feed(f)))
        out_n.append(repr(native2.feed(f)))
    assert out_n[150:] == out_p
    assert repr(native2.flush()) == repr(pure.flush())


def _decoded(package: dict[str, ModuleType], data: bytes, chunk: int) -> list[str]:
    """Every fix of ``data`` fed in ``chunk``-byte pieces, each filter verdict, and the
    decoder's counters, as text."""
    decoder = package["tracker.gps.nmea.decoder"].FixDecoder()
    filt = package["tracker.gps.filters"].FixFilter(5.0, 70.0)
    seen: list[str] = []
    for i in range(0, len(data), chunk):
        for fix in decoder.feed(data[i : i + chunk]):
            seen.append(repr(fix))
            seen.append(repr(filt.accept(fix)))
    seen += [repr(fix) for fix in decoder.flush()]
    seen.append(repr(decoder.stats))
    seen.append(repr(filt.as_dict()))
    return seen


NATIVE_GPS = {
    "tracker.gps.nmea.decoder": tracker.gps.nmea.decoder,
    "tracker.gps.filters": tracker.gps.filters,
}


def test_every_shared_log_decodes_identically() -> None:
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"no shared recordings at {SHARED_DATA} (the property test below still runs)")
    logs = sorted(
        p for p in SHARED_DATA.rglob("*") if p.is_file() and p.suffix not in (".chk", ".md")
    )
    assert logs
    for log in logs:
        data = log.read_bytes()
        assert _decoded(NATIVE_GPS, data, 256) == _decoded(PURE, data, 256), log.name


_SENTENCES = [
    b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n",
    b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n",
    b"$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39\r\n",
    b"$GPVTG,054.7,T,034.4,M,005.5,N,010.2,K*48\r\n",
    b"$GPZDA,201530.00,04,07,2002,00,00*60\r\n",
]


@settings(max_examples=150)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_SENTENCES),
            st.binary(max_size=40),
            st.sampled_from(_SENTENCES).flatmap(
                lambda s: st.integers(0, len(s) - 1).map(lambda i: s[:i] + b"9" + s[i + 1 :])
            ),
        ),
        max_size=40,
    ),
    st.integers(1, 97),
)
def test_garbled_nmea_decodes_identically(pieces: list[bytes], chunk: int) -> None:
    data = b"".join(pieces)
    assert _decoded(NATIVE_GPS, data, chunk) == _decoded(PURE, data, chunk)
