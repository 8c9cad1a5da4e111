"""Condition bookkeeping as Kruise's controllers do it: unchanged, same status, transition, removal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.cloneset import CloneSetCondition
from schemas.kube import PodCondition
from services.planner.kit.conditions import get_condition, remove_condition, set_condition

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_same_status_and_reason_leaves_the_condition_untouched() -> None:
    conditions = set_condition([], CloneSetCondition(type="Progressing", status="True", reason="A"), T0)
    again = set_condition(conditions, CloneSetCondition(type="Progressing", status="True", reason="A"), T1)
    assert again is conditions
    assert again[0].last_update_time == "2026-01-01T00:00:00Z"


def test_new_reason_with_the_same_status_keeps_the_transition_time() -> None:
    conditions = set_condition([], CloneSetCondition(type="Progressing", status="True", reason="A"), T0)
    changed = set_condition(conditions, CloneSetCondition(type="Progressing", status="True", reason="B"), T1)
    (c,) = changed
    assert (c.reason, c.last_transition_time, c.last_update_time) == (
        "B",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:05:00Z",
    )


def test_status_change_is_a_transition_and_other_types_are_kept() -> None:
    other = CloneSetCondition(type="FailedUpdate", status="True", message="x")
    conditions = set_condition([other], CloneSetCondition(type="Progressing", status="True", reason="A"), T0)
    changed = set_condition(conditions, CloneSetCondition(type="Progressing", status="False", reason="A"), T1)
    assert [c.type for c in changed] == ["FailedUpdate", "Progressing"]
    assert get_condition(changed, "Progressing") == CloneSetCondition(
        type="Progressing",
        status="False",
        reason="A",
        last_transition_time="2026-01-01T00:05:00Z",
        last_update_time="2026-01-01T00:05:00Z",
    )
    assert remove_condition(changed, "Progressing") == [other]
    assert get_condition(remove_condition(changed, "Progressing"), "Progressing") is None


def test_any_condition_struct_is_stamped_in_its_own_time_fields() -> None:
    (c,) = set_condition([], PodCondition(type="Ready", status="False", reason="ReadinessGatesNotReady"), T0)
    assert (c.last_transition_time, c.last_probe_time) == ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
