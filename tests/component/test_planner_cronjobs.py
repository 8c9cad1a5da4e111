"""The planner service with the AdvancedCronJob and BroadcastJob planners: state in, commands out (no cluster).

A BroadcastJob gets the cluster's Nodes (no workload owns them), and a BroadcastJob an AdvancedCronJob
controls is both a workload of its own and that AdvancedCronJob's child.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from schemas.advancedcronjob import AdvancedCronJob
from schemas.broadcastjob import BroadcastJob
from schemas.kube import Node
from schemas.messages import AdvancedCronJobState, BroadcastJobState, CreateOp, NodeState, PatchOp
from services.natsd import NatsServer
from tests.component.helpers import eventually
from tests.component.test_planner_service import commands, planner_running


def node(name: str) -> Node:
    return msgspec.convert({"metadata": {"name": name, "uid": f"node-{name}"},
                            "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}}}, Node)


def bcj(name: str, owner: dict[str, Any] | None = None, slot: str = "", **spec: Any) -> BroadcastJob:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": str(uuid.uuid4()), "generation": 1,
                            "resourceVersion": "5"}
    if owner:
        meta["ownerReferences"] = [owner]
        meta["annotations"] = {"apps.kruise.io/scheduled-at": slot}
    return msgspec.convert({"metadata": meta, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}, **spec}}, BroadcastJob)


def created_nodes(cmds: list[Any]) -> list[str]:
    return sorted(op.body["spec"]["nodeName"] for c in cmds for op in c.ops if isinstance(op, CreateOp))


async def test_a_broadcastjob_runs_one_pod_per_node_within_parallelism(nats_server: NatsServer, uid: str) -> None:
    async with planner_running(nats_server.url, f"b{uid}") as (bus, _):
        for i in range(1, 11):
            await bus.publish_state(NodeState(object=node(f"n{i:02d}")))
        job = bcj("sweep", parallelism=3)
        await bus.publish_state(BroadcastJobState(object=job))
        cmds = await eventually(lambda: commands(bus, job.metadata.uid), lambda c: len(created_nodes(c)) >= 1,
                                what="the first pod creates")
        # slow start: 1 pod first, never more than 3 of the 10 nodes before any finishes
        assert created_nodes(cmds) == ["n01"]
        status = [op for c in cmds for op in c.ops if isinstance(op, PatchOp) and op.subresource == "status"]
        assert status and isinstance(status[-1].patch, dict) and status[-1].patch["status"]["desired"] == 10


async def test_an_acj_sees_its_broadcastjob_child(nats_server: NatsServer, uid: str) -> None:
    async with planner_running(nats_server.url, f"a{uid}") as (bus, _):
        now = datetime.now(UTC).replace(microsecond=0)
        acj = msgspec.convert({
            "metadata": {"name": "every-node", "namespace": "default", "uid": str(uuid.uuid4()), "generation": 1,
                         "resourceVersion": "3",
                         "creationTimestamp": (now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")},
            "spec": {"schedule": "@every 1h", "concurrencyPolicy": "Forbid", "template": {"broadcastJobTemplate": {
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                                               "containers": [{"name": "c", "image": "busybox"}]}}}}}}},
            AdvancedCronJob)
        owner = {"apiVersion": "apps.kruise.io/v1beta1", "kind": "AdvancedCronJob", "name": "every-node",
                 "uid": acj.metadata.uid, "controller": True}
        slot = (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        await bus.publish_state(BroadcastJobState(object=bcj("every-node-1", owner, slot=slot)))
        await bus.publish_state(AdvancedCronJobState(object=acj))

        def status(cmds: list[Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for c in cmds:
                for op in c.ops:
                    if isinstance(op, PatchOp) and isinstance(op.patch, dict) and "status" in op.patch:
                        out = op.patch["status"]
            return out

        cmds = await eventually(lambda: commands(bus, acj.metadata.uid),
                                lambda c: [r["name"] for r in status(c).get("active") or []] == ["every-node-1"],
                                what="the ACJ status naming its BroadcastJob as active")
        assert status(cmds)["lastScheduleTime"] == slot and status(cmds)["conditions"] is None
        assert not any(isinstance(op, CreateOp) for c in cmds for op in c.ops)  # next slot in 50 minutes


async def test_requeues_share_one_heap_and_a_later_pass_replaces_the_earlier_time(nats_server: NatsServer,
                                                                                  uid: str) -> None:
    """An AdvancedCronJob re-planned many times between two slots keeps one timer, set to its next slot."""
    import asyncio

    async with planner_running(nats_server.url, f"t{uid}") as (_, planner):
        loop = asyncio.get_running_loop()
        for _ in range(1000):
            planner.requeue("acj-uid", 3600.0)
        assert len(planner.timers) == 1
        when = planner.timers.when("acj-uid")
        assert when is not None and 3599 < when - loop.time() <= 3600
        planner.requeue("acj-uid", 0.1)  # an earlier time wakes the sleeper
        await eventually(lambda: asyncio.sleep(0, planner.timers.when("acj-uid")), lambda w: w is None,
                         what="the timer to fire")
        assert len(planner.timers) == 0
