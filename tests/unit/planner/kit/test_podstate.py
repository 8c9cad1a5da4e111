"""Pod predicates (Kruise's status rules): ready vs available vs lifecycle, and the minReadySeconds boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.constants import LABEL_LIFECYCLE_STATE, LABEL_SPECIFIED_DELETE
from schemas.kube import ContainerStatus, ObjectMeta, Pod, PodCondition, PodSpecView, PodStatusView
from services.planner.kit.podstate import (
    available_in,
    has_specified_delete_label,
    is_active,
    is_available,
    is_inplace_update_ready,
    is_pod_ready_condition,
    is_ready,
    is_ready_lifecycle_aware,
    is_scheduled,
    is_terminating,
    is_update_ready,
    lifecycle_state,
    max_restart_count,
    ready_time,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def mk(
    phase: str = "Running",
    ready: str | None = "True",
    since: str | None = "2026-01-01T11:00:00Z",
    inplace: str | None = None,
    state: str | None = None,
    deleting: bool = False,
) -> Pod:
    conditions = []
    if ready is not None:
        conditions.append(PodCondition(type="Ready", status=ready, last_transition_time=since))
    if inplace is not None:
        conditions.append(PodCondition(type="InPlaceUpdateReady", status=inplace))
    labels = {} if state is None else {LABEL_LIFECYCLE_STATE: state}
    return Pod(
        metadata=ObjectMeta(
            name="p", labels=labels, deletion_timestamp="2026-01-01T00:00:00Z" if deleting else None
        ),
        spec=PodSpecView(node_name="n"),
        status=PodStatusView(
            phase=phase,
            conditions=conditions,
            container_statuses=[
                ContainerStatus(name="a", restart_count=2),
                ContainerStatus(name="b", restart_count=5),
            ],
        ),
    )


@pytest.mark.parametrize(
    ("pod", "ready"),
    [
        (mk(), True),
        (mk(phase="Pending"), False),
        (mk(ready="False"), False),
        (mk(ready=None), False),
        (mk(inplace="False"), False),  # in-place update in flight
        (mk(inplace="True"), True),
        (mk(state="PreparingNormal"), True),  # readyReplicas ignores lifecycle
    ],
)
def test_is_ready(pod: Pod, ready: bool) -> None:
    assert is_ready(pod) is ready


def test_available_requires_normal_lifecycle() -> None:
    for state, expected in [
        (None, True),
        ("Normal", True),
        ("PreparingNormal", False),
        ("Updating", False),
        ("Updated", False),
        ("PreparingUpdate", False),
        ("PreparingDelete", False),
    ]:
        assert is_available(mk(state=state), 0, NOW) is expected, state
        assert is_ready_lifecycle_aware(mk(state=state)) is expected, state


def test_min_ready_seconds_boundary_is_strict() -> None:
    pod = mk(since="2026-01-01T11:59:00Z")  # ready for exactly 60 s
    assert is_available(pod, 59, NOW)
    assert not is_available(pod, 60, NOW)  # lastTransitionTime + minReady must be *before* now
    assert is_available(pod, 60, NOW + timedelta(seconds=1))
    assert not is_available(mk(since=None), 10, NOW)  # no transition time -> never available with minReady
    assert is_available(mk(since=None), 0, NOW)
    assert is_update_ready(mk(state="Updating"), 0, NOW)  # lifecycle-agnostic
    assert available_in(pod, 60, NOW) == timedelta(0)
    assert available_in(pod, 90, NOW) == timedelta(seconds=30)
    assert available_in(pod, 30, NOW) is None
    assert available_in(mk(ready="False"), 30, NOW) is None


def test_misc_predicates() -> None:
    assert is_active(mk()) and not is_active(mk(phase="Succeeded")) and not is_active(mk(phase="Failed"))
    assert not is_active(mk(deleting=True)) and is_terminating(mk(deleting=True))
    assert is_scheduled(mk())
    assert lifecycle_state(mk()) == "" and lifecycle_state(mk(state="Normal")) == "Normal"
    assert max_restart_count(mk()) == 5
    assert is_pod_ready_condition(mk(phase="Pending"))  # condition only
    assert is_inplace_update_ready(mk()) and not is_inplace_update_ready(mk(inplace="Unknown"))
    assert ready_time(mk()) == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    assert ready_time(mk(ready="False")) is None
    pod = mk()
    pod.metadata.labels[LABEL_SPECIFIED_DELETE] = ""
    assert has_specified_delete_label(pod)
