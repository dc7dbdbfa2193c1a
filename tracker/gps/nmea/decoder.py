"""Raw receiver bytes → one immutable :class:`~tracker.model.Fix` per receiver epoch.

The pipeline is framing (:mod:`.framing`: lines, checksums, skipping what we do not use) →
field extraction (:mod:`.sentences`, or pynmea2 via :mod:`.reference`) → epoch assembly (here).

Epochs. A receiver sends a burst of sentences per epoch, all stamped with the same UTC time of
day. Sentences without a time (GSA, VTG) belong to the epoch being assembled. Within an epoch the
last valid position wins, as in gpsd. An epoch is complete, and its Fix returned, at the first of:

* its cycle's last sentence. Like gpsd, the decoder learns which sentence closes the receiver's
  burst: at every change of time it notes the last fix-carrying sentence of the epoch before
  (talker + type, and which occurrence of it: u-blox sends GNGSA twice). Once the same one closed
  :data:`ENDER_CONFIRM` epochs in a row, an epoch whose last sentence so far is that one is
  closed when the bytes fed so far end there (what follows in the same bytes decides for sure).
  A sentence of the epoch arriving after that (an irregular cycle) is ``late``: it is counted, it
  cannot change the fix already returned, and the decoder then wants
  :data:`ENDER_CONFIRM_MAX` epochs in a row before it trusts an ender again. Sentences we do not
  use (GSV, TXT, ``$P…``) carry nothing for the fix, so they neither end nor extend a cycle.
* :meth:`FixDecoder.quiet`: the caller saw the line go quiet after a whole sentence (the decoder
  has no clock; see :class:`tracker.gps.stream.FixStream`), or :meth:`FixDecoder.end_epoch` at a
  stop.
* a sentence with another time (the only rule before the cycle is learned: one burst late).
* :meth:`FixDecoder.resync` (the device went away) or :meth:`FixDecoder.flush` (end of input).

Dates. NMEA times carry no date; RMC (``ddmmyy``) and ZDA do. The date is never taken from the
computer's clock (a Raspberry Pi has no RTC). Between dated sentences the date is carried
forward and advanced when the time of day wraps past midnight. Fixes seen before any date is
known are held back (bounded) and released with the right date once one arrives, or counted as
``undated`` and dropped at the end. GPS week-number rollover: a date before ``rollover_floor``
(the live tracker passes its release date) is moved 1024 weeks forward and counted. Without a
floor (recordings), so is a date 1023+ weeks before the latest date of the stream; a date that far
*ahead* of the stream's dates counts as its latest only once :data:`ROLLOVER_CONFIRM` dated epochs
in a row agree, so one future outlier cannot move every later correct date 20 years ahead.

Pure: no I/O, no clock, no logging; callers read :attr:`FixDecoder.stats`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from tracker.gps.nmea.framing import Framer, FramingStats
from tracker.gps.nmea.sentences import FIX_TYPES, PARSERS, Report
from tracker.model import Fix, FixMode

DAY_MS = 86_400_000
WEEK_ROLLOVER = timedelta(weeks=1024)
ROLLOVER_GAP = timedelta(weeks=1023)  # this far apart, two dates are a rollover (or an outlier)
ROLLOVER_CONFIRM = 3  # dated epochs in a row that make a date that far ahead the stream's latest
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
NAN = float("nan")
_MODES = tuple(FixMode)  # index = GSA mode number (enum call is slow on this path)


@dataclass(slots=True)
class DecoderStats(FramingStats):
    """Counters for everything the decoder saw and did (see :class:`FramingStats` for framing)."""

    malformed: int = 0  # a fix-type sentence with unusable fields
    epochs: int = 0  # epochs emitted (with or without a position)
    fixes: int = 0  # emitted epochs with a position (mode 2D/3D)
    no_fix: int = 0  # emitted epochs without a position (receiver searching)
    held_no_date: int = 0  # positions held back right now, waiting for a date
    undated: int = 0  # positions dropped because no date ever came
    undated_no_fix: int = 0  # epochs without position and without date (nothing to hold)
    rollover_corrected: int = 0  # epochs whose date was moved 1024 weeks forward
    time_backwards: int = 0  # epochs whose time is before the previous epoch's
    closed_at_cycle_end: int = 0  # epochs closed by their learned last sentence
    closed_on_quiet: int = 0  # epochs closed because the line went quiet (quiet/end_epoch)
    late: int = 0  # sentences that came after their epoch was closed early (ignored)
    late_after_quiet: int = 0  # of which after a quiet close (the caller's gap was too short)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


ENDER_CONFIRM = 2  # epochs in a row the same sentence must close before it ends the cycle
ENDER_CONFIRM_MAX = 64  # after a late sentence: trust an ender only after this many in a row

Ender = tuple[bytes, int]  # (talker + type, e.g. b"GNGSA"; its occurrence in the epoch, from 1)


class _Epoch:
    """The mutable accumulator for one epoch; becomes a Fix when the epoch is complete."""

    __slots__ = ("alt", "counts", "course", "day", "gsa_mode", "hdop", "last", "lat", "lon",
                 "sats", "speed", "tod", "valid")  # fmt: skip

    def __init__(self, tod: int) -> None:
        self.tod = tod
        self.valid: bool | None = None
        self.lat = NAN
        self.lon = NAN
        self.alt: float | None = None
        self.speed: float | None = None
        self.course: float | None = None
        self.sats: int | None = None
        self.hdop: float | None = None
        self.gsa_mode: int | None = None
        self.day: date | None = None
        self.counts: dict[bytes, int] = {}
        self.last: Ender | None = None  # the last fix-carrying sentence merged, for learning

    def note(self, key: bytes) -> Ender:
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        last = self.last = (key, count)
        return last

    def merge(self, r: Report) -> None:
        if r.valid:
            self.valid = True
            self.lat = r.lat  # type: ignore[assignment]  # valid reports carry a position
            self.lon = r.lon  # type: ignore[assignment]
            if r.alt_msl is not None:
                self.alt = r.alt_msl
        elif r.valid is False and self.valid is None:
            self.valid = False
        if r.speed_mps is not None:
            self.speed = r.speed_mps
        if r.course_deg is not None:
            self.course = r.course_deg
        if r.sats is not None:
            self.sats = r.sats
        if r.hdop is not None:
            self.hdop = r.hdop
        if r.mode is not None:
            self.gsa_mode = r.mode
        if r.day is not None:
            self.day = r.day


Engine = Literal["fast", "pynmea2"]


class FixDecoder:
    """Feed raw bytes in any chunking; get back the epochs completed so far as Fix objects.

    ``engine="fast"`` (default) extracts fields with :mod:`.sentences`; ``engine="pynmea2"``
    lets pynmea2 parse each fix sentence instead (about 5x slower, kept as the reference the
    fast path is tested against). ``rollover_floor``: dates before it are GPS week-rollover
    victims (pass the software's release date for a live receiver; None for old recordings).
    ``max_held`` bounds the fixes held back while no date is known.
    """

    def __init__(
        self,
        *,
        engine: Engine = "fast",
        rollover_floor: date | None = None,
        max_held: int = 3600,
        learn_cycle_end: bool = True,
    ) -> None:
        self.stats = DecoderStats()
        self._framer = Framer(FIX_TYPES, self.stats)
        self._parse: Callable[[list[bytes]], Report | None]
        if engine == "pynmea2":
            from tracker.gps.nmea.reference import parse_with_pynmea2

            self._parse = parse_with_pynmea2
        else:
            self._parse = _fast_parse
        self._floor = rollover_floor
        self._epoch: _Epoch | None = None
        self._date: date | None = None  # date of the last dated epoch
        self._date_tod = 0  # its time of day
        self._max_date: date | None = None  # the latest date of the stream (see _note_date)
        self._ahead = 0  # dated epochs in a row 1023+ weeks after _max_date
        self._last_tod: int | None = None
        self._held: deque[_Epoch] = deque()
        self._max_held = max_held
        # End-of-cycle detection (see the module docstring).
        self._ender: Ender | None = None  # the candidate last sentence of a cycle
        self._ender_seen = 0  # epochs in a row it closed
        self._ender_need = ENDER_CONFIRM
        self._early: _Epoch | None = None  # closed early, and no newer epoch begun since
        self._early_on_quiet = False
        # False: the rule before end-of-cycle detection (an epoch closes when the next begins),
        # the baseline benchmarks/gps_latency.py measures against.
        self._learn_cycle_end = learn_cycle_end

    # -- public API ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Fix]:
        """Add raw bytes; return the epochs completed by them (oldest first)."""
        out: list[Fix] = []
        for body in self._framer.feed(data):
            self._sentence(body, out)
        epoch = self._epoch
        if (
            epoch is not None
            and epoch.last == self._ender
            and self._ender_seen >= self._ender_need
            and not self._framer.has_partial
        ):
            # The cycle's last sentence, and nothing after it yet: the epoch is complete. (Only
            # at the end of the bytes at hand: what follows in them tells for sure.)
            self.stats.closed_at_cycle_end += 1
            self._close_early(out, on_quiet=False)
        return out

    @property
    def pending(self) -> bool:
        """An epoch is being assembled: :meth:`quiet` or :meth:`end_epoch` would return it."""
        return self._epoch is not None

    @property
    def cycle_end_known(self) -> bool:
        """The receiver's last sentence of a cycle is learned (epochs close on it)."""
        return self._ender is not None and self._ender_seen >= self._ender_need

    def quiet(self) -> list[Fix]:
        """The line went quiet after a whole sentence: the burst is over, close its epoch.

        Nothing happens while half a line is pending (the line stalled mid-sentence).
        """
        if self._framer.has_partial:
            return []
        return self.end_epoch()

    def end_epoch(self) -> list[Fix]:
        """Close the epoch being assembled now (a stop): every sentence received is in it."""
        out: list[Fix] = []
        if self._epoch is not None:
            self._close_early(out, on_quiet=True)
        return out

    def resync(self) -> list[Fix]:
        """The byte stream broke (device unplugged): drop the partial line, close the epoch.

        The date and the held-back fixes are kept: the same receiver is expected back.
        """
        self._framer.discard_partial()
        out: list[Fix] = []
        self._close(out)
        self._early = None
        return out

    def flush(self) -> list[Fix]:
        """End of input: the last line, the last epoch; fixes still without a date are dropped."""
        out: list[Fix] = []
        for body in self._framer.flush():
            self._sentence(body, out)
        self._close(out)
        self._early = None
        self.stats.undated += len(self._held)
        self._held.clear()
        self.stats.held_no_date = 0
        return out

    # -- internals ----------------------------------------------------------------------------

    def _sentence(self, body: bytes, out: list[Fix]) -> None:
        try:
            report = self._parse(body.split(b","))
        except (ValueError, IndexError, TypeError, OverflowError, AttributeError, KeyError):
            self.stats.malformed += 1
            return
        if report is None:
            self.stats.malformed += 1
            return
        tod = report.tod_ms
        epoch = self._epoch
        if tod is not None and (epoch is None or epoch.tod != tod):
            early = self._early
            if epoch is None and early is not None and early.tod == tod:
                self._late(early, body)
                return
            self._learn(epoch if epoch is not None else early)
            self._close(out)
            self._early = None
            epoch = self._epoch = _Epoch(tod)
        elif epoch is None:
            if self._early is not None:
                self._late(self._early, body)
            # Untimed sentences (GSA, VTG) before the first timed one have no epoch: ignored.
            return
        epoch.merge(report)
        epoch.note(body[:5])

    def _close_early(self, out: list[Fix], *, on_quiet: bool) -> None:
        """Close the epoch before the next one begins; remember it to catch late sentences."""
        self._early = self._epoch
        self._early_on_quiet = on_quiet
        if on_quiet:
            self.stats.closed_on_quiet += 1
        self._close(out)

    def _learn(self, previous: _Epoch | None) -> None:
        """A new epoch begins: the previous one's last sentence is a cycle-ender candidate."""
        if previous is None or previous.last is None or not self._learn_cycle_end:
            return
        if previous.last == self._ender:
            self._ender_seen += 1
        else:
            self._ender = previous.last
            self._ender_seen = 1

    def _late(self, early: _Epoch, body: bytes) -> None:
        """A sentence of an epoch already returned: too late for its fix; learn from it."""
        self.stats.late += 1
        early.note(body[:5])  # the epoch's true last sentence is what _learn must see
        if self._early_on_quiet:
            self.stats.late_after_quiet += 1
        else:
            # The cycle is not as regular as it looked (a sentence that ends most bursts also
            # comes mid-burst in others, as in 10 Hz receivers with a 1 Hz RMC): trust an ender
            # again only after a long run; the quiet line closes epochs meanwhile.
            self._ender_seen = 0
            self._ender_need = ENDER_CONFIRM_MAX

    def _close(self, out: list[Fix]) -> None:
        epoch = self._epoch
        if epoch is None:
            return
        self._epoch = None
        if (
            self._last_tod is not None
            and epoch.tod < self._last_tod
            and (self._last_tod - epoch.tod < DAY_MS // 2)
        ):
            self.stats.time_backwards += 1
        self._last_tod = epoch.tod
        day = self._date_for(epoch)
        if day is None:
            if epoch.valid:
                self._held.append(epoch)
                if len(self._held) > self._max_held:
                    self._held.popleft()
                    self.stats.undated += 1
                self.stats.held_no_date = len(self._held)
            else:
                self.stats.undated_no_fix += 1
            return
        if self._held:
            self._release_held(day, epoch.tod, out)
        out.append(self._make_fix(epoch, day))

    def _date_for(self, epoch: _Epoch) -> date | None:
        day = epoch.day
        if day is not None:
            day = self._corrected(day)
        elif self._date is not None:
            day = self._date
            if epoch.tod < self._date_tod - DAY_MS // 2:
                day = day + timedelta(days=1)  # the time of day wrapped past midnight
            elif epoch.tod > self._date_tod + DAY_MS // 2:
                day = day - timedelta(days=1)  # a late sentence from before midnight
                return day  # do not move the carried date backwards
        else:
            return None
        self._date = day
        self._date_tod = epoch.tod
        self._note_date(day, dated=epoch.day is not None)
        return day

    def _note_date(self, day: date, *, dated: bool) -> None:
        """Raise the stream's latest date; a leap of 1023+ weeks only once confirmed."""
        top = self._max_date
        if top is None or (day > top and day - top < ROLLOVER_GAP):
            self._max_date = day
            self._ahead = 0
        elif day - top >= ROLLOVER_GAP:
            if dated:  # a date carried from the outlier itself confirms nothing
                self._ahead += 1
            if self._ahead >= ROLLOVER_CONFIRM:
                self._max_date = day
                self._ahead = 0
        elif dated:
            self._ahead = 0

    def _corrected(self, day: date) -> date:
        floor = self._floor
        moved = False
        if floor is not None:
            while day < floor:
                day += WEEK_ROLLOVER
                moved = True
        # A date at or after the floor cannot be 1024 weeks early (until the floor is 19 years
        # old), so with a floor the stream's latest date is not consulted at all.
        elif self._max_date is not None and day <= self._max_date - ROLLOVER_GAP:
            day += WEEK_ROLLOVER
            moved = True
        if moved:
            self.stats.rollover_corrected += 1
        return day

    def _release_held(self, day: date, tod: int, out: list[Fix]) -> None:
        """Date the held-back fixes from the first dated epoch after them."""
        for held in self._held:
            held_day = day - timedelta(days=1) if held.tod > tod + DAY_MS // 2 else day
            out.append(self._make_fix(held, held_day))
        self._held.clear()
        self.stats.held_no_date = 0

    def _make_fix(self, e: _Epoch, day: date) -> Fix:
        stats = self.stats
        stats.epochs += 1
        unix = (day.toordinal() - _EPOCH_ORDINAL) * 86400 + e.tod / 1000
        when = datetime.fromtimestamp(unix, UTC)
        if not e.valid:
            stats.no_fix += 1
            return Fix(when, unix, NAN, NAN, FixMode.NO_FIX, sats=e.sats, hdop=e.hdop)
        stats.fixes += 1
        gsa = e.gsa_mode
        if gsa is not None and gsa >= 2:
            mode = _MODES[gsa]
        else:
            mode = FixMode.FIX_3D if e.alt is not None else FixMode.FIX_2D
        return Fix(when, unix, e.lat, e.lon, mode, e.alt, e.speed, e.course, e.sats, e.hdop)


def _fast_parse(fields: list[bytes]) -> Report | None:
    parser = PARSERS.get(fields[0][2:])
    return parser(fields) if parser is not None else None
