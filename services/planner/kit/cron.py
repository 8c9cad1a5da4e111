"""Cron schedules exactly as the library AdvancedCronJob pins computes them (robfig/cron v3.0.1, `ParseStandard`).

Kruise's AdvancedCronJob controller (`pkg/controller/advancedcronjob/advancedcronjob_utils.go`) parses
`spec.schedule` with `cron.ParseStandard` and steps through slots with `Schedule.Next`. Users notice
every deviation from that library (a missed DST hour, one run too many in the repeated hour, a message
that reads differently from Kruise's), so this module re-implements it rather than using a generic cron
package:

* the 5-field dialect (minute, hour, day-of-month, month, day-of-week; names; `*`/`?`; ranges, steps,
  lists; the Vixie day rule), the descriptors (`@yearly` ... `@hourly`), `@every <Go duration>` and the
  `TZ=`/`CRON_TZ=` prefix, with the parser's error texts;
* `Next` as robfig writes it: convert into the schedule's zone, search month, day, hour, minute, second,
  stepping hours and minutes as real durations, and building dates the way Go's `time.Date` normalises a
  wall time that falls in a DST gap or overlap. Go and Python disagree there (Python's `fold`), which is
  why times are modelled as :class:`GoTime` (an instant plus the location Go would carry it in) and
  `time.Date` is re-implemented in :func:`go_date`.

Time zones come from :mod:`zoneinfo`, which falls back to the `tzdata` package when the machine has no
zone database (Kruise embeds Go's `time/tzdata` for the same reason). Loading a zone reads the static
zone database once per name (cached); nothing here reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from fractions import Fraction
from functools import lru_cache
from typing import Final, NamedTuple, TypeAlias
from zoneinfo import ZoneInfo

__all__ = [
    "LOCAL",
    "ConstantDelaySchedule",
    "CronError",
    "GoTime",
    "Location",
    "LocationError",
    "Schedule",
    "SpecSchedule",
    "go_date",
    "load_location",
    "parse_duration",
    "parse_standard",
]


class _Local:
    """Go's `time.Local` as a schedule location: "whatever location the reference time carries"."""

    def __repr__(self) -> str:
        return "Local"


LOCAL: Final = _Local()
Location: TypeAlias = tzinfo | _Local


class CronError(ValueError):
    """A schedule the parser rejects; the message is robfig's text."""


class LocationError(ValueError):
    """`time.LoadLocation` failed; the message is Go's text ("unknown time zone X")."""


@lru_cache(maxsize=1024)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, a directory, a non-TZif file, ...
        raise LocationError(f"unknown time zone {name}") from None


