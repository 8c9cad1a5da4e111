"""The planner service through its bus contract: state messages in, commands out (no cluster).

Also: a malformed state message is rejected without stopping the planner, and a restarted planner
rebuilds its view from the state stream and re-issues byte-identical command ids, which JetStream's
duplicate window drops.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from schemas.cloneset import CloneSet
from schemas.kube import ControllerRevision, Pod
from schemas.messages import (
    COMMAND_DECODER,
    CloneSetState,
    Command,
    CreateOp,
    PodState,
    RevisionState,
    RolloutEvent,
)
from services.bus import Bus
from services.demo import load_sample
from services.natsd import NatsServer
from services.planner.service import Planner, run_planner
from tests.component.helpers import all_events, eventually, stream_messages


def sample_cloneset(name: str = "sample") -> CloneSet:
    body = load_sample()
    body["metadata"] = {"name": name, "namespace": "default", "uid": str(uuid.uuid4()), "generation": 1,
                        "resourceVersion": "10", "labels": {"app": "sample"}}
    return msgspec.convert(body, CloneSet)


def pod_from(create: Command) -> Pod:
    """The pod a create command asks for, as the watcher would report it once the API server made it."""
    body = create.ops[-1].body  # type: ignore[union-attr]
    meta = {**body["metadata"], "uid": f"uid-{create.pod}", "resourceVersion": "20",
            "creationTimestamp": "2026-01-01T00:00:00Z"}
    return msgspec.convert({**body, "metadata": meta, "status": {"phase": "Pending"}}, Pod)


async def commands(bus: Bus, workload_uid: str) -> list[Command]:
    """Every command for this workload still in the work queue (no executor consumes them here)."""
    cmds = [COMMAND_DECODER.decode(msg.data or b"") for msg in await stream_messages(bus, "CMD")]
    return [cmd for cmd in cmds if cmd.workload_uid == workload_uid]


@asynccontextmanager
async def planner_running(url: str, prefix: str) -> AsyncIterator[tuple[Bus, Planner]]:
    bus = await Bus.connect(url, name="test-planner", prefix=prefix)
    await bus.ensure_streams()
    stop = asyncio.Event()
    planner = Planner(bus, expectation_timeout=60)
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        yield bus, planner
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


async def test_state_in_commands_out_and_restart_dedup(nats_server: NatsServer, uid: str) -> None:
    prefix = f"p{uid}"
    cs = sample_cloneset()
    async with planner_running(nats_server.url, prefix) as (bus, _):
        await bus.publish_state(CloneSetState(object=cs))
        first = await eventually(lambda: commands(bus, cs.metadata.uid),
                                 lambda cmds: any(c.verb == "revision-create" for c in cmds),
                                 what="a revision-create command")
        create_rev = next(c for c in first if c.verb == "revision-create")
        op = create_rev.ops[0]
        assert isinstance(op, CreateOp) and op.resource.plural == "controllerrevisions"
        revision = msgspec.convert({**op.body, "metadata": {**op.body["metadata"], "uid": "rev-uid",
                                                            "resourceVersion": "11"}}, ControllerRevision)

        # The revision is observed: the next passes create the 5 pods, named from the revision, in
        # Kruise's slow-start batches (1, 2, then the 2 left of a batch of 4): each batch is planned
        # once the pods of the one before are observed.
        await bus.publish_state(RevisionState(object=revision))
        seen: set[str] = set()
        for size in (1, 2, 2):
            # the commands of one pass land one by one: wait for the whole batch, then check that
            # it is exactly that big (a bigger one would also show up in the next batch's count)
            def new(cmds: list[Command]) -> list[Command]:
                return [c for c in cmds if c.verb == "create" and c.pod not in seen]

            cmds = await eventually(lambda: commands(bus, cs.metadata.uid),
                                    lambda cmds, size=size: len(new(cmds)) >= size,
                                    what=f"a batch of {size} creates after {len(seen)} pods")
            batch = new(cmds)
            assert len(batch) == size, [c.pod for c in batch]
            assert all(c.revision == revision.metadata.name for c in batch)
            for c in batch:
                seen.add(c.pod)
                await bus.publish_state(PodState(object=pod_from(c)))
        assert sum(c.verb == "create" for c in await commands(bus, cs.metadata.uid)) == 5

        # Garbage on a state subject is rejected; the planner keeps serving other workloads.
        await bus.js.publish(bus.subjects.state("default", cs.metadata.uid, "pod", "junk"), b"\x00not json",
                             headers={"Nats-Msg-Id": "junk-1"})
        other = sample_cloneset("other")
        await bus.publish_state(CloneSetState(object=other))
        await eventually(lambda: commands(bus, other.metadata.uid), lambda c: c, what="the other workload's plan")
        rejected = await eventually(lambda: all_events(bus, f"{prefix}.events.*.*.rejected"), lambda e: e,
                                    what="a rejected event for the junk")
        assert "junk" in rejected[0].subject and rejected[0].reason == "malformed"
        before = await bus.js.stream_info(bus.subjects.stream("CMD"))

    # A new planner replays the state stream and decides the same things: same ids, so JetStream
    # drops every re-sent command as a duplicate and the work queue does not grow.
    async with planner_running(nats_server.url, prefix) as (bus, planner):
        await eventually(lambda: asyncio.sleep(0, planner.plans), lambda n: n >= 2,
                         what="the restarted planner to re-plan both workloads")
        after = await bus.js.stream_info(bus.subjects.stream("CMD"))
        assert after.state.messages == before.state.messages
        assert set(planner.workloads) >= {cs.metadata.uid, other.metadata.uid}


async def msg_ids(bus: Bus) -> list[str]:
    """The Nats-Msg-Id of every command in the work queue, in order."""
    return [(msg.headers or {}).get("Nats-Msg-Id", "") for msg in await stream_messages(bus, "CMD")]


async def test_refused_create_is_retried_after_a_backoff_one_pod_at_a_time(nats_server: NatsServer,
                                                                          uid: str) -> None:
    """A create the API server refused for good (quota, admission) has no newer view to wait for: the
    planner re-sends it after a backoff, as `<id>@retry1`, and slow start drops back to one pod, so
    the refusal is not repeated for every missing replica."""
    cs = sample_cloneset("refused")
    async with planner_running(nats_server.url, f"p{uid}") as (bus, _):
        await bus.publish_state(CloneSetState(object=cs))
        first = await eventually(lambda: commands(bus, cs.metadata.uid),
                                 lambda cmds: any(c.verb == "revision-create" for c in cmds),
                                 what="a revision-create command")
        op = next(c for c in first if c.verb == "revision-create").ops[0]
        assert isinstance(op, CreateOp)
        await bus.publish_state(RevisionState(object=msgspec.convert(
            {**op.body, "metadata": {**op.body["metadata"], "uid": "rev-uid", "resourceVersion": "11"}},
            ControllerRevision)))
        cmds = await eventually(lambda: commands(bus, cs.metadata.uid),
                                lambda cmds: any(c.verb == "create" for c in cmds), what="the first create")
        (create,) = [c for c in cmds if c.verb == "create"]

        # what the executor publishes when the API server answers 403
        await bus.publish_event(RolloutEvent(
            type="rejected", namespace="default", workload=cs.metadata.name, time="2026-01-01T00:00:00Z",
            message="pods is forbidden: exceeded quota", command_id=create.id, reason="forbidden"),
            msg_id=f"rejected:{create.id}")
        ids = await eventually(lambda: msg_ids(bus), lambda ids: f"{create.id}@retry1" in ids, timeout=15,
                               what="the refused create to be re-sent after its backoff")
        creates = [c for c in await commands(bus, cs.metadata.uid) if c.verb == "create"]
        assert [c.pod for c in creates] == [create.pod, create.pod], "slow start is back to one pod"
        assert ids.count(f"{create.id}@retry1") == 1
