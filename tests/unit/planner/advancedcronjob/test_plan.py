"""The AdvancedCronJob pass, row for row with the AdvancedCronJob scenarios (Kruise's controller tests, its e2e
tests run as successive passes, robfig's DST rows through Kruise's missed-run loop), plus what kruisebus reports
where Kruise stays silent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from schemas.messages import CreateOp, DeleteOp, PatchOp
from services.planner.advancedcronjob.plan import AcjPlan, plan_advancedcronjob
from tests.unit.planner.advancedcronjob.helpers import UID, acj, job, t


def plan(a: Any, children: list[Any], now: str, **kw: Any) -> AcjPlan:
    return plan_advancedcronjob(a, children, now=t(now), **kw)


def creates(p: AcjPlan) -> list[dict[str, Any]]:
    return [op.body for c in p.commands for op in c.ops if isinstance(op, CreateOp)]


def deletes(p: AcjPlan) -> list[str]:
    return [op.name for c in p.commands for op in c.ops if isinstance(op, DeleteOp)]


def next_at(p: AcjPlan, now: str) -> str | None:
    if p.requeue_after is None:
        return None
    return (t(now) + timedelta(seconds=p.requeue_after)).strftime("%Y-%m-%dT%H:%M:%SZ")


# rows M21-M25, M29-M33: (schedule, acj kwargs, children, now) -> (child created or "", next)
SLOT_ROWS = [
    ("M21", "0 * * * *", {"tz": "America/New_York"}, [("2026-03-08T06:00:00Z", "Complete")], "2026-03-08T07:00:05Z",
     "acj-1772953200", "2026-03-08T08:00:00Z"),
    ("M22", "0 * * * *", {"tz": "Europe/Berlin"}, [("2026-10-25T00:00:00Z", "Complete")], "2026-10-25T01:00:05Z",
     "acj-1792890000", "2026-10-25T02:00:00Z"),
    ("M23", "30 2 * * *", {"tz": "Asia/Shanghai"}, [("2026-03-07T18:30:00Z", "Complete")], "2026-03-08T18:30:04Z",
     "acj-1772994600", "2026-03-09T18:30:00Z"),
    ("M24", "@daily", {"tz": "Asia/Shanghai", "created": "2026-06-01T09:20:00Z"}, [], "2026-06-01T16:00:03Z",
     "acj-1780329600", "2026-06-02T16:00:00Z"),
    ("M25", "@every 1h", {"created": "2026-06-01T09:00:00Z"}, [], "2026-06-01T10:00:05Z",
     "acj-1780308000", "2026-06-01T11:00:05Z"),
    ("M29", "*/5 * * * *", {}, [("2026-06-01T10:00:00Z", "Complete")], "2026-06-01T10:17:00Z",
     "acj-1780308900", "2026-06-01T10:20:00Z"),
    ("M30", "0 * * * *", {"created": "2026-06-01T10:00:00Z"}, [], "2026-06-01T10:00:00.300Z",
     "", "2026-06-01T11:00:00Z"),
    ("M31", "0 * * * *", {}, [("2026-06-01T12:00:00Z", "Complete")], "2026-06-01T10:30:00Z",
     "", "2026-06-01T11:00:00Z"),
    ("M32", "0 * * * *", {"policy": "Forbid"}, [("2026-06-01T10:00:00Z", None)], "2026-06-01T11:00:01Z",
     "", "2026-06-01T12:00:00Z"),
    ("M33", "0 * * * *", {"policy": "Allow"}, [("2026-06-01T10:00:00Z", None)], "2026-06-01T11:00:01Z",
     "acj-1780311600", "2026-06-01T12:00:00Z"),
    # DST through the whole pass: the repeated hour runs twice, the gap hour never
    ("dst-new-york-fall-back-first-0100", "0 1 * * *", {"tz": "America/New_York"},
     [("2026-10-31T05:00:00Z", "Complete")], "2026-11-01T05:00:02Z", "acj-1793509200", "2026-11-01T06:00:00Z"),
    ("dst-new-york-fall-back-second-0100", "0 1 * * *", {"tz": "America/New_York"},
     [("2026-11-01T05:00:00Z", "Complete")], "2026-11-01T06:00:02Z", "acj-1793512800", "2026-11-02T06:00:00Z"),
    ("dst-new-york-spring-forward-0230-skipped", "30 2 * * *", {"tz": "America/New_York"},
     [("2026-03-07T07:30:00Z", "Complete")], "2026-03-08T07:30:00Z", "", "2026-03-09T06:30:00Z"),
    ("dst-berlin-spring-forward-0230-skipped", "30 2 * * *", {"tz": "Europe/Berlin"},
     [("2026-03-28T01:30:00Z", "Complete")], "2026-03-29T01:30:00Z", "", "2026-03-30T00:30:00Z"),
    ("dst-berlin-fall-back-0230-twice", "30 2 * * *", {"tz": "Europe/Berlin"},
     [("2026-10-25T00:30:00Z", "Complete")], "2026-10-25T01:30:01Z", "acj-1792891800", "2026-10-26T01:30:00Z"),
    ("dst-shanghai-fixed-offset", "0 10 * * *", {"tz": "Asia/Shanghai"},
     [("2026-03-07T02:00:00Z", "Complete")], "2026-03-08T02:00:00Z", "acj-1772935200", "2026-03-09T02:00:00Z"),
    ("tz-prefix-in-schedule", "TZ=Asia/Shanghai 0 10 * * ?", {}, [("2022-09-05T02:00:00Z", "Complete")],
     "2022-09-06T02:00:30Z", "acj-1662429600", "2022-09-07T02:00:00Z"),
]


@pytest.mark.parametrize(("schedule", "kw", "children", "now", "child", "nxt"), [r[1:] for r in SLOT_ROWS],
                         ids=[r[0] for r in SLOT_ROWS])
def test_slot(schedule: str, kw: dict[str, Any], children: list[tuple[str, str | None]], now: str, child: str,
              nxt: str) -> None:
    kids = [job(slot, state=state) for slot, state in children]
    p = plan(acj(schedule, **kw), kids, now)
    assert [b["metadata"]["name"] for b in creates(p)] == ([child] if child else [])
    assert next_at(p, now) == nxt


def test_M23_shanghai_slot_annotation_and_zone() -> None:
    p = plan(acj("30 2 * * *", tz="Asia/Shanghai"), [job("2026-03-07T18:30:00Z", state="Complete")],
             "2026-03-08T18:30:04Z")
    (body,) = creates(p)
    assert body["metadata"]["annotations"]["apps.kruise.io/scheduled-at"] == "2026-03-08T18:30:00Z"
    assert p.slots is not None and p.slots.missed is not None
    assert p.slots.missed.in_(ZoneInfo("Asia/Shanghai")).rfc3339() == "2026-03-09T02:30:00+08:00"


def test_M27_replace_creates_exactly_one_child_at_the_first_slot() -> None:
    """M27 is Kruise's ImageListPullJob test (a v1beta1-only kind); the same pass for a Job template."""
    a = acj("*/5 * * * *", name="job1", policy="Replace", created="2025-10-10T09:00:00Z")
    p = plan(a, [], "2025-10-10T09:05:00Z")
    assert [b["metadata"]["name"] for b in creates(p)] == ["job1-1760087100"]
    assert p.status.type == "Job"


