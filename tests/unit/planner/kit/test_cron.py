"""The cron library: robfig/cron v3.0.1's parser errors and `Next` (its TestNext/TestErrors/TestActivation rows,
including the DST rows), an independent minute-by-minute check over random schedules and zones, and the
zone database fallback to the `tzdata` package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.planner.kit.cron import (
    LOCAL,
    ConstantDelaySchedule,
    CronError,
    GoTime,
    LocationError,
    SpecSchedule,
    go_date,
    load_location,
    parse_duration,
    parse_standard,
)


def at(text: str) -> GoTime:
    return GoTime.of(datetime.fromisoformat(text))


def nxt(spec: str, start: str) -> datetime | None:
    t = parse_standard(spec).next(at(start))
    return t.utc() if t is not None else None


# robfig spec_test.go TestNext, the 6-field rows written in the standard 5-field dialect
NEXT_ROWS = [
    ("spring-forward-yearly-0230-skips-to-next-year", "2012-03-11T00:00:00-05:00", "TZ=America/New_York 30 2 11 Mar ?", "2013-03-11T02:30:00-04:00"),
    ("spring-forward-hourly-before-gap", "2012-03-11T00:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T01:00:00-05:00"),
    ("spring-forward-hourly-across-gap", "2012-03-11T01:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T03:00:00-04:00"),
    ("spring-forward-hourly-after-gap", "2012-03-11T03:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-03-11T04:00:00-04:00"),
    ("spring-forward-hourly-cron-tz", "2012-03-11T01:00:00-05:00", "CRON_TZ=America/New_York 0 * * * ?", "2012-03-11T03:00:00-04:00"),
    ("spring-forward-nightly-0100", "2012-03-11T01:00:00-05:00", "TZ=America/New_York 0 1 * * ?", "2012-03-12T01:00:00-04:00"),
    ("spring-forward-nightly-0200-skipped", "2012-03-11T00:00:00-05:00", "TZ=America/New_York 0 2 * * ?", "2012-03-12T02:00:00-04:00"),
    ("fall-back-0230", "2012-11-04T00:00:00-04:00", "TZ=America/New_York 30 2 04 Nov ?", "2012-11-04T02:30:00-05:00"),
    ("fall-back-0130-second-copy", "2012-11-04T01:45:00-04:00", "TZ=America/New_York 30 1 04 Nov ?", "2012-11-04T01:30:00-05:00"),
    ("fall-back-hourly-first-0100", "2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T01:00:00-04:00"),
    ("fall-back-hourly-second-0100", "2012-11-04T01:00:00-04:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T01:00:00-05:00"),
    ("fall-back-hourly-0200", "2012-11-04T01:00:00-05:00", "TZ=America/New_York 0 * * * ?", "2012-11-04T02:00:00-05:00"),
    ("fall-back-nightly-0100-first", "2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 1 * * ?", "2012-11-04T01:00:00-04:00"),
    ("fall-back-nightly-0100-twice", "2012-11-04T01:00:00-04:00", "TZ=America/New_York 0 1 * * ?", "2012-11-04T01:00:00-05:00"),
    ("fall-back-nightly-0100-then-next-day", "2012-11-04T01:00:00-05:00", "TZ=America/New_York 0 1 * * ?", "2012-11-05T01:00:00-05:00"),
    ("fall-back-nightly-0200-once", "2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 2 * * ?", "2012-11-04T02:00:00-05:00"),
    ("fall-back-nightly-0200-next-day", "2012-11-04T02:00:00-05:00", "TZ=America/New_York 0 2 * * ?", "2012-11-05T02:00:00-05:00"),
    ("fall-back-nightly-0300-once", "2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 3 * * ?", "2012-11-04T03:00:00-05:00"),
    ("fall-back-nightly-0300-next-day", "2012-11-04T03:00:00-05:00", "TZ=America/New_York 0 3 * * ?", "2012-11-05T03:00:00-05:00"),
    ("monthly-across-fall-back", "2012-11-04T00:00:00-04:00", "TZ=America/New_York 0 3 3 * ?", "2012-12-03T03:00:00-05:00"),
    ("sao-paulo-midnight-missing-nov", "2018-10-17T05:00:00-04:00", "TZ=America/Sao_Paulo 0 9 10 * ?", "2018-11-10T06:00:00-05:00"),
    ("sao-paulo-midnight-missing-feb", "2018-02-14T05:00:00-05:00", "TZ=America/Sao_Paulo 0 9 22 * ?", "2018-02-22T07:00:00-05:00"),
    ("unsatisfiable-feb-30", "2012-07-09T23:35:00+00:00", "0 0 30 Feb ?", None),
    ("unsatisfiable-apr-31", "2012-07-09T23:35:00+00:00", "0 0 31 Apr ?", None),
    ("every-15-minutes", "2012-07-09T14:45:00+00:00", "0/15 * * * *", "2012-07-09T15:00:00+00:00"),
    ("wrap-month", "2012-07-31T23:59:00+00:00", "* * * * *", "2012-08-01T00:00:00+00:00"),
    ("leap-day", "2012-01-01T00:00:00+00:00", "0 0 29 Feb ?", "2012-02-29T00:00:00+00:00"),
    ("named-month-and-day", "2012-07-09T23:35:00+00:00", "0 0 * jul-aug MON", "2012-07-16T00:00:00+00:00"),
]


@pytest.mark.parametrize(("start", "spec", "want"), [r[1:] for r in NEXT_ROWS], ids=[r[0] for r in NEXT_ROWS])
def test_next(start: str, spec: str, want: str | None) -> None:
    expected = datetime.fromisoformat(want) if want else None
    assert nxt(spec, start) == expected


# Kruise's TestScheduleWithTimeZone (M16-M20) and robfig's TestActivation (M26)
@pytest.mark.parametrize(("spec", "start", "want"), [
    pytest.param("0 10 * * ?", "2022-09-05T09:01:00+00:00", "2022-09-05T10:00:00+00:00", id="M16"),
    pytest.param("0 10 * * ?", "2022-09-05T11:01:00+00:00", "2022-09-06T10:00:00+00:00", id="M17"),
    pytest.param("TZ=Asia/Shanghai 0 10 * * ?", "2022-09-05T09:01:00+00:00", "2022-09-06T02:00:00+00:00", id="M18"),
    pytest.param("TZ=Asia/Shanghai 0 10 * * ?", "2022-09-06T01:01:00+00:00", "2022-09-06T02:00:00+00:00", id="M19"),
    pytest.param("TZ=Asia/Shanghai 0 10 * * ?", "2022-09-06T01:01:00+00:00", "2022-09-06T02:00:00+00:00", id="M20"),
])
def test_schedule_with_time_zone(spec: str, start: str, want: str) -> None:
    assert nxt(spec, start) == datetime.fromisoformat(want)


@pytest.mark.parametrize(("spec", "when", "fires"), [
    pytest.param("* * 1,15 * Sun", "2012-06-15T00:00:00+00:00", True, id="M26-either-day-field-matches"),
    pytest.param("* * * * Mon", "2012-07-15T00:00:00+00:00", False, id="M26-star-means-both-must-match"),
    pytest.param("* * */2 * Sun", "2012-07-15T00:00:00+00:00", True, id="step-counts-as-restricted"),
    pytest.param("0 0 * * *", "2012-07-15T00:00:00+00:00", True, id="midnight"),
])
def test_activation(spec: str, when: str, fires: bool) -> None:
    """robfig TestActivation: Next(t - 1s) == t iff the schedule fires at t."""
    t = at(when)
    assert (parse_standard(spec).next(t.add_seconds(-1)) == GoTime(t.unix, 0, t.loc)) is fires


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param("xyz", "expected exactly 5 fields, found 1: [xyz]", id="M4-xyz"),
    pytest.param("60 0 * * *", "end of range (60) above maximum (59): 60", id="M4-minute-60"),
    pytest.param("0 60 * * *", "end of range (60) above maximum (23): 60", id="M4-hour-60"),
    pytest.param("0 0 * * XYZ", 'failed to parse int from XYZ: strconv.Atoi: parsing "XYZ": invalid syntax', id="M4-dow-XYZ"),
    pytest.param("0 0 10 * * *", "expected exactly 5 fields, found 6: [0 0 10 * * *]", id="M5-six-fields"),
    pytest.param("0 0 * * 7", "end of range (7) above maximum (6): 7", id="M5-seven-is-not-sunday"),
    pytest.param("@reboot", "unrecognized descriptor: @reboot", id="M5-reboot"),
    pytest.param("invalid-cron", "expected exactly 5 fields, found 1: [invalid-cron]", id="M3"),
    pytest.param("", "empty spec string", id="empty"),
    pytest.param("0 0 0 * *", "beginning of range (0) below minimum (1): 0", id="dom-zero"),
    pytest.param("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1", id="backwards-range"),
    pytest.param("*/0 * * * *", "step of range should be a positive number: */0", id="step-zero"),
    pytest.param("*/-1 * * * *", "negative number (-1) not allowed: -1", id="negative-step"),
    pytest.param("1-2-3 * * * *", "too many hyphens: 1-2-3", id="hyphens"),
    pytest.param("1/2/3 * * * *", "too many slashes: 1/2/3", id="slashes"),
    pytest.param("0 0 L * *", 'failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax', id="no-L"),
    pytest.param("@every 1d", 'failed to parse duration @every 1d: time: unknown unit "d" in duration "1d"', id="every-days"),
    pytest.param("@every 5", 'failed to parse duration @every 5: time: missing unit in duration "5"', id="every-no-unit"),
    pytest.param("TZ=Mars/Base 0 * * * *", "provided bad location Mars/Base: unknown time zone Mars/Base", id="bad-zone"),
    pytest.param("TZ=asia/shanghai 0 * * * *", "provided bad location asia/shanghai: unknown time zone asia/shanghai", id="zones-are-case-sensitive"),
])
def test_errors(spec: str, message: str) -> None:
    with pytest.raises(CronError) as err:
        parse_standard(spec)
    assert str(err.value) == message


def test_a_zone_prefix_without_a_space_is_the_parser_panic() -> None:
    with pytest.raises(CronError, match=r"slice bounds out of range"):
        parse_standard("TZ=Asia/Shanghai")


@pytest.mark.parametrize(("spec", "start", "want"), [
    pytest.param("@yearly", "2026-06-01T10:00:00+00:00", "2027-01-01T00:00:00+00:00", id="yearly"),
    pytest.param("@annually", "2026-06-01T10:00:00+00:00", "2027-01-01T00:00:00+00:00", id="annually"),
    pytest.param("@monthly", "2026-06-01T10:00:00+00:00", "2026-07-01T00:00:00+00:00", id="monthly"),
    pytest.param("@weekly", "2026-06-01T10:00:00+00:00", "2026-06-07T00:00:00+00:00", id="weekly-sunday"),
    pytest.param("@daily", "2026-06-01T10:00:00+00:00", "2026-06-02T00:00:00+00:00", id="daily"),
    pytest.param("@midnight", "2026-06-01T10:00:00+00:00", "2026-06-02T00:00:00+00:00", id="midnight"),
    pytest.param("@hourly", "2026-06-01T10:00:00+00:00", "2026-06-01T11:00:00+00:00", id="hourly"),
    pytest.param("TZ=Asia/Shanghai @daily", "2026-06-01T10:00:00+00:00", "2026-06-01T16:00:00+00:00", id="daily-in-shanghai"),
    pytest.param("@every 1h30m", "2026-06-01T10:00:00.700+00:00", "2026-06-01T11:30:00+00:00", id="every-drops-subseconds"),
    pytest.param("@every 500ms", "2026-06-01T10:00:00+00:00", "2026-06-01T10:00:01+00:00", id="every-at-least-1s"),
    pytest.param("TZ=Asia/Shanghai @every 1h", "2026-06-01T10:00:00+00:00", "2026-06-01T11:00:00+00:00", id="every-ignores-zone"),
])
def test_descriptors(spec: str, start: str, want: str) -> None:
    assert nxt(spec, start) == datetime.fromisoformat(want)


def test_names_are_case_insensitive_and_question_mark_is_star() -> None:
    assert parse_standard("0 0 * JAN-Mar sUn") == parse_standard("0 0 * 1-3 0")
    assert parse_standard("0 0 ? * *") == parse_standard("0 0 * * *")


@pytest.mark.parametrize(("text", "nanos"), [("1h", 3600 * 10**9), ("1.5s", 1_500_000_000), ("1h2m3s", 3723 * 10**9),
                                             ("300ms", 300 * 10**6), ("-1m", -60 * 10**9), ("0", 0), (".5h", 1800 * 10**9)])
def test_go_durations(text: str, nanos: int) -> None:
    assert parse_duration(text) == nanos


def test_go_date_normalises_gaps_and_overlaps_as_go_does() -> None:
    """time.Date: New York's 02:30 (gap) is 01:30 EST, Berlin's is 03:30 CEST; the repeated 01:30 in New York
    is the first (EDT), Berlin's repeated 02:30 the second (CET)."""
    ny, berlin = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
    assert go_date(2026, 3, 8, 2, 30, 0, ny) == int(datetime(2026, 3, 8, 6, 30, tzinfo=UTC).timestamp())
    assert go_date(2026, 3, 29, 2, 30, 0, berlin) == int(datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp())
    assert go_date(2026, 11, 1, 1, 30, 0, ny) == int(datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp())
    assert go_date(2026, 10, 25, 2, 30, 0, berlin) == int(datetime(2026, 10, 25, 1, 30, tzinfo=UTC).timestamp())
    assert go_date(2026, 13, 0, 0, 0, 0, UTC) == int(datetime(2026, 12, 31, tzinfo=UTC).timestamp())