def load_location(name: str) -> Location:
    """Go's `time.LoadLocation`: "" and "UTC" are UTC, "Local" is the process zone (:data:`LOCAL`),
    names are case-sensitive IANA keys."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return LOCAL
    if ".." in name or name[0] in "/\\":
        raise LocationError("time: invalid location name")
    return _zone(name)


# --- time as Go carries it -------------------------------------------------------------------------

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True, order=False)
class GoTime:
    """An instant (Unix seconds + nanoseconds) and the location Go would carry it in.

    The location matters: a schedule without a zone is evaluated in the reference time's location
    (robfig `spec.go`), and a scheduled time is written back in it (`Format(time.RFC3339)`).
    """

    unix: int
    nsec: int = 0
    loc: tzinfo = UTC

    @classmethod
    def of(cls, value: datetime, loc: tzinfo | None = None) -> GoTime:
        """From an aware datetime (naive = UTC), carried in `loc` (default: the datetime's own zone)."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        unix = int((value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1))
        nsec = value.microsecond * 1000
        zone = loc if loc is not None else value.tzinfo
        assert zone is not None
        return cls(unix, nsec, zone)

    def key(self) -> tuple[int, int]:
        return (self.unix, self.nsec)

    def after(self, other: GoTime) -> bool:
        return self.key() > other.key()

    def add_seconds(self, seconds: int) -> GoTime:
        return GoTime(self.unix + seconds, self.nsec, self.loc)

    def in_(self, loc: tzinfo) -> GoTime:
        return GoTime(self.unix, self.nsec, loc)

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.unix, UTC) + timedelta(microseconds=self.nsec // 1000)

    def local(self) -> datetime:
        """The wall time in its location."""
        return self.utc().astimezone(self.loc)

    def rfc3339(self) -> str:
        """Go's `Format(time.RFC3339)`: whole seconds, `Z` for a zero offset, else `±hh:mm`."""
        wall = datetime.fromtimestamp(self.unix, self.loc)
        off = wall.utcoffset() or timedelta(0)
        text = wall.strftime("%Y-%m-%dT%H:%M:%S")
        if off == timedelta(0):
            return text + "Z"
        total = int(off.total_seconds())
        sign = "+" if total >= 0 else "-"
        total = abs(total)
        return f"{text}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def parse_rfc3339(text: str, local: tzinfo) -> GoTime | None:
    """Go's `time.Parse(time.RFC3339, s)`: `Z` -> UTC; an offset the `local` zone uses at that instant
    -> `local`; another offset -> a fixed zone without DST. Unparsable -> None."""
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    at = GoTime.of(value, UTC)
    if text.endswith("Z"):
        return at
    off = value.utcoffset()
    if datetime.fromtimestamp(at.unix, local).utcoffset() == off:
        return at.in_(local)
    assert off is not None
    return at.in_(timezone(off))


def _offset(unix: int, loc: tzinfo) -> int:
    off = datetime.fromtimestamp(unix, loc).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def go_date(year: int, month: int, day: int, hour: int, minute: int, second: int, loc: tzinfo) -> int:
    """Go's `time.Date` (Unix seconds): fields out of range are normalised (month 13 = January next
    year, day 0 = the last of the previous month); a wall time in a gap or overlap takes the offset Go's
    lookup finds: the zone in force at the wall time read as UTC, corrected once if the result leaves
    that zone's period. (So New York's 02:30 on a spring-forward day is 01:30 EST and Berlin's is 03:30
    CEST; New York's repeated 01:30 is the first one, Berlin's repeated 02:30 the second.)"""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    days = date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1
    local = days * 86400 + hour * 3600 + minute * 60 + second
    return local - _offset(local - _offset(local, loc), loc)


class _Wall(NamedTuple):
    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    weekday: int  # Go: Sunday = 0


def _wall(unix: int, loc: tzinfo) -> _Wall:
    d = datetime.fromtimestamp(unix, loc)
    return _Wall(d.year, d.month, d.day, d.hour, d.minute, d.second, (d.weekday() + 1) % 7)


# --- schedules -------------------------------------------------------------------------------------

STAR_BIT: Final = 1 << 63


@dataclass(frozen=True, slots=True)
class _Bounds:
    min: int
    max: int
    names: dict[str, int] | None = None


_SECONDS: Final = _Bounds(0, 59)
_MINUTES: Final = _Bounds(0, 59)
_HOURS: Final = _Bounds(0, 23)
_DOM: Final = _Bounds(1, 31)
_MONTHS: Final = _Bounds(1, 12, {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))})
_DOW: Final = _Bounds(0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))})


def _bits(lo: int, hi: int, step: int) -> int:
    if step == 1:
        return ~(~0 << (hi + 1)) & (~0 << lo)
    out = 0
    for i in range(lo, hi + 1, step):
        out |= 1 << i
    return out


def _next_bit(bits: int, start: int, limit: int) -> int:
    """The lowest set bit at `start` or above and below `limit`; `limit` when there is none."""
    rest = bits & ~((1 << start) - 1) & ((1 << limit) - 1)
    return (rest & -rest).bit_length() - 1 if rest else limit


def _advance(
    u: int, value: int, bits: int, limit: int, unit: int, field: str, loc: tzinfo, *, jump: bool
) -> tuple[int, _Wall]:
    """One step of robfig's hour, minute or second loop. robfig adds one `unit` at a time until a listed
    value (or the wrap to 0); this jumps straight there unless an offset change lies between (seen as a
    wall value other than the one expected, e.g. a DST change or a fraction-of-an-hour zone), and then
    steps one unit as robfig does."""
    if jump:
        target = _next_bit(bits, value + 1, limit)
        ahead = _wall(u + (target - value) * unit, loc)
        if getattr(ahead, field) == target % limit:
            return u + (target - value) * unit, ahead
    u += unit
    return u, _wall(u, loc)


def _all(r: _Bounds) -> int:
    return _bits(r.min, r.max, 1) | STAR_BIT


