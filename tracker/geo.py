"""Small, fast geodesy for distances of metres to kilometres on a WGS84-sized sphere.

A spherical model is off by at most 0.5 % against the ellipsoid: far below GPS noise for the
question "how far apart are these two fixes", and cheap enough for every fix on a Pi Zero.
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 positions in degrees."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class LocalFrame:
    """An equirectangular plane around an origin: metres east (x) and north (y) of it.

    Linear in latitude and longitude, so straight lines (and linear interpolation in time) in
    degrees stay straight in the plane, which the sampler's cone geometry relies on. The scale
    east-west is exact only at the origin's latitude: at ``d`` metres north or south of it the
    relative error is about ``tan(lat) * d / R`` (3e-4 at 1 km and 60°), so callers keep the
    origin near the data and leave a matching margin.
    """

    __slots__ = ("_kx", "_ky", "lat0", "lon0")

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0 = lat0
        self.lon0 = lon0
        self._ky = math.radians(1.0) * EARTH_RADIUS_M
        self._kx = self._ky * math.cos(math.radians(lat0))

    def scale_error(self, lat: float) -> float:
        """Relative error of east-west distances measured in this plane near ``lat``."""
        return abs(math.cos(math.radians(lat)) * self._ky / self._kx - 1.0)

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        """Metres east and north of the origin."""
        dlon = lon - self.lon0
        if dlon > 180.0:
            dlon -= 360.0
        elif dlon < -180.0:
            dlon += 360.0
        return dlon * self._kx, (lat - self.lat0) * self._ky

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        """Degrees (latitude, longitude in [-180, 180)) of a point of the plane."""
        lon = self.lon0 + x / self._kx
        if lon >= 180.0:
            lon -= 360.0
        elif lon < -180.0:
            lon += 360.0
        return self.lat0 + y / self._ky, lon
