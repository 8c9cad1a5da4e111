"""Metrics and health: what Prometheus and the kubelet see from a service's HTTP listener."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.cloneset import CloneSet
from schemas.kinds import CLONESET
from schemas.messages import CLONESETS, PODS, Command, CreateOp
from services import metrics
from services.bus import Bus
from services.demo import load_sample
from services.executor.service import run_executor
from services.health import HealthServer
from services.kube import Kube
from services.natsd import NatsServer
from services.observe import poll
from sim.cluster import SimCluster

FAST = {"pull_delay": 0.05, "start_delay": 0.05, "bookmark_interval": 0.2}


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    want = tuple(sorted(labels.items()))
    return samples(text).get((name, want), 0.0)


@pytest.fixture
async def health() -> AsyncIterator[HealthServer]:
    server = HealthServer("127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_metrics_endpoint_lists_every_kruisebus_metric(health: HealthServer) -> None:
    status, text = await get(f"http://127.0.0.1:{health.port}/metrics")
    assert status == 200
    families = {f.name for f in text_string_to_metric_families(text)}
    for metric in metrics.ALL:
        (family,) = metric.describe()
        assert family.name in families, f"{family.name} missing from /metrics"
        assert family.name.startswith("kruisebus_")


async def test_readyz_and_healthz_follow_the_services_checks(health: HealthServer) -> None:
    base = f"http://127.0.0.1:{health.port}"
    assert await get(base + "/readyz") == (200, "ok\n")
    state = {"ready": False}
    health.ready = lambda: state["ready"]
    assert (await get(base + "/readyz"))[0] == 503
    state["ready"] = True
    assert (await get(base + "/readyz"))[0] == 200

    def broken() -> bool:
        raise RuntimeError("lease bucket unreachable")

    health.live = broken
    status, text = await get(base + "/healthz")
    assert status == 503 and "lease bucket unreachable" in text


async def test_executor_counts_commands_and_api_calls(tmp_path: Path, nats_server: NatsServer, uid: str,
                                                       health: HealthServer) -> None:
    url = f"http://127.0.0.1:{health.port}/metrics"
    async with SimCluster(nodes=1, tmpdir=tmp_path, **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-metrics", prefix=f"m{uid}")
        await bus.ensure_streams()
        stop = asyncio.Event()
        task = asyncio.create_task(run_executor(kube, bus, stop=stop))
        try:
            cs = msgspec.json.decode(await kube.create(CLONESETS, "default", load_sample()), type=CloneSet)
            before = (await get(url))[1]
            body = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"m-{uid}", "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "image": "nginx:1.20"}]}}
            await bus.publish_command(Command(id=f"m-{uid}", verb="create", workload=CLONESET.ref(cs.metadata),
                                              ops=[CreateOp(resource=PODS, namespace="default", body=body)]))

            async def scrape() -> str:
                return (await get(url))[1]

            after = await poll(scrape, lambda t: value(t, "kruisebus_executor_commands_total", verb="create",
                                                        outcome="done")
                               > value(before, "kruisebus_executor_commands_total", verb="create",
                                       outcome="done"), timeout=10, what="the command to be counted")
            assert value(after, "kruisebus_kube_requests_total", verb="create", resource="pods", code="201") \
                > value(before, "kruisebus_kube_requests_total", verb="create", resource="pods", code="201")
            assert value(after, "kruisebus_consumer_messages_total", consumer="executor", settle="ack") \
                > value(before, "kruisebus_consumer_messages_total", consumer="executor", settle="ack")
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await bus.close()
            await kube.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_planner_process_serves_metrics_and_readiness(nats_server: NatsServer, uid: str) -> None:
    port = _free_port()
    env = {**os.environ, "KRUISEBUS_METRICS_PORT": str(port), "KRUISEBUS_METRICS_HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "planner", "--nats", nats_server.url,
                             "--prefix", f"p{uid}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        async def readyz() -> int:
            try:
                return (await get(f"http://127.0.0.1:{port}/readyz"))[0]
            except aiohttp.ClientError:
                return 0

        assert await poll(readyz, lambda s: s == 200, timeout=20, what="the planner's /readyz") == 200
        status, text = await get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "kruisebus_planner_passes_total" in text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