@dataclass(frozen=True, slots=True)
class SpecSchedule:
    """A parsed cron expression: one bit per allowed value (robfig `SpecSchedule`)."""

    second: int
    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    location: Location = LOCAL

    def _day_matches(self, w: _Wall) -> bool:
        dom_match = (1 << w.day) & self.dom > 0
        dow_match = (1 << w.weekday) & self.dow > 0
        if self.dom & STAR_BIT or self.dow & STAR_BIT:
            return dom_match and dow_match
        return dom_match or dow_match

    def next(self, t: GoTime) -> GoTime | None:
        """The first activation strictly after `t` (whole seconds), in `t`'s location; None (Go's zero
        time) when none lies within five years."""
        return self._next(t, jump=True)

    def _next(self, t: GoTime, *, jump: bool) -> GoTime | None:
        """robfig's `Next`; `jump=False` steps hours and minutes one at a time exactly as it does (the
        reference the jumps are tested against)."""
        orig = t.loc
        loc = t.loc if isinstance(self.location, _Local) else self.location
        u = t.unix + 1  # t.Add(1s - nsec)
        added = False
        year_limit = _wall(u, loc).year + 5
        while True:  # WRAP
            w = _wall(u, loc)
            if w.year > year_limit:
                return None
            wrapped = False
            while (1 << w.month) & self.month == 0:
                if not added:
                    added = True
                    u = go_date(w.year, w.month, 1, 0, 0, 0, loc)
                    w = _wall(u, loc)
                u = go_date(w.year, w.month + 1, w.day, w.hour, w.minute, w.second, loc)  # AddDate(0, 1, 0)
                w = _wall(u, loc)
                if w.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not self._day_matches(w):
                if not added:
                    added = True
                    u = go_date(w.year, w.month, w.day, 0, 0, 0, loc)
                    w = _wall(u, loc)
                u = go_date(w.year, w.month, w.day + 1, w.hour, w.minute, w.second, loc)  # AddDate(0, 0, 1)
                w = _wall(u, loc)
                # a day whose midnight does not exist: back to the day's first hour
                if w.hour != 0:
                    u += (24 - w.hour) * 3600 if w.hour > 12 else -w.hour * 3600
                    w = _wall(u, loc)
                if w.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while (1 << w.hour) & self.hour == 0:
                if not added:
                    added = True
                    u = go_date(w.year, w.month, w.day, w.hour, 0, 0, loc)
                    w = _wall(u, loc)
                u, w = _advance(u, w.hour, self.hour, 24, 3600, "hour", loc, jump=jump)
                if w.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while (1 << w.minute) & self.minute == 0:
                if not added:
                    added = True
                    u -= u % 60  # Truncate(time.Minute): absolute, not wall-clock
                u, w = _advance(u, w.minute, self.minute, 60, 60, "minute", loc, jump=jump)
                if w.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while (1 << w.second) & self.second == 0:
                added = True
                u, w = _advance(u, w.second, self.second, 60, 1, "second", loc, jump=jump)
                if w.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            return GoTime(u, 0, orig)


@dataclass(frozen=True, slots=True)
class ConstantDelaySchedule:
    """`@every D`: D (whole seconds, at least 1) after the reference time, ignoring its sub-second part
    and any zone (robfig `constantdelay.go`)."""

    delay: int

    def next(self, t: GoTime) -> GoTime | None:
        return GoTime(t.unix + self.delay, 0, t.loc)


Schedule: TypeAlias = SpecSchedule | ConstantDelaySchedule

_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_INT64_MAX: Final = 2**63 - 1


def _atoi(expr: str) -> int:
    """Go's `strconv.Atoi` with robfig's `mustParseInt` messages."""
    if not _INT_RE.fullmatch(expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    num = int(expr)
    if not -_INT64_MAX - 1 <= num <= _INT64_MAX:
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": value out of range')
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _int_or_name(expr: str, r: _Bounds) -> int:
    if r.names is not None and (named := r.names.get(expr.lower())) is not None:
        return named
    return _atoi(expr)


def _range(expr: str, r: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = r.min, r.max, STAR_BIT
    else:
        start = _int_or_name(low_and_high[0], r)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], r)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if single:  # "N/step" means "N-max/step"
            end = r.max
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < r.min:
        raise CronError(f"beginning of range ({start}) below minimum ({r.min}): {expr}")
    if end > r.max:
        raise CronError(f"end of range ({end}) above maximum ({r.max}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _field(text: str, r: _Bounds) -> int:
    bits = 0
    for expr in (e for e in text.split(",") if e):  # strings.FieldsFunc drops empty pieces
        bits |= _range(expr, r)
    return bits


# Go's time.ParseDuration
_UNITS: Final = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                 "h": 3600 * 10**9}
_DURATION_PART: Final = re.compile(r"([0-9]*)(\.[0-9]*)?([^0-9.]*)")


