"""Hostile specs of every planned kind through the planner's own validation (objects admitted while no
webhook ran): one pure pass of the kind's registered planner over the decoded object.

Property: the pass never raises; an invalid spec is not acted on (no pod is created) and is reported
with a `rejected` rollout event naming the field, in a message of bounded size; every command and event
the pass decides is a message the bus can carry. Objects that do not even decode never reach the
planner (the watcher reports them: tests/fuzz/test_fuzz_sim.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.constants import BUS_MAX_PAYLOAD_BYTES, MAX_OBJECT_BYTES
from schemas.kinds import Kind
from schemas.messages import ENCODER, VERB_CREATE
from services.bus import UNDECODABLE
from services.planner.kit.gates import parse_feature_gates
from services.planner.kit.sizes import size
from services.planner.kit.workload import WorkloadPlanner
from services.planner.workloads import registry_for
from tests.fuzz.strategies import budget, hostile_object, served_kinds

GATES = parse_feature_gates("ImagePullJobGate=true,KruiseDaemon=true")
PLANNERS = registry_for(GATES)
PLANNED = [k for k in served_kinds() if k.token in PLANNERS]
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
MAX_MESSAGE = 16 * 1024


def test_every_planned_kind_is_fuzzed() -> None:
    workloads = {p.kind.kind for p in PLANNERS.values() if p.kind.workload}
    assert workloads <= {k.kind for k in PLANNED}, "a planned workload kind has no sample in tests/fuzz/strategies.py"


@pytest.mark.parametrize("kind", PLANNED, ids=[k.kind for k in PLANNED])
@budget(60)
@given(data=st.data())
def test_hostile_specs_are_reported_by_the_planner_never_crash_it(kind: Kind, data: st.DataObject) -> None:
    raw, broken = data.draw(hostile_object(kind), label="object")
    try:
        obj = kind.decoder.decode(msgspec.json.encode(raw))
    except UNDECODABLE:
        return  # the watcher's to report
    planner: WorkloadPlanner = PLANNERS[kind.token]
    owned = {k.token: [] for k in planner.owned} | {s.kind.token: [] for s in planner.shared}
    result = planner.plan(obj, [], owned, None, now=NOW, gates=GATES, create_limit=None)
    for ev in result.events:
        assert len(ev.message) <= MAX_MESSAGE, f"a {len(ev.message)}-character event message for {broken}"
    if not result.accepted:
        assert not any(c.verb == VERB_CREATE for c in result.commands), f"an invalid {broken} was acted on"
        rejected = [ev for ev in result.events if ev.type == "rejected"]
        assert rejected, f"an invalid {kind.kind} ({broken}) was not reported"
        # the event's `field` names it (`kruisebus events` shows it); the message keeps Kruise's wording,
        # which for ImagePullJobs names fields its own way ("unknown type of completionPolicy: ...")
        assert rejected[0].field.startswith(("spec", "metadata")) and rejected[0].message, rejected[0]
    if size(raw) <= MAX_OBJECT_BYTES:
        for message in [*result.commands, *result.events]:
            assert len(ENCODER.encode(message)) < BUS_MAX_PAYLOAD_BYTES, f"{type(message).__name__} over the bus limit"
