"""NATS faults under a rollout in progress, every service a process: a stream deleted under the running
services, and the JetStream server SIGKILLed and restarted on its store.

What a user would notice is checked: the CloneSet converges (read from the API server), every service is
still running, the rollout log tells what happened (docs/reliability.md, NATS faults). After a NATS
restart the log before it is still there, message for message; after the loss of the log itself, the
loss is reported as an event on the workload's log.
"""

from __future__ import annotations

import asyncio

import pytest

from schemas.messages import CLONESETS, EVENT_DECODER, RolloutEvent
from schemas.subjects import EVENT_STREAM_LOST, STREAM_CMD, STREAM_EVENTS, STREAM_PROBE, STREAM_STATE
from services.bus import Bus
from services.kube import Kube
from services.observe import Snapshot, poll, snapshot
from services.stack import Stack
from tests.e2e.helpers import NS, cloneset, set_image, settled

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

NAME = "web"
REPLICAS = 6
STRATEGY = {"type": "InPlaceIfPossible", "maxUnavailable": 1}


async def log_of(bus: Bus) -> list[tuple[int, str, RolloutEvent]]:
    """(stream sequence, msg id, event) of every rollout event on the log right now."""
    out = []
    for msg in await bus.stream_messages(STREAM_EVENTS):
        assert msg.seq is not None and msg.data is not None
        out.append((msg.seq, (msg.headers or {}).get("Nats-Msg-Id", ""), EVENT_DECODER.decode(msg.data)))
    return out


async def mid_rollout(kube: Kube, image: str) -> Snapshot:
    """Change the image and wait until the rollout has started (a pod on the new revision) but not ended."""
    await set_image(kube, NAME, image)

    def started(s: Snapshot) -> bool:
        st = s.cloneset.status
        return st.update_revision != st.current_revision and len(s.updated()) >= 1

    return await poll(lambda: snapshot(kube, NS, NAME), started, timeout=60, interval=0.05,
                      what=f"the rollout to {image} to start")


@pytest.mark.parametrize("stack", [{"probers": True, "prober_processes": 1}], indirect=True)
async def test_streams_deleted_mid_rollout_are_recreated_and_the_rollout_converges(stack: Stack, kube: Kube) -> None:
    await kube.create(CLONESETS, NS, cloneset(NAME, replicas=REPLICAS, strategy=STRATEGY, image="nginx:1.19"))
    await settled(kube, NAME, REPLICAS, timeout=90)
    admin = await stack.connect(name="test-operator")
    try:
        before = await log_of(admin)
        assert any(ev.workload == NAME for _, _, ev in before), "no rollout event before the fault"
        snap = await mid_rollout(kube, "nginx:1.20")
        assert len(snap.updated()) < REPLICAS, "the rollout ended before the fault"
        # an operator's mistake (or a lost disk): the state, the command queue, the probe results and the
        # rollout log go
        for base in (STREAM_STATE, STREAM_CMD, STREAM_PROBE, STREAM_EVENTS):
            await admin.js.delete_stream(admin.subjects.stream(base))
        # and a change after the fault must travel through the recreated streams
        await set_image(kube, NAME, "nginx:1.21")
        after = await settled(kube, NAME, REPLICAS, timeout=180)
        assert {c.image for p in after.pods for c in p.spec.containers} == {"nginx:1.21"}

        # the owners recreated every stream, with the configuration it had
        expected = {STREAM_STATE: admin.subjects.state_all(), STREAM_CMD: admin.subjects.command_all(),
                    STREAM_EVENTS: admin.subjects.events_all(), STREAM_PROBE: admin.subjects.probe_all()}
        for base, subject in expected.items():
            info = await admin.js.stream_info(admin.subjects.stream(base))
            assert info.config.subjects == [subject], base
        # the relist refilled the state stream: the CloneSet and each of its pods are there again
        state = await admin.stream_messages(STREAM_STATE)
        subjects = {m.subject for m in state}
        for pod in after.pods:
            assert any(s.endswith(f".pod.{pod.metadata.uid}") for s in subjects), pod.metadata.name
        # the user is told, on the workload's own log, which streams were lost
        lost = await poll(lambda: log_of(admin), lambda log: {ev.reason for _, _, ev in log
                                                              if ev.type == EVENT_STREAM_LOST and ev.workload == NAME}
                          >= {STREAM_STATE, STREAM_CMD, STREAM_PROBE, STREAM_EVENTS}, timeout=60,
                          what="stream-lost events for every lost stream")
        gap = next(ev for _, _, ev in lost if ev.type == EVENT_STREAM_LOST and ev.reason == STREAM_EVENTS)
        assert "events before this one are gone" in gap.message, gap.message
    finally:
        await admin.close()
    stack.check_alive()


async def test_nats_sigkilled_mid_rollout_keeps_the_log_and_the_rollout_converges(stack: Stack, kube: Kube) -> None:
    await kube.create(CLONESETS, NS, cloneset(NAME, replicas=REPLICAS, strategy=STRATEGY, image="nginx:1.19"))
    await settled(kube, NAME, REPLICAS, timeout=90)
    await mid_rollout(kube, "nginx:1.20")
    admin = await stack.connect(name="test-operator")
    try:
        before = await log_of(admin)
    finally:
        await admin.close()
    assert before, "no rollout event before the fault"
    port = stack.nats.port
    await asyncio.to_thread(stack.nats.kill)
    await asyncio.to_thread(stack.nats.start)  # the same port and store
    assert stack.nats.port == port
    await set_image(kube, NAME, "nginx:1.21")
    after = await settled(kube, NAME, REPLICAS, timeout=180)
    assert {c.image for p in after.pods for c in p.spec.containers} == {"nginx:1.21"}
    admin = await stack.connect(name="test-operator")
    try:
        log = await log_of(admin)
    finally:
        await admin.close()
    # every event from before the restart is still replayable, at the same sequence, with the same id
    by_seq = {seq: (msg_id, ev) for seq, msg_id, ev in log}
    for seq, msg_id, ev in before:
        assert by_seq.get(seq) == (msg_id, ev), f"event {seq} ({msg_id}) changed or vanished over the restart"
    # a restart on the same store loses nothing, so nothing is reported lost
    assert not [ev for _, _, ev in log if ev.type == EVENT_STREAM_LOST], "a NATS restart was taken for a stream loss"
    assert len(log) > len(before), "no rollout event after the restart"
    stack.check_alive()
