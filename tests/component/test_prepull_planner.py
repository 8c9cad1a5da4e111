"""Image pre-download through the planner service (real NATS, no cluster): state in, commands and node
work out. A Ready node gets its NodeImage; a job hands its image to `parallelism` NodeImages; each
NodeImage sends the pull to its node's agent (KB_NODE); the agent's PullResult becomes one NodeImage
status write; and the next node gets the image."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
from prometheus_client import REGISTRY

from schemas.imagepulljob import ImagePullJob
from schemas.jsonmerge import merge_patch
from schemas.kinds import NODE_IMAGE
from schemas.kube import Node, ObjectMeta
from schemas.messages import (
    COMMAND_DECODER,
    Command,
    ImagePullJobState,
    NodeImageState,
    NodeState,
    PatchOp,
    PullResultState,
)
from schemas.nodeimage import NodeImage
from schemas.nodework import PullResult
from services.bus import Bus
from services.natsd import NatsServer
from services.planner.imagepulljob.planner import NodeImagePlanner
from services.planner.kit.gates import FeatureGates, parse_feature_gates
from services.planner.kit.timeutil import format_time
from services.planner.service import Planner, run_planner
from services.planner.workloads import registry_for
from tests.component.helpers import eventually, stream_messages

GATES = parse_feature_gates("ImagePullJobGate=true")


@asynccontextmanager
async def planner_running(url: str, prefix: str, gates: FeatureGates) -> AsyncIterator[Bus]:
    bus = await Bus.connect(url, name="test-prepull", prefix=prefix)
    await bus.ensure_streams()
    stop = asyncio.Event()
    planner = Planner(bus, gates=gates, expectation_timeout=60)
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        yield bus
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


async def sent(bus: Bus, stream: str) -> list[Command]:
    return [COMMAND_DECODER.decode(m.data or b"") for m in await stream_messages(bus, stream)]


def node(name: str) -> Node:
    return msgspec.convert(
        {
            "metadata": {
                "name": name,
                "uid": f"node-{name}",
                "resourceVersion": "1",
                "labels": {"zone": "a"},
            },
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
                ]
            },
        },
        Node,
    )


def node_image(name: str, rv: str = "1", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"ni-{name}", "resourceVersion": rv, "labels": {"zone": "a"}},
        "spec": {},
        "status": {},
        **extra,
    }


def apply_patch(obj: dict[str, Any], cmd: Command, rv: str) -> dict[str, Any]:
    op = cmd.ops[0]
    assert isinstance(op, PatchOp) and isinstance(op.patch, dict)
    new = merge_patch(obj, {k: v for k, v in op.patch.items() if k != "metadata"})
    new["metadata"]["resourceVersion"] = rv
    return new


async def test_pre_download_through_the_planner_service(nats_server: NatsServer, uid: str) -> None:
    async with planner_running(nats_server.url, f"q{uid}", GATES) as bus:
        await bus.publish_state(NodeState(object=node("n1")))
        await bus.publish_state(NodeState(object=node("n2")))
        creates = await eventually(
            lambda: sent(bus, "CMD"),
            lambda cmds: sum(c.verb == "nodeimage-create" for c in cmds) == 2,
            what="a NodeImage create per Ready node",
        )
        body = next(c for c in creates if c.verb == "nodeimage-create").ops[0].body  # type: ignore[union-attr]
        assert body["metadata"]["labels"] == {"zone": "a"}

        nis = {n: node_image(n) for n in ("n1", "n2")}
        for ni in nis.values():
            await bus.publish_state(NodeImageState(object=msgspec.convert(ni, NodeImage)))
        job = msgspec.convert(
            {
                "metadata": {
                    "name": "warm",
                    "namespace": "default",
                    "uid": "job-1",
                    "resourceVersion": "5",
                    "finalizers": ["apps.kruise.io/deletion-protection"],
                },
                "spec": {
                    "image": "nginx:1.21",
                    "parallelism": 1,
                    "completionPolicy": {"type": "Always"},
                    "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 0},
                    "imagePullPolicy": "IfNotPresent",
                },
            },
            ImagePullJob,
        )
        await bus.publish_state(ImagePullJobState(object=job))
        cmds = await eventually(
            lambda: sent(bus, "CMD"),
            lambda cmds: any(c.verb == "nodeimage-spec" and c.workload.uid == "job-1" for c in cmds),
            what="the job hands its image out",
        )
        [spec_write] = [c for c in cmds if c.verb == "nodeimage-spec" and c.workload.uid == "job-1"]
        target = spec_write.ops[0].name  # type: ignore[union-attr]
        assert target == "n1"  # parallelism 1, name order

        nis["n1"] = apply_patch(nis["n1"], spec_write, "2")
        await bus.publish_state(NodeImageState(object=msgspec.convert(nis["n1"], NodeImage)))
        work = await eventually(
            lambda: sent(bus, "NODE"), lambda cmds: len(cmds) == 1, what="the pull goes to n1's agent"
        )
        pull = work[0]
        assert pull.node == "n1" and pull.node_ops[0].image == "nginx:1.21" and pull.node_ops[0].version == 0

        result = PullResult(
            metadata=ObjectMeta(name="n1", uid="n1/nginx:1.21", resource_version="1"),
            node="n1",
            image="nginx:1.21",
            version=0,
            phase="succeeded",
            image_id="nginx@sha256:1",
            start_time="2026-01-01T00:00:00Z",
            completion_time="2026-01-01T00:00:09Z",
            command_id=pull.id,
        )
        await bus.publish_state(PullResultState(object=result))
        cmds = await eventually(
            lambda: sent(bus, "CMD"),
            lambda cmds: any(c.verb == "nodeimage-status" for c in cmds),
            what="one NodeImage status write for the finished pull",
        )
        [status_write] = [c for c in cmds if c.verb == "nodeimage-status"]
        nis["n1"] = apply_patch(nis["n1"], status_write, "3")
        assert nis["n1"]["status"]["imageStatuses"]["nginx"]["tags"][0]["phase"] == "Succeeded"
        await bus.publish_state(NodeImageState(object=msgspec.convert(nis["n1"], NodeImage)))
        await eventually(
            lambda: sent(bus, "CMD"),
            lambda cmds: sum(c.verb == "nodeimage-spec" and c.workload.uid == "job-1" for c in cmds) == 2,
            what="the next node gets the image once n1 finished",
        )


def pending_pull_image(name: str, created: str, rv: str = "1") -> NodeImage:
    """A NodeImage whose spec asks its node for nginx:1.21 (owned by something that is not a job, so
    spec upkeep keeps it without an ImagePullJob in the view)."""
    tag = {"tag": "1.21", "version": 0, "createdAt": created,
           "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "warm", "uid": "cm-1",
                                "namespace": "default"}]}
    return msgspec.convert(node_image(name, rv, spec={"images": {"nginx": {"tags": [tag]}}}), NodeImage)


def node_image_passes() -> float:
    return REGISTRY.get_sample_value("kruisebus_planner_passes_total", {"kind": NODE_IMAGE.token}) or 0.0


async def passes_at_least(n: float) -> None:
    await eventually(lambda: asyncio.sleep(0, node_image_passes()), lambda v: v >= n, what=f"{n} NodeImage passes")


# Long enough that three passes on a loaded machine end before it (the deadline counts from the
# NodeImage's createdAt, which has whole seconds; 8 s ran out at load average 8), short enough to wait out.
PULL_DEADLINE = 14


def pulls_published() -> float:
    """Pull commands the planner published (in this process), duplicates the stream dropped included."""
    return REGISTRY.get_sample_value("kruisebus_planner_commands_total", {"verb": "pull"}) or 0.0


async def test_a_pull_in_flight_is_not_reissued_and_an_expired_one_is(nats_server: NatsServer, uid: str) -> None:
    """Node work is an expectation of the planner: while the node's agent has not reported on a pull it
    is not sent again (however often its NodeImage is planned), once its deadline has passed without a
    report it is re-issued (past the duplicate window), and once reported it is left to the agent."""
    bus = await Bus.connect(nats_server.url, name="test-prepull", prefix=f"r{uid}")
    await bus.ensure_streams()
    stop = asyncio.Event()
    registry = {**registry_for(GATES), NODE_IMAGE.token: NodeImagePlanner(pull_start_deadline=PULL_DEADLINE)}
    planner = Planner(bus, gates=GATES, registry=registry, report_grace=0.5)
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        await bus.publish_state(NodeState(object=node("n1")))
        created = format_time(datetime.now(UTC))
        before, passes = pulls_published(), node_image_passes()
        await bus.publish_state(NodeImageState(object=pending_pull_image("n1", created)))
        [pull] = await eventually(lambda: sent(bus, "NODE"), lambda cmds: len(cmds) == 1, what="the pull")
        # the NodeImage is planned again (a new resourceVersion) while the pull waits on KB_NODE; one at a
        # time (two states in one batch are one pass)
        await passes_at_least(passes + 1)
        for n, rv in enumerate(("2", "3"), start=2):
            await bus.publish_state(NodeImageState(object=pending_pull_image("n1", created, rv)))
            await passes_at_least(passes + n)
        assert pulls_published() - before == 1, "a pull in flight was sent again"
        # nobody takes it up: after its not_after (+ grace) it is re-issued, as a new message
        work = await eventually(lambda: sent(bus, "NODE"), lambda cmds: len(cmds) == 2, timeout=PULL_DEADLINE + 15,
                                what="the expired pull re-issued")
        assert [c.id for c in work] == [pull.id, pull.id] and work[1].not_after > pull.not_after
        # the agent answers it: nothing more is sent although the pull never finishes
        report = PullResult(metadata=ObjectMeta(name="n1", uid="n1/nginx:1.21", resource_version="1"), node="n1",
                            image="nginx:1.21", phase="pulling", command_id=pull.id)
        passes = node_image_passes()  # read before the report: its pass may come at once
        await bus.publish_state(PullResultState(object=report))
        await passes_at_least(passes + 1)  # the report's pass
        reported_at = pulls_published()
        await bus.publish_state(NodeImageState(object=pending_pull_image("n1", created, "4")))
        await passes_at_least(passes + 2)
        assert pulls_published() == reported_at
        assert not planner.workloads["ni-n1"].in_flight
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


async def test_a_job_seen_before_its_nodeimages_waits_for_them(nats_server: NatsServer, uid: str) -> None:
    """Jobs and NodeImages come on separate watches: a job that overtook its NodeImages stays Running
    (its grace after creation) and hands its image out once they arrive, instead of completing empty."""
    async with planner_running(nats_server.url, f"g{uid}", GATES) as bus:
        job = msgspec.convert({
            "metadata": {"name": "early", "namespace": "default", "uid": "job-early", "resourceVersion": "5",
                         "creationTimestamp": format_time(datetime.now(UTC)),
                         "finalizers": ["apps.kruise.io/deletion-protection"]},
            "spec": {"image": "nginx:1.21", "parallelism": 1, "completionPolicy": {"type": "Always"},
                     "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 0}, "imagePullPolicy": "IfNotPresent"},
        }, ImagePullJob)
        await bus.publish_state(ImagePullJobState(object=job))
        first = await eventually(lambda: sent(bus, "CMD"), lambda cmds: any(c.workload.uid == "job-early" for c in cmds),
                                 what="the job's first pass")
        await bus.publish_state(NodeImageState(object=msgspec.convert(node_image("n1"), NodeImage)))
        cmds = await eventually(lambda: sent(bus, "CMD"),
                                lambda cmds: any(c.verb == "nodeimage-spec" and c.workload.uid == "job-early"
                                                 for c in cmds), what="the image handed to n1")
        statuses = [c for c in [*first, *cmds] if c.verb == "status" and c.workload.uid == "job-early"]
        written = [c.ops[0].patch["status"] for c in statuses if isinstance(c.ops[0], PatchOp)]  # type: ignore[index]
        assert written and all(st["completionTime"] is None for st in written), written
        assert written[0]["message"] == "job is running, no progress"