@pytest.mark.parametrize("broadcast", [False, True], ids=["M28-Job", "M28-BroadcastJob"])
def test_M28_more_than_100_missed_slots_stop_the_schedule_and_say_why(broadcast: bool) -> None:
    p = plan(acj("*/5 * * * *", created="2025-10-10T09:00:00Z", broadcast=broadcast), [], "2026-06-01T10:00:05Z")
    assert p.status.type == ("BroadcastJob" if broadcast else "Job")
    assert creates(p) == [] and p.requeue_after is None
    (cond,) = [c for c in p.status.conditions if c.type == "ScheduleFailed"]
    assert cond.reason == "TooManyMissedStartTimes"
    assert cond.message.startswith("too many missed start times (> 100). Set or decrease "
                                   ".spec.startingDeadlineSeconds or check clock skew")
    assert [e.type for e in p.events] == ["schedule-failed"]
    warning = [c.on_success for c in p.commands if c.verb == "event"]
    assert warning and warning[0] is not None and warning[0].type == "Warning"
    assert warning[0].reason == "TooManyMissedStartTimes"


def test_exactly_100_missed_slots_are_fine_the_101st_fails() -> None:
    ok = plan(acj("* * * * *", created="2026-06-01T10:00:00Z"), [], "2026-06-01T11:40:30Z")
    assert [b["metadata"]["name"] for b in creates(ok)] == ["acj-1780314000"]
    assert ok.slots is not None and ok.slots.missed_count == 100
    bad = plan(acj("* * * * *", created="2026-06-01T10:00:00Z"), [], "2026-06-01T11:41:30Z")
    assert creates(bad) == [] and bad.requeue_after is None


