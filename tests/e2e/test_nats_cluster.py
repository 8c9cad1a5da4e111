"""A member of a 3-node JetStream cluster SIGKILLed under a rollout in progress, every service a process
connected with the three servers' URLs, every stream and the lease bucket on three replicas.

The member killed is the leader of the rollout log's stream (and whatever else it led): the services
go on through the two others, the rollout converges (read from the API server), and every rollout event
published before the kill is still on the log at the same sequence with the same id and payload.
"""

from __future__ import annotations

import signal
import time

import pytest

from schemas.messages import CLONESETS
from schemas.subjects import STREAM_CMD, STREAM_EVENTS, STREAM_STATE
from services.kube import Kube
from services.observe import poll
from services.stack import Stack
from tests.e2e.helpers import NS, cloneset, set_image, settled
from tests.e2e.test_nats_faults import NAME, REPLICAS, STRATEGY, log_of, mid_rollout

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.mark.parametrize("stack", [{"nats_servers": 3, "webhook": False}], indirect=True)
async def test_a_cluster_member_killed_mid_rollout_the_rollout_converges_and_the_log_is_kept(
        stack: Stack, kube: Kube) -> None:
    cluster = stack.nats_cluster
    assert cluster is not None
    started = time.monotonic()
    await kube.create(CLONESETS, NS, cloneset(NAME, replicas=REPLICAS, strategy=STRATEGY, image="nginx:1.19"))
    await settled(kube, NAME, REPLICAS, timeout=60)
    admin = await stack.connect(name="test-operator")
    try:
        for base in (STREAM_STATE, STREAM_CMD, STREAM_EVENTS):
            info = await admin.js.stream_info(admin.subjects.stream(base))
            assert info.config.num_replicas == 3, base
        await mid_rollout(kube, "nginx:1.20")
        events = admin.subjects.stream(STREAM_EVENTS)
        info = await admin.js.stream_info(events)
        assert info.cluster is not None and info.cluster.leader
        leader = info.cluster.leader
        before = await log_of(admin)
        assert any(ev.workload == NAME for _, _, ev in before), "no rollout event before the kill"
        cluster.member(leader).stop(signal.SIGKILL)
        # a change after the kill must travel through the two remaining servers
        await set_image(kube, NAME, "nginx:1.21")
        after = await settled(kube, NAME, REPLICAS, timeout=60)
        assert {c.image for p in after.pods for c in p.spec.containers} == {"nginx:1.21"}

        async def new_leader() -> str:
            i = await admin.js.stream_info(events)
            return i.cluster.leader if i.cluster is not None and i.cluster.leader else ""

        elected = await poll(new_leader, lambda name: name not in ("", leader), timeout=20,
                             what="a new leader of the rollout log")
        log = {seq: (msg_id, ev) for seq, msg_id, ev in await log_of(admin)}
        missing = [(seq, msg_id, ev.type) for seq, msg_id, ev in before if log.get(seq) != (msg_id, ev)]
        assert missing == [], f"events published before the kill that are gone or changed: {missing[:5]}"
        assert len(log) > len(before), "no rollout event after the kill"
        print(f"killed {leader} (new leader {elected}); {len(before)} events before the kill kept, "
              f"{len(log) - len(before)} after; {time.monotonic() - started:.1f}s")
    finally:
        await admin.close()
    stack.check_alive()
