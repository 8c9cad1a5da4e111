"""Which slot an AdvancedCronJob runs now and when it looks again (`advancedcronjob_utils.go` formatSchedule, getNextSchedule).

Kruise's three reconcilers share one algorithm, reproduced here with its edges, because users see
them:

* the zone: a schedule containing `TZ` is parsed as written (`timeZone` ignored); otherwise a
  `timeZone` that loads becomes a `TZ=<zone> ` prefix; otherwise the schedule runs in the zone of the
  reference time (the controller's own zone, UTC in Kruise's image; `local` here);
* `earliest` = the newest child's slot (`lastScheduleTime` rebuilt from the children) or the creation
  time, moved up to `now - startingDeadlineSeconds` when that is later;
* every slot in `(earliest, now]` is "missed" and only the newest one runs; more than 100 is an error
  ("too many missed start times") after which Kruise does nothing until the spec changes;
* `next` = the first slot after `now` (the requeue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from schemas.advancedcronjob import AdvancedCronJob
from schemas.constants import (
    MAX_MISSED_START_TIMES,
    REASON_TOO_MANY_MISSED_START_TIMES,
    REASON_UNPARSABLE_SCHEDULE,
)
from services.planner.kit.cron import (
    CronError,
    GoTime,
    LocationError,
    Schedule,
    SpecSchedule,
    load_location,
    parse_rfc3339,
    parse_standard,
)

__all__ = ["ScheduleError", "Slots", "effective_schedule", "next_schedule", "schedule_zone"]


class ScheduleError(Exception):
    """Kruise's "Unable to figure out CronJob schedule": the reason and its message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def effective_schedule(schedule: str, time_zone: str | None) -> str:
    """formatSchedule: the text handed to the parser."""
    if "TZ" in schedule:
        return schedule
    if time_zone is not None:
        try:
            load_location(time_zone)
        except LocationError:
            return schedule  # Kruise logs "Failed to load location for advancedCronJob" and goes on
        return f"TZ={time_zone} {schedule}"
    return schedule


def schedule_zone(sched: Schedule, local: tzinfo) -> tzinfo | None:
    """The zone the schedule's wall clock runs in (None for `@every`, which has none)."""
    if not isinstance(sched, SpecSchedule):
        return None
    return sched.location if isinstance(sched.location, tzinfo) else local


@dataclass(frozen=True)
class Slots:
    missed: GoTime | None  # the newest missed slot: the one to run now
    missed_count: int  # slots in (earliest, now]; all but the newest are dropped, as Kruise does
    next: GoTime | None  # the first slot after now (None: none within five years)
    earliest: GoTime


def parse(acj: AdvancedCronJob) -> Schedule:
    try:
        return parse_standard(effective_schedule(acj.spec.schedule, acj.spec.time_zone))
    except CronError as e:
        raise ScheduleError(REASON_UNPARSABLE_SCHEDULE, f'unparsable schedule "{acj.spec.schedule}": {e}') from None


def next_schedule(acj: AdvancedCronJob, *, now: datetime, last_schedule: str | None, local: tzinfo = UTC,
                  sched: Schedule | None = None) -> Slots:
    """getNextSchedule over `now` and the `lastScheduleTime` just rebuilt from the children.

    Reference times carry the location Go gives them: `now` and the creation time are the controller's
    zone (`local`), a slot read back from an annotation is UTC for `Z`, `local` if `local` uses its
    offset then, else a fixed offset. A schedule without a zone runs in that location.
    """
    sched = sched or parse(acj)
    at_now = GoTime.of(now, local)
    created = acj.metadata.creation_timestamp
    earliest = GoTime.of(datetime.fromisoformat(created.replace("Z", "+00:00")), local) if created else at_now
    if last_schedule:
        last = parse_rfc3339(last_schedule, local)
        if last is not None:
            earliest = last
    sds = acj.spec.starting_deadline_seconds
    if sds is not None:
        deadline = at_now.add_seconds(-sds)
        if deadline.after(earliest):
            earliest = deadline
    if earliest.after(at_now):
        return Slots(None, 0, sched.next(at_now), earliest)
    missed: GoTime | None = None
    count = 0
    t = sched.next(earliest)
    while t is None or not t.after(at_now):
        # Go's zero time (no slot within five years) is never after now: it counts too, so an
        # unsatisfiable schedule ends in the same error
        missed = t
        count += 1
        if count > MAX_MISSED_START_TIMES or t is None:
            raise ScheduleError(
                REASON_TOO_MANY_MISSED_START_TIMES,
                "too many missed start times (> 100). Set or decrease .spec.startingDeadlineSeconds or "
                "check clock skew")
        t = sched.next(t)
    return Slots(missed, count, sched.next(at_now), earliest)