def test_a_deadline_unblocks_the_100_slot_wall() -> None:
    p = plan(acj("*/5 * * * *", created="2025-10-10T09:00:00Z", sds=600), [], "2026-06-01T10:00:05Z")
    assert [b["metadata"]["name"] for b in creates(p)] == ["acj-1780308000"]
    assert not [c for c in p.status.conditions if c.type == "ScheduleFailed"]


def test_the_schedule_condition_is_cleared_once_it_computes_again() -> None:
    first = plan(acj("*/5 * * * *", created="2025-10-10T09:00:00Z"), [], "2026-06-01T10:00:05Z")
    fixed = acj("*/5 * * * *", created="2025-10-10T09:00:00Z", sds=600,
                status=msgspec.to_builtins(first.status))
    again = plan(fixed, [], "2026-06-01T10:00:06Z")
    assert [c.type for c in again.status.conditions] == []
    # and an unchanged failing pass does not repeat the Warning
    repeat = plan(acj("*/5 * * * *", created="2025-10-10T09:00:00Z", status=msgspec.to_builtins(first.status)), [],
                  "2026-06-01T10:05:05Z")
    assert [c.verb for c in repeat.commands] == [] and repeat.events == []


@pytest.mark.parametrize(("sds", "now", "child"), [
    pytest.param(0, "2026-06-01T11:00:00Z", "", id="Q3-sds-0-never-runs"),
    pytest.param(60, "2026-06-01T11:01:00Z", "", id="Q3-slot-exactly-sds-old-is-not-run"),
    pytest.param(60, "2026-06-01T11:00:59Z", "acj-1780311600", id="Q3-slot-younger-than-sds-runs"),
])
def test_starting_deadline(sds: int, now: str, child: str) -> None:
    p = plan(acj("0 * * * *", sds=sds), [job("2026-06-01T10:00:00Z", state="Complete")], now)
    assert [b["metadata"]["name"] for b in creates(p)] == ([child] if child else [])


def test_Q3_every_with_a_deadline_reanchors_at_now_minus_sds() -> None:
    p = plan(acj("@every 1h", created="2026-06-01T00:00:00Z", sds=3600), [], "2026-06-01T10:30:00Z")
    assert [b["metadata"]["name"] for b in creates(p)] == ["acj-1780309800"]  # (now - 1h) + 1h = now


def test_M34_replace_deletes_every_active_child_then_creates_in_one_command() -> None:
    kids = [job("2026-06-01T09:00:00Z", start="2026-06-01T09:00:01Z"),
            job("2026-06-01T10:00:00Z", start="2026-06-01T10:00:01Z")]
    p = plan(acj("0 * * * *", policy="Replace"), kids, "2026-06-01T11:00:01Z")
    (cmd,) = [c for c in p.commands if c.verb == "child-create"]
    kinds = [type(op).__name__ for op in cmd.ops]
    assert kinds == ["DeleteOp", "DeleteOp", "CreateOp"]  # a failed delete stops the command before the create
    dels = [op for op in cmd.ops if isinstance(op, DeleteOp)]
    assert [d.name for d in dels] == ["acj-1780304400", "acj-1780308000"]
    assert all(d.propagation_policy == "Background" and d.uid for d in dels)


def test_M38_paused_still_cleans_history_and_does_not_requeue() -> None:
    kids = [job(f"2026-06-01T0{i}:00:00Z", state="Complete", start=f"2026-06-01T0{i}:00:01Z") for i in range(1, 6)]
    p = plan(acj("0 * * * *", paused=True), kids, "2026-06-01T09:30:00Z")
    assert deletes(p) == ["acj-1780275600", "acj-1780279200"]
    assert creates(p) == [] and p.requeue_after is None


def test_history_sorts_missing_start_times_first_and_keeps_failed_apart() -> None:
    kids = [job("2026-06-01T01:00:00Z", state="Failed", start="2026-06-01T01:00:01Z"),
            job("2026-06-01T02:00:00Z", state="Failed", start=None),
            job("2026-06-01T03:00:00Z", state="Failed", start="2026-06-01T03:00:01Z"),
            job("2026-06-01T04:00:00Z", state="Complete", start="2026-06-01T04:00:01Z")]
    p = plan(acj("0 * * * *", fail=1), kids, "2026-06-01T04:30:00Z")
    assert deletes(p) == ["acj-1780279200", "acj-1780275600"]