def test_load_location_as_go() -> None:
    assert load_location("") is UTC and load_location("UTC") is UTC and load_location("Local") is LOCAL
    for name in ("Etc/GMT+8", "EST5EDT", "Asia/Shanghai"):
        load_location(name)
    with pytest.raises(LocationError, match="time: invalid location name"):
        load_location("../etc/passwd")
    with pytest.raises(LocationError, match="unknown time zone America"):
        load_location("America")


def test_a_schedule_without_zone_runs_in_the_reference_times_location() -> None:
    sched = parse_standard("0 10 * * *")
    assert isinstance(sched, SpecSchedule) and sched.location is LOCAL
    shanghai = ZoneInfo("Asia/Shanghai")
    t = sched.next(GoTime.of(datetime(2022, 9, 5, 9, 1, tzinfo=UTC), shanghai))
    assert t is not None and t.utc() == datetime(2022, 9, 6, 2, 0, tzinfo=UTC) and t.loc is shanghai
    assert isinstance(parse_standard("TZ=Local 0 10 * * *"), SpecSchedule)
    assert parse_standard("TZ=Local 0 10 * * *") == sched  # Go's LoadLocation("Local") is time.Local itself


# --- independent computation ------------------------------------------------------------------------

# Zones whose DST shifts are whole hours at the top of a local hour. Left out of the scan on purpose:
# Lord Howe's half-hour shift, where robfig's hour stepping keeps the :30 of a gap-normalised time, and
# Chatham's shifts at :45, where it truncates to the top of the hour before the repeated interval and
# steps over it (see the two tests below).
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai", "Australia/Sydney", "Asia/Kolkata",
         "America/Sao_Paulo", "Europe/London"]