def parse_duration(text: str) -> int:
    """Go's `time.ParseDuration` in nanoseconds; raises ValueError with Go's message."""
    orig = text
    quoted = '"' + orig + '"'
    neg = False
    if text and text[0] in "+-":
        neg = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise ValueError(f"time: invalid duration {quoted}")
    total = Fraction(0)
    while text:
        m = _DURATION_PART.match(text)
        assert m is not None
        whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
        if not whole and frac in ("", "."):
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        # the unit runs until the next digit or dot
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        value = Fraction(int(whole or "0"))
        if len(frac) > 1:
            value += Fraction(int(frac[1:]), 10 ** (len(frac) - 1))
        total += value * _UNITS[unit]
        if total > _INT64_MAX:
            raise ValueError(f"time: invalid duration {quoted}")
        text = text[m.end():]
    nanos = int(total)  # Go truncates fractional nanoseconds
    return -nanos if neg else nanos


def _every(nanos: int) -> ConstantDelaySchedule:
    if nanos < 10**9:
        nanos = 10**9
    return ConstantDelaySchedule(delay=nanos // 10**9)


def _descriptor(spec: str, loc: Location) -> Schedule:
    one = {"second": 1 << _SECONDS.min, "minute": 1 << _MINUTES.min, "hour": 1 << _HOURS.min}
    if spec in ("@yearly", "@annually"):
        return SpecSchedule(**one, dom=1 << _DOM.min, month=1 << _MONTHS.min, dow=_all(_DOW), location=loc)
    if spec == "@monthly":
        return SpecSchedule(**one, dom=1 << _DOM.min, month=_all(_MONTHS), dow=_all(_DOW), location=loc)
    if spec == "@weekly":
        return SpecSchedule(**one, dom=_all(_DOM), month=_all(_MONTHS), dow=1 << _DOW.min, location=loc)
    if spec in ("@daily", "@midnight"):
        return SpecSchedule(**one, dom=_all(_DOM), month=_all(_MONTHS), dow=_all(_DOW), location=loc)
    if spec == "@hourly":
        return SpecSchedule(second=1, minute=1, hour=_all(_HOURS), dom=_all(_DOM), month=_all(_MONTHS),
                            dow=_all(_DOW), location=loc)
    every = "@every "
    if spec.startswith(every):
        try:
            nanos = parse_duration(spec[len(every):])
        except ValueError as e:
            raise CronError(f"failed to parse duration {spec}: {e}") from None
        return _every(nanos)
    raise CronError(f"unrecognized descriptor: {spec}")


class ParserPanic(CronError):
    """Input that makes robfig's parser panic (Kruise's webhook reports it as "invalid cron schedule: ...")."""


def parse_standard(spec: str, load: Callable[[str], Location] = load_location) -> Schedule:
    """robfig `ParseStandard`: 5 fields or a descriptor, optionally after `TZ=<zone> `/`CRON_TZ=<zone> `.
    Schedules are immutable, so the common case (the default zone loader) is cached per text."""
    if load is load_location:
        return _parse_cached(spec)
    return _parse(spec, load)


@lru_cache(maxsize=16384)
def _parse_cached(spec: str) -> Schedule:
    return _parse(spec, load_location)


def _parse(spec: str, load: Callable[[str], Location]) -> Schedule:
    if not spec:
        raise CronError("empty spec string")
    loc: Location = LOCAL
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        i = spec.find(" ")
        eq = spec.find("=")
        if i < 0:
            # Go: spec[eq+1 : -1] panics
            raise ParserPanic(f"runtime error: slice bounds out of range [:{i}]")
        name = spec[eq + 1:i]
        try:
            loc = load(name)
        except LocationError as e:
            raise CronError(f"provided bad location {name}: {e}") from None
        spec = spec[i:].strip()
    if spec.startswith("@"):
        return _descriptor(spec, loc)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    return SpecSchedule(
        second=_field("0", _SECONDS),
        minute=_field(fields[0], _MINUTES),
        hour=_field(fields[1], _HOURS),
        dom=_field(fields[2], _DOM),
        month=_field(fields[3], _MONTHS),
        dow=_field(fields[4], _DOW),
        location=loc,
    )