def test_a_history_limit_of_zero_deletes_every_finished_child() -> None:
    kids = [job("2026-06-01T01:00:00Z", state="Complete"), job("2026-06-01T02:00:00Z", state="Failed")]
    p = plan(acj("0 * * * *", succ=0, fail=0), kids, "2026-06-01T02:30:00Z")
    assert sorted(deletes(p)) == ["acj-1780275600", "acj-1780279200"]


def test_M39_status_active_and_last_schedule_time() -> None:
    kids = [job("2026-06-01T10:00:00Z", name="a"), job("2026-06-01T09:00:00Z", name="b", state="Complete"),
            job("2026-06-01T08:00:00Z", name="c", state="Failed"), job(None, name="d", state="Complete")]
    p = plan(acj("0 * * * *", fail=5, succ=5), kids, "2026-06-01T10:30:00Z")
    assert p.status.type == "Job"
    assert [(r.kind, r.api_version, r.name) for r in p.status.active] == [("Job", "batch/v1", "a")]
    assert p.status.last_schedule_time == "2026-06-01T10:00:00Z"
    (status,) = [c for c in p.commands if c.verb == "status"]
    assert p.commands[0] is status  # written first, as Kruise does


def test_M40_no_children_clears_last_schedule_time_and_counts_from_creation() -> None:
    a = acj("0 * * * *", created="2026-06-01T08:30:00Z", last="2026-06-01T09:00:00Z")
    p = plan(a, [], "2026-06-01T09:30:00Z")
    (status,) = [c for c in p.commands if c.verb == "status"]
    (op,) = status.ops
    assert isinstance(op, PatchOp) and isinstance(op.patch, dict)
    assert op.patch["status"]["lastScheduleTime"] is None
    assert [b["metadata"]["name"] for b in creates(p)] == ["acj-1780304400"]  # 09:00 again: see Q1 below


def test_M41_child_object() -> None:
    a = acj("0 2 * * *", name="nightly", labels={"a": "b"}, created="2026-05-31T00:00:00Z")
    p = plan(a, [], "2026-06-01T02:00:01Z")
    (body,) = creates(p)
    assert body["metadata"] == {
        "name": "nightly-1780279200", "namespace": "default", "labels": {"a": "b"},
        "annotations": {"apps.kruise.io/scheduled-at": "2026-06-01T02:00:00Z"},
        "ownerReferences": [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "AdvancedCronJob", "name": "nightly",
                             "uid": UID, "controller": True, "blockOwnerDeletion": True}]}
    assert body["apiVersion"] == "batch/v1" and body["kind"] == "Job"
    assert body["spec"] == a.spec.template.job_template.spec if a.spec.template.job_template else False
    (cmd,) = [c for c in p.commands if c.verb == "child-create"]
    op = cmd.ops[-1]
    assert isinstance(op, CreateOp) and op.owner is not None and op.owner.uid == UID
    # a refused child (Kruise only logs it) is a Warning on the AdvancedCronJob, the API's reason appended
    assert cmd.on_failure is not None and (cmd.on_failure.type, cmd.on_failure.reason, cmd.on_failure.message) == (
        "Warning", "FailedCreate", "Error creating Job nightly-1780279200")


def test_M35_every_minute_creates_owned_jobs_as_passes_go_on() -> None:
    a = acj("*/1 * * * *", created="2026-06-01T10:00:30Z", labels={"cronjob": "acj"})
    kids: list[Any] = []
    for minute in range(1, 4):
        now = f"2026-06-01T10:0{minute}:00Z"
        p = plan(a, kids, now)
        (body,) = creates(p)
        assert body["metadata"]["labels"] == {"cronjob": "acj"}
        assert body["metadata"]["ownerReferences"][0]["uid"] == UID
        kids.append(job(body["metadata"]["annotations"]["apps.kruise.io/scheduled-at"], state="Complete",
                        start=now))
        a = acj("*/1 * * * *", created="2026-06-01T10:00:30Z", labels={"cronjob": "acj"},
                status=msgspec.to_builtins(plan(a, kids, now).status))
    assert len(kids) == 3 and a.status.last_schedule_time == "2026-06-01T10:03:00Z"


