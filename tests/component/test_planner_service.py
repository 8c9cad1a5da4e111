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
from schemas.kube import ControllerRevision
from schemas.messages import COMMAND_DECODER, CloneSetState, Command, CreateOp, RevisionState
from services.bus import Bus
from services.demo import load_sample
from services.natsd import NatsServer
from services.planner.service import Planner, run_planner
from tests.component.helpers import all_events, eventually


def sample_cloneset(name: str = "sample") -> CloneSet:
    body = load_sample()
    body["metadata"] = {"name": name, "namespace": "default", "uid": str(uuid.uuid4()), "generation": 1,
                        "resourceVersion": "10", "labels": {"app": "sample"}}
    return msgspec.convert(body, CloneSet)


async def commands(bus: Bus, workload_uid: str) -> list[Command]:
    """Every command for this workload still in the work queue (no executor consumes them here)."""
    stream = bus.subjects.stream("CMD")
    info = await bus.js.stream_info(stream)
    out: list[Command] = []
    if info.state.messages == 0:
        return out
    for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
        msg = await bus.js.get_msg(stream, seq)
        assert msg.data is not None
        cmd = COMMAND_DECODER.decode(msg.data)
        if cmd.workload_uid == workload_uid:
            out.append(cmd)
    return out


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

        # The revision is observed: the next pass creates the 5 pods, named from the revision.
        await bus.publish_state(RevisionState(object=revision))
        cmds = await eventually(lambda: commands(bus, cs.metadata.uid),
                                lambda cmds: sum(c.verb == "create" for c in cmds) == 5,
                                what="five create commands")
        creates = [c for c in cmds if c.verb == "create"]
        assert len({c.pod for c in creates}) == 5
        assert all(c.revision == revision.metadata.name for c in creates)

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
