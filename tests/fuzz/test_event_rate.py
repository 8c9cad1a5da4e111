"""The per-workload rollout event limit on a real bus: a workload flooding the log is cut to its burst,
another workload's events still go out, and the log says how many were dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from schemas.messages import RolloutEvent
from schemas.subjects import EVENT_DROPPED
from services.bus import Bus
from services.eventrate import EventRateLimiter
from services.natsd import NatsServer
from services.observe import poll
from tests.component.helpers import all_events


@pytest.fixture
async def bus(nats_server: NatsServer, uid: str) -> AsyncIterator[Bus]:
    b = await Bus.connect(nats_server.url, name="fuzz-events", prefix=f"e{uid}",
                          event_limit=EventRateLimiter(rate=20.0, burst=10))
    await b.ensure_streams()
    try:
        yield b
    finally:
        await b.close()


def event(workload: str, i: int) -> RolloutEvent:
    return RolloutEvent(type="rejected", namespace="default", workload=workload, message=f"attempt {i} failed",
                        time="2026-12-02T10:00:00Z")


async def test_a_flooding_workload_is_cut_to_its_burst_and_the_drops_are_reported(bus: Bus) -> None:
    sent = [await bus.publish_event(event("flood", i), msg_id=f"flood-{i}") for i in range(50)]
    assert sum(ack is not None for ack in sent) == 10, "the burst goes out, the rest is dropped"
    assert await bus.publish_event(event("quiet", 0), msg_id="quiet-0") is not None, "another workload is not limited"
    counter = iter(range(50, 10_000))

    async def one_more() -> object:
        i = next(counter)
        return await bus.publish_event(event("flood", i), msg_id=f"flood-{i}")

    await poll(one_more, lambda ack: ack is not None, timeout=5, interval=0.01, what="the bucket to refill")
    log = await all_events(bus, bus.subjects.events_of_workload("default", "flood"))
    [dropped] = [e for e in log if e.type == EVENT_DROPPED]
    assert int(dropped.data["dropped"]) >= 40
    assert "over 20 events/s (burst 10)" in dropped.message and "fuzz-events" in dropped.message
    assert len([e for e in log if e.type == "rejected"]) == 11