def test_M36_broadcastjob_template_creates_broadcastjobs() -> None:
    p = plan(acj("*/1 * * * *", broadcast=True, created="2026-06-01T10:00:30Z"), [], "2026-06-01T10:01:00Z")
    (body,) = creates(p)
    assert (body["apiVersion"], body["kind"]) == ("apps.kruise.io/v1alpha1", "BroadcastJob")
    assert body["spec"]["completionPolicy"] == {"type": "Always"}
    assert p.status.type == "BroadcastJob"


def test_M37_pause_stops_creation_and_resume_runs_the_newest_slot() -> None:
    kids = [job("2026-06-01T10:01:00Z", state="Complete")]
    paused = plan(acj("*/1 * * * *", paused=True), kids, "2026-06-01T10:03:00Z")
    assert creates(paused) == [] and paused.requeue_after is None
    resumed = plan(acj("*/1 * * * *", paused=False), kids, "2026-06-01T10:03:10Z")
    assert [b["metadata"]["name"] for b in creates(resumed)] == ["acj-1780308180"]


def test_Q1_a_deleted_newest_child_runs_again_and_kruisebus_says_so() -> None:
    """The status recorded 10:00 (its child existed); the child is gone: Kruise re-creates it under the same
    name. kruisebus does the same and reports it (condition, Warning Event, rollout event)."""
    a = acj("0 * * * *", created="2026-06-01T09:30:00Z", last="2026-06-01T10:00:00Z")
    p = plan(a, [], "2026-06-01T10:20:00Z")
    assert [b["metadata"]["name"] for b in creates(p)] == ["acj-1780308000"]
    (cond,) = [c for c in p.status.conditions if c.type == "DeletedChildRerun"]
    assert cond.reason == "NewestChildDeleted" and cond.message.startswith("acj-1780308000 ")
    assert "slot-rerun" in [e.type for e in p.events]
    assert any(c.on_success is not None and c.on_success.reason == "NewestChildDeleted" for c in p.commands)
    # the next pass, before the re-created child is seen, does not warn again
    again = plan(acj("0 * * * *", created="2026-06-01T09:30:00Z", status=msgspec.to_builtins(p.status)), [],
                 "2026-06-01T10:20:01Z")
    assert "slot-rerun" not in [e.type for e in again.events]
    # a normal slot later clears it
    later = plan(acj("0 * * * *", created="2026-06-01T09:30:00Z", status=msgspec.to_builtins(p.status)),
                 [job("2026-06-01T10:00:00Z", state="Complete")], "2026-06-01T11:00:01Z")
    assert not [c for c in later.status.conditions if c.type == "DeletedChildRerun"]


def test_Q5_older_missed_slots_are_dropped_and_the_log_says_how_many() -> None:
    p = plan(acj("*/5 * * * *"), [job("2026-06-01T10:00:00Z", state="Complete")], "2026-06-01T10:17:00Z")
    (ev,) = [e for e in p.events if e.type == "child-created"]
    assert "2 older missed slots not run" in ev.message


def test_forbid_logs_the_skipped_slot() -> None:
    p = plan(acj("0 * * * *", policy="Forbid"), [job("2026-06-01T10:00:00Z")], "2026-06-01T11:00:01Z")
    assert [e.type for e in p.events] == ["slot-skipped"] and "Forbid" in p.skipped


def test_an_invalid_spec_is_never_scheduled() -> None:
    p = plan(acj("0 0 * * 7"), [], "2026-06-01T11:00:01Z")
    assert not p.accepted and creates(p) == []
    assert [e.type for e in p.events] == ["rejected"] and p.events[0].field == "spec.schedule"
    (cond,) = p.status.conditions
    assert cond.type == "InvalidSpec" and "end of range (7) above maximum (6): 7" in cond.message


def test_children_of_another_kind_are_ignored() -> None:
    p = plan(acj("0 * * * *"), [job("2026-06-01T10:00:00Z", kind="BroadcastJob")], "2026-06-01T10:30:00Z")
    assert p.status.active == [] and p.status.last_schedule_time is None


def test_Q13_a_schedule_without_zone_runs_in_the_controllers_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    p = plan(acj("0 10 * * *", created="2022-09-05T00:00:00Z"), [], "2022-09-05T09:01:00Z", local=shanghai)
    assert next_at(p, "2022-09-05T09:01:00Z") == "2022-09-06T02:00:00Z"
    assert [b["metadata"]["annotations"]["apps.kruise.io/scheduled-at"] for b in creates(p)] == \
        ["2022-09-05T10:00:00+08:00"]
