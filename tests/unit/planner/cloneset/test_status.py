"""Kruise's TestSyncProgressingStatus cases E5-E10 and the status/write rules (`cloneset_status.go`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSetCondition, CloneSetStatus
from services.planner.cloneset.conditions import progressing
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.status import needs_write
from services.planner.cloneset.view import CloneSetView
from services.planner.kit.timeutil import format_time
from tests.unit.planner.helpers import (
    NOW,
    cs_dict,
    cs_obj,
    pod_dict,
    pod_obj,
    rev_obj,
    revision_dict,
    with_image,
)


def status(**kw: Any) -> CloneSetStatus:
    base: dict[str, Any] = dict(
        replicas=10,
        updated_replicas=10,
        updated_available_replicas=10,
        expected_updated_replicas=10,
        update_revision="1",
        current_revision="1",
    )
    base.update(kw)
    return CloneSetStatus(**base)


def progress(conds: list[CloneSetCondition]) -> CloneSetCondition | None:
    return next((c for c in conds if c.type == "Progressing"), None)


def test_E5_no_deadline_removes_condition() -> None:
    cs = cs_obj(cs_dict(replicas=10))
    old = CloneSetCondition(type="Progressing", status="True", reason="CloneSetAvailable")
    conds, delay = progressing(cs, status(conditions=[old]), NOW)
    assert progress(conds) is None and delay is None


def test_E6_available() -> None:
    cs = cs_obj(cs_dict(replicas=10, pds=10))
    conds, delay = progressing(cs, status(), NOW)
    c = progress(conds)
    assert c is not None and (c.status, c.reason, c.message) == (
        "True",
        "CloneSetAvailable",
        "CloneSet is available",
    )
    assert delay is None


def test_E7_paused() -> None:
    cs = cs_obj(cs_dict(replicas=10, pds=10, paused=True))
    conds, _ = progressing(
        cs, status(updated_replicas=5, updated_available_replicas=5, current_revision="0"), NOW
    )
    c = progress(conds)
    assert c is not None and (c.status, c.reason, c.message) == (
        "True",
        "CloneSetPaused",
        "CloneSet is paused",
    )


def test_E8_partition_available() -> None:
    cs = cs_obj(cs_dict(replicas=10, pds=10, partition="90%"))
    st = status(
        updated_replicas=1, updated_available_replicas=1, expected_updated_replicas=1, current_revision="0"
    )
    conds, _ = progressing(cs, st, NOW)
    c = progress(conds)
    assert c is not None and c.reason == "ProgressPartitionAvailable" and c.status == "True"
    assert c.message == "CloneSet has been paused due to partition ready"


def test_E9_deadline_exceeded() -> None:
    cs = cs_obj(cs_dict(replicas=12, pds=10))
    old_ts = format_time(NOW - timedelta(minutes=5))
    old = CloneSetCondition(
        type="Progressing",
        status="True",
        reason="CloneSetUpdated",
        last_update_time=old_ts,
        last_transition_time=old_ts,
    )
    conds, delay = progressing(cs, status(conditions=[old], expected_updated_replicas=12), NOW)
    c = progress(conds)
    assert c is not None and (c.status, c.reason) == ("False", "ProgressDeadlineExceeded")
    assert c.message == "CloneSet revision 1 has timed out progressing"
    # sticky: stays exceeded while progressing
    conds2, _ = progressing(
        cs, status(conditions=conds, expected_updated_replicas=12), NOW + timedelta(seconds=1)
    )
    assert progress(conds2) == c


def test_E10_starts_deploying_requeue_deadline_plus_one() -> None:
    cs = cs_obj(cs_dict(replicas=10, pds=10))
    conds, delay = progressing(
        cs, status(updated_replicas=3, updated_available_replicas=3, current_revision="0"), NOW
    )
    c = progress(conds)
    assert c is not None and (c.status, c.reason, c.message) == (
        "True",
        "CloneSetUpdated",
        "CloneSet is progressing",
    )
    assert delay == 11


def test_same_status_and_reason_keeps_condition_untouched() -> None:
    cs = cs_obj(cs_dict(replicas=10, pds=100))
    ts = format_time(NOW - timedelta(seconds=30))
    old = CloneSetCondition(
        type="Progressing",
        status="True",
        reason="CloneSetUpdated",
        message="CloneSet is progressing",
        last_update_time=ts,
        last_transition_time=ts,
    )
    conds, delay = progressing(cs, status(conditions=[old], updated_replicas=3, current_revision="0"), NOW)
    assert progress(conds) == old
    assert delay == 71  # 30 s used of 100, +1


def test_write_rule_ignores_collision_count_and_failed_conditions() -> None:
    a = status()
    assert not needs_write(a, msgspec.structs.replace(a, collision_count=3))
    failed = CloneSetCondition(type="FailedUpdate", status="True", message="x")
    assert not needs_write(a, msgspec.structs.replace(a, conditions=[failed]))
    assert needs_write(a, msgspec.structs.replace(a, ready_replicas=1))
    assert needs_write(a, msgspec.structs.replace(a, observed_generation=1))
    assert not needs_write(
        msgspec.structs.replace(a, observed_generation=2), msgspec.structs.replace(a, observed_generation=1)
    )


@pytest.mark.parametrize("current_exists", [True, False], ids=["current-kept", "current-missing"])
def test_current_revision_rules(current_exists: bool) -> None:
    old = cs_dict(replicas=2)
    new = with_image(old, "nginx:2.0")
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    revs = [r_old, r_new] if current_exists else [r_new]
    new["status"] = {"currentRevision": r_old["metadata"]["name"]}
    pods = [pod_dict(new, r_old["metadata"]["name"], 0), pod_dict(new, r_new["metadata"]["name"], 1)]
    view = CloneSetView(
        cloneset=cs_obj(new), pods=[pod_obj(p) for p in pods], revisions=[rev_obj(r) for r in revs]
    )
    p = plan_cloneset(view, now=NOW)
    expected = r_old["metadata"]["name"] if current_exists else r_new["metadata"]["name"]
    assert p.status.current_revision == expected
    assert p.status.updated_replicas == 1 and p.status.expected_updated_replicas == 2


def test_current_revision_follows_once_all_updated_readiness_not_required() -> None:
    old = cs_dict(replicas=2)
    new = with_image(old, "nginx:2.0")
    r_old, r_new = revision_dict(old, 1), revision_dict(new, 2)
    new["status"] = {"currentRevision": r_old["metadata"]["name"]}
    pods = [pod_dict(new, r_new["metadata"]["name"], i, ready=False) for i in range(2)]
    view = CloneSetView(
        cloneset=cs_obj(new), pods=[pod_obj(p) for p in pods], revisions=[rev_obj(r_old), rev_obj(r_new)]
    )
    p = plan_cloneset(view, now=NOW)
    assert p.status.current_revision == r_new["metadata"]["name"]
    assert p.status.ready_replicas == 0 and p.status.updated_ready_replicas == 0


def test_min_ready_seconds_available_and_requeue() -> None:
    cs = cs_dict(replicas=2, min_ready=30)
    rev = revision_dict(cs)
    pods = [
        pod_dict(cs, rev["metadata"]["name"], 0, ready_since=NOW - timedelta(seconds=10)),
        pod_dict(cs, rev["metadata"]["name"], 1, ready_since=NOW - timedelta(minutes=10)),
    ]
    view = CloneSetView(cloneset=cs_obj(cs), pods=[pod_obj(p) for p in pods], revisions=[rev_obj(rev)])
    p = plan_cloneset(view, now=NOW)
    assert (p.status.ready_replicas, p.status.available_replicas) == (2, 1)
    assert p.requeue_after == 20


def test_readiness_ignores_lifecycle_availability_does_not() -> None:
    cs = cs_dict(replicas=2)
    rev = revision_dict(cs)
    pods = [
        pod_dict(cs, rev["metadata"]["name"], 0, state="PreparingUpdate"),
        pod_dict(cs, rev["metadata"]["name"], 1),
    ]
    view = CloneSetView(cloneset=cs_obj(cs), pods=[pod_obj(p) for p in pods], revisions=[rev_obj(rev)])
    p = plan_cloneset(view, now=NOW)
    assert (p.status.ready_replicas, p.status.available_replicas) == (2, 1)
