"""The node agent through its bus contract: node work in on KB_NODE, pull results out on KB_STATE,
pulling through the `sim` runtime on the embedded cluster's simulated nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from schemas.kinds import CLONESET
from schemas.kube import ObjectMeta
from schemas.messages import Command, PullResultState
from schemas.nodework import REASON_EXPIRED, PullOp, PullResult, pull_result_uid
from schemas.timefmt import format_time
from services.bus import Bus
from services.kube import Kube
from services.natsd import NatsServer
from services.nodeagent.service import NodeAgent, run_node_agent
from services.runtime import ImageRuntime, open_runtime
from sim import SimCluster
from sim.nodes import NodeConfig
from tests.component.helpers import all_events, eventually, last_state

N0, N1 = "sim-node-0", "sim-node-1"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[SimCluster]:
    cfg = NodeConfig(bandwidth_mb_s=100.0, default_image_size_mb=20.0, start_delay=0.01)
    async with SimCluster(nodes=2, tmpdir=tmp_path, node_config=cfg) as c:
        yield c


@pytest.fixture
async def runtimes(cluster: SimCluster) -> AsyncIterator[dict[str, ImageRuntime]]:
    kube = await Kube.connect(str(cluster.kubeconfig_path))
    rts = {n: await open_runtime("sim", node=n, kube=kube) for n in (N0, N1)}
    try:
        yield rts
    finally:
        for rt in rts.values():
            await rt.close()
        await kube.close()


def _pull(node: str, image: str, version: int = 1) -> Command:
    ref = CLONESET.ref(ObjectMeta(name=node, namespace="", uid=f"ni-{node}"))
    return Command(id=f"ni-{node}/pull/{image}/{version}", verb="pull", workload=ref, node=node,
                   node_ops=[PullOp(image=image, version=version, timeout_seconds=30)])


async def _result(bus: Bus, node: str, image: str) -> PullResult | None:
    state = await last_state(bus, bus.subjects.state(None, None, "pullresult", pull_result_uid(node, image)))
    assert state is None or isinstance(state, PullResultState)
    return state.object if state is not None else None


@pytest.fixture
async def bus(nats_server: NatsServer, uid: str):  # type: ignore[no-untyped-def]
    b = await Bus.connect(nats_server.url, name="test-nodeagent", prefix=f"p{uid}")
    await b.ensure_streams()
    try:
        yield b
    finally:
        await b.close()


async def test_a_node_agent_pulls_its_nodes_work_and_reports_each_result(
        bus: Bus, runtimes: dict[str, ImageRuntime]) -> None:
    stop = asyncio.Event()
    ready0, ready1 = asyncio.Event(), asyncio.Event()
    agents = [asyncio.create_task(run_node_agent(bus, N0, runtimes[N0], stop=stop, ready=ready0)),
              asyncio.create_task(run_node_agent(bus, N1, runtimes[N1], stop=stop, ready=ready1))]
    try:
        await asyncio.wait_for(asyncio.gather(ready0.wait(), ready1.wait()), 10)
        await bus.publish_command(_pull(N0, "nginx:1.21"))
        await bus.publish_command(_pull(N0, "example/does-not-exist:1"))
        ok = await eventually(lambda: _result(bus, N0, "nginx:1.21"),
                              lambda r: r is not None and r.done, what="the pull's result")
        assert ok is not None and ok.phase == "succeeded" and ok.image_id
        assert ok.version == 1 and ok.start_time and ok.completion_time
        bad = await eventually(lambda: _result(bus, N0, "example/does-not-exist:1"),
                               lambda r: r is not None and r.done, what="the failed pull's result")
        assert bad is not None and bad.phase == "failed" and bad.reason == "not-found", bad
        assert "does-not-exist" in bad.message
        assert await runtimes[N0].image_status("nginx:1.21") is not None, "the image is on its node"
        assert await runtimes[N1].image_status("nginx:1.21") is None, "work goes to its own node only"
        events = await all_events(bus, bus.subjects.events_of_type("pull"))
        phases = [(e.data.get("image"), e.data.get("phase")) for e in events]
        assert ("nginx:1.21", "succeeded") in phases and ("example/does-not-exist:1", "failed") in phases
        assert all(e.workload == N0 for e in events)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*agents), 10)


async def test_a_restarted_agent_resumes_the_queued_work(bus: Bus, runtimes: dict[str, ImageRuntime]) -> None:
    """Work queued while the node's agent was down is done when it comes back (durable consumer)."""
    await bus.publish_command(_pull(N1, "redis:7"))
    stop = asyncio.Event()
    agent = NodeAgent(bus, N1, runtimes[N1])
    task = asyncio.create_task(run_node_agent(bus, N1, runtimes[N1], stop=stop, agent=agent))
    try:
        r = await eventually(lambda: _result(bus, N1, "redis:7"), lambda r: r is not None and r.done,
                             what="the queued pull")
        assert r is not None and r.phase == "succeeded" and agent.pulls == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_pull_not_started_by_its_deadline_expires_and_a_queued_one_in_time_is_pulled(
        bus: Bus, runtimes: dict[str, ImageRuntime]) -> None:
    """The agent honours `not_after`: work that waited on KB_NODE past it is reported failed (reason
    Expired, a failed attempt of its tag) instead of pulled; work queued while the agent was down but
    still within its deadline is pulled."""
    late = msgspec.structs.replace(_pull(N1, "redis:7"), not_after="2026-01-01T00:00:00Z")
    in_time = msgspec.structs.replace(_pull(N1, "nginx:1.21"),
                                      not_after=format_time(datetime.now(UTC) + timedelta(seconds=300)))
    await bus.publish_command(late)
    await bus.publish_command(in_time)
    stop = asyncio.Event()
    agent = NodeAgent(bus, N1, runtimes[N1])
    task = asyncio.create_task(run_node_agent(bus, N1, runtimes[N1], stop=stop, agent=agent))
    try:
        expired = await eventually(lambda: _result(bus, N1, "redis:7"), lambda r: r is not None and r.done,
                                   what="the expired pull's result")
        assert expired is not None and expired.phase == "failed" and expired.reason == REASON_EXPIRED
        assert "before its deadline 2026-01-01T00:00:00Z" in expired.message and expired.command_id == late.id
        ok = await eventually(lambda: _result(bus, N1, "nginx:1.21"), lambda r: r is not None and r.done,
                              what="the pull in time")
        assert ok is not None and ok.phase == "succeeded"
        assert agent.pulls == 1 and await runtimes[N1].image_status("redis:7") is None
        events = await all_events(bus, bus.subjects.events_of_type("pull"))
        assert ("redis:7", "expired") in [(e.data.get("image"), e.data.get("phase")) for e in events]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
