"""Bad input reaches the user where they look, and nothing else stalls.

An invalid CloneSet is not acted on (no pods) and is reported as a status condition, an Event and a
`rejected` rollout event, each naming the field; a malformed message on a command subject is
terminated with a `rejected` event and the executor keeps serving the next CloneSet.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet
from schemas.constants import CONDITION_INVALID_SPEC
from schemas.messages import CLONESETS, EVENTS
from services.demo import load_sample
from services.kube import Kube
from services.observe import poll, snapshot
from services.stack import Stack
from tests.component.helpers import all_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]


def cloneset(name: str, **update_strategy: object) -> dict[str, object]:
    body = copy.deepcopy(load_sample())
    body["metadata"] = {"name": name, "labels": {"app": name}}
    spec = body["spec"]
    assert isinstance(spec, dict)
    spec["replicas"] = 2
    spec["selector"] = {"matchLabels": {"app": name}}
    spec["template"]["metadata"] = {"labels": {"app": name}}
    spec["updateStrategy"] = {"type": "InPlaceIfPossible", **update_strategy}
    return body


async def rejected_events(stack: Stack) -> list[tuple[str, str, str]]:
    bus = await stack.connect(name="test-rejected")
    try:
        events = await all_events(bus, bus.subjects.events_of_type("rejected"))
        return [(ev.workload, ev.field or ev.subject, ev.message) for ev in events]
    finally:
        await bus.close()


@pytest.mark.parametrize("stack", [{"webhook": False}], indirect=True)  # admitted while no webhook ran
@pytest.mark.parametrize(("field", "strategy"), [
    ("spec.updateStrategy.partition", {"partition": "abc"}),
    ("spec.updateStrategy.maxUnavailable", {"maxUnavailable": "5"}),
])
async def test_invalid_spec_is_reported_and_not_acted_on(stack: Stack, kube: Kube, field: str,
                                                        strategy: dict[str, object]) -> None:
    await kube.create(CLONESETS, "default", cloneset("bad", **strategy))
    await kube.create(CLONESETS, "default", cloneset("good"))

    def invalid_condition(cs: CloneSet) -> str:
        for c in cs.status.conditions:
            if c.type == CONDITION_INVALID_SPEC and c.status == "True":
                return c.message
        return ""

    bad = await poll(lambda: snapshot(kube, "default", "bad"), lambda s: bool(invalid_condition(s.cloneset)),
                     timeout=60, what="InvalidSpec condition")
    assert field in invalid_condition(bad.cloneset)
    good = await poll(lambda: snapshot(kube, "default", "good"), lambda s: s.ready == 2, timeout=60,
                      what="the valid CloneSet to run 2 ready pods")
    assert len(good.pods) == 2
    bad = await snapshot(kube, "default", "bad")
    assert bad.pods == [], "an invalid spec must not be acted on"

    async def invalid_spec_events() -> list[dict[str, Any]]:
        items, _ = await kube.list(EVENTS, "default")
        events = [msgspec.json.decode(raw) for raw in items]
        return [e for e in events if e["involvedObject"]["name"] == "bad" and e["reason"] == "InvalidSpec"]

    # the Event is its own write, beside the status condition's
    warnings = await poll(invalid_spec_events, bool, timeout=30, what="an InvalidSpec Event on the CloneSet")
    assert field in warnings[0]["message"] and warnings[0]["type"] == "Warning"

    rejected = await poll(lambda: rejected_events(stack), lambda evs: any(w == "bad" for w, _, _ in evs),
                          timeout=30, what="a rejected rollout event for the invalid CloneSet")
    assert any(w == "bad" and field in f + m for w, f, m in rejected)

    # Fixing the spec lets the planner act on it.
    await kube.patch(CLONESETS, "default", "bad", {"spec": {"updateStrategy": {
        "partition": 0, "maxUnavailable": "20%"}}}, "merge")
    fixed = await poll(lambda: snapshot(kube, "default", "bad"), lambda s: s.ready == 2, timeout=60,
                       what="the fixed CloneSet to run 2 ready pods")
    assert not invalid_condition(fixed.cloneset)


async def test_malformed_command_is_rejected_and_executor_goes_on(stack: Stack, kube: Kube) -> None:
    bus = await stack.connect(name="test-garbage")
    try:
        await bus.ensure_streams()
        subject = bus.subjects.command("default", "some-uid", "create")
        await bus.js.publish(subject, b"{not json", headers={"Nats-Msg-Id": "garbage-1"})
    finally:
        await bus.close()
    rejected = await poll(lambda: rejected_events(stack), lambda evs: any(subject in f for _, f, _ in evs),
                          timeout=30, what="a rejected event naming the command subject")
    assert any(subject in f for _, f, _ in rejected)
    await kube.create(CLONESETS, "default", cloneset("after-garbage"))
    snap = await poll(lambda: snapshot(kube, "default", "after-garbage"), lambda s: s.ready == 2, timeout=60,
                      what="pods of a CloneSet created after the garbage")
    assert len(snap.pods) == 2