WINDOW = timedelta(days=9)


def _values(lo: int, hi: int) -> st.SearchStrategy[str]:
    single = st.integers(lo, hi).map(str)
    rng = st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(lambda p: f"{min(p)}-{max(p)}")
    step = st.tuples(st.integers(lo, hi), st.integers(1, 7)).map(lambda p: f"{p[0]}/{p[1]}")
    star_step = st.integers(1, 13).map(lambda n: f"*/{n}")
    item = st.one_of(single, rng, step, star_step)
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


# just before transitions: New York, Berlin/London, Sydney/Lord Howe/Chatham, Sao Paulo (2018: midnight gap)
TRANSITIONS = [datetime(2026, 3, 8, 7), datetime(2026, 11, 1, 6), datetime(2026, 3, 29, 1), datetime(2026, 10, 25, 1),
               datetime(2026, 4, 4, 16), datetime(2026, 10, 3, 16), datetime(2026, 4, 4, 14), datetime(2018, 11, 4, 3),
               datetime(2018, 2, 18, 2)]
STARTS = st.one_of(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-2 * 86400, 6 * 3600)).map(lambda p: p[0] + timedelta(seconds=p[1])),
)
SCHEDULES = st.tuples(_values(0, 59), _values(0, 23), st.just("*"), st.just("*"), _values(0, 6)).map(" ".join)


