"""NMEA 0183 → fixes: pure, no I/O.

``FixDecoder().feed(raw_bytes) -> list[Fix]`` is the whole public surface most callers need:
:mod:`.framing` splits lines and checks checksums, :mod:`.sentences` (or pynmea2 via
:mod:`.reference`) extracts the fields of the seven fix-carrying sentence types, and
:mod:`.decoder` merges each receiver epoch into one :class:`~tracker.model.Fix`. :mod:`.tpv`
renders fixes as gpsd TPV objects and reads gpsd's TPV back; :mod:`.pacing` finds the GPS time
of recorded lines so replays can keep the receiver's pace. File reading lives in
``tracker.gps.replay`` (``read_fixes(path)``).
"""

from tracker.gps.nmea.decoder import DecoderStats, FixDecoder
from tracker.gps.nmea.framing import Framer, FramingStats, nmea_checksum

__all__ = ["DecoderStats", "FixDecoder", "Framer", "FramingStats", "nmea_checksum"]