def _fires(fields: list[str], wall: datetime) -> bool:
    """Whether a 5-field schedule (day-of-month and month `*`) matches a wall time, by reading the fields
    literally (no bitmaps)."""
    def match(field: str, value: int, hi: int) -> bool:
        for part in field.split(","):
            rng, _, step = part.partition("/")
            lo_s, _, hi_s = rng.partition("-")
            if rng == "*":
                lo, top = 0, hi
            else:
                lo = int(lo_s)
                top = int(hi_s) if hi_s else (hi if step else lo)
            if lo <= value <= top and (value - lo) % int(step or 1) == 0:
                return True
        return False
    dow = (wall.weekday() + 1) % 7
    return match(fields[0], wall.minute, 59) and match(fields[1], wall.hour, 23) and match(fields[4], dow, 6)


@settings(max_examples=int(os.environ.get("CRON_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=SCHEDULES, zone=st.sampled_from(ZONES), start=STARTS)
def test_next_agrees_with_a_minute_by_minute_scan(spec: str, zone: str, start: datetime) -> None:
    """Next(t) is the first real minute after t whose wall time in the zone matches the fields: a DST gap's
    wall times never happen (no run), a repeated hour's happen twice (two runs)."""
    tz = ZoneInfo(zone)
    start = start.replace(tzinfo=UTC, second=start.second % 60)
    got = parse_standard(f"TZ={zone} {spec}").next(GoTime.of(start))
    fields = spec.split()
    t = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = start + WINDOW
    expected = None
    while t <= end:
        if _fires(fields, t.astimezone(tz)):
            expected = t
            break
        t += timedelta(minutes=1)
    if expected is None:
        assert got is None or got.utc() > end
    else:
        assert got is not None and got.utc() == expected


@settings(max_examples=int(os.environ.get("CRON_EXAMPLES", "60")), deadline=None)
@given(spec=SCHEDULES, zone=st.sampled_from([*ZONES, "Australia/Lord_Howe", "Pacific/Chatham", "America/Havana",
                                           "Asia/Tehran"]),
       start=STARTS)
def test_the_hour_and_minute_jumps_change_nothing(spec: str, zone: str, start: datetime) -> None:
    """`Next` jumps to the next listed hour/minute; robfig steps one at a time. Same answers everywhere."""
    sched = parse_standard(f"TZ={zone} {spec}")
    assert isinstance(sched, SpecSchedule)
    t = GoTime.of(start.replace(tzinfo=UTC))
    for _ in range(3):
        fast, slow = sched.next(t), sched._next(t, jump=False)
        assert fast == slow
        if fast is None:
            break
        t = fast


def test_lord_howe_half_hour_gap_keeps_the_half_hour() -> None:
    """On 4 Oct 2026 Lord Howe jumps from 02:00 to 02:30. From 02:59:58, `* 0 * * *` builds 02:00 that day
    (Go normalises it to 02:30) and steps whole hours: the next run is 00:30, not 00:00, as robfig computes."""
    got = parse_standard("TZ=Australia/Lord_Howe * 0 * * *").next(at("2026-10-03T15:59:58+00:00"))
    assert got is not None and got.utc() == datetime(2026, 10, 4, 13, 30, tzinfo=UTC)


def test_chatham_repeated_interval_at_a_quarter_to_is_stepped_over() -> None:
    """On 5 Apr 2026 Chatham goes back from 03:45 (+13:45) to 02:45 (+12:45). From 03:44:58, `* 2 * * *`
    truncates to 03:00 (before the change) and steps whole hours: 03:00 again after it, then 04:00, so
    the repeated 02:45-02:59 never matches and the next run is 02:00 the day after, as robfig computes
    (a minute-by-minute scan would say 02:45 that night)."""
    got = parse_standard("TZ=Pacific/Chatham * 2 * * *").next(at("2026-04-04T13:59:58+00:00"))
    assert got is not None and got.utc() == datetime(2026, 4, 5, 13, 15, tzinfo=UTC)


def test_constant_delay_is_zone_free() -> None:
    sched = parse_standard("TZ=Asia/Shanghai @every 90s")
    assert sched == ConstantDelaySchedule(delay=90)


def test_without_a_system_zone_database_the_tzdata_package_is_used(tmp_path: object) -> None:
    """No zone files on the machine (an empty TZPATH): zones still load, from the bundled `tzdata`."""
    code = textwrap.dedent("""
        import sys, zoneinfo
        from datetime import datetime, UTC
        assert zoneinfo.TZPATH == (), zoneinfo.TZPATH
        from services.planner.kit.cron import GoTime, parse_standard
        t = parse_standard("TZ=Asia/Shanghai 0 10 * * ?").next(GoTime.of(datetime(2022, 9, 5, 9, 1, tzinfo=UTC)))
        print(t.utc().isoformat(), "tzdata" in sys.modules)
    """)
    env = {**os.environ, "PYTHONTZPATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2022-09-06T02:00:00+00:00", "True"]
