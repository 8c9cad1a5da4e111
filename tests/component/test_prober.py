"""The prober against real sockets and a real NATS: the embedded cluster with its pod network, the
watcher and one prober in-process (issue 12).

Exec outcomes come from the sim's control API: a probe that hangs past its timeout fails with
"timed out", a probe printing 1 MB succeeds with a message cut to 1024 bytes, and neither stops the
prober from probing the other pods (a third pod's outcome flips and is reported). tcpSocket really
connects to the pod's loopback address and fails once the container is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from schemas.messages import PODPROBEMARKERS, PODS, PROBE_DECODER, ProbeResult
from services.bus import Bus
from services.kube import Kube
from services.natsd import NatsServer
from services.observe import poll
from services.prober.service import Prober
from services.runtime import open_runtime
from services.watcher.service import run_watcher
from sim.cluster import SimCluster
from sim.nodes import NodeConfig

pytestmark = pytest.mark.timeout(90)
NS = "default"
Env = tuple[SimCluster, Kube, Bus]


@pytest.fixture
async def env(tmp_path: Path, nats_server: NatsServer, uid: str) -> AsyncIterator[Env]:
    cfg = NodeConfig(start_delay=0.05, stop_delay=0.05, pull_delay=0.0, pod_network=True)
    async with SimCluster(nodes=1, tmpdir=tmp_path, node_config=cfg) as cluster:
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-prober", prefix=f"p{uid}")
        await bus.ensure_streams()
        ready = asyncio.Event()
        stop = asyncio.Event()
        prober = Prober(bus, "sim-node-0", await open_runtime("sim", node="sim-node-0", sim_url=cluster.url))
        tasks = [asyncio.create_task(run_watcher(kube, bus, ready=ready)), asyncio.create_task(prober.run(stop))]
        try:
            await asyncio.wait_for(ready.wait(), 10)
            yield cluster, kube, bus
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.close(drain=False)
            await kube.close()


def bare_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": "p"}},
            "spec": {"containers": [{"name": "main", "image": "nginx", "ports": [{"containerPort": 9000}]}]}}


def probe_marker(name: str, probe: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "PodProbeMarker",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "p"}}, "probes": [{
                "name": "check", "containerName": "main", "podConditionType": "kruisebus.io/check",
                "probe": {**probe, "initialDelaySeconds": 1, "periodSeconds": 1, "timeoutSeconds": 1}}]}}


async def results(bus: Bus) -> dict[tuple[str, str], ProbeResult]:
    out = await bus.last_per_subject(bus.subjects.probe_all(), PROBE_DECODER)
    return {(r.pod, r.probe): r for r in out.values()}


async def running(cluster: SimCluster, names: list[str]) -> None:
    def ok() -> bool:
        k = cluster.kubelets["sim-node-0"]
        return all(any(p.name == n and all(c.started for c in p.containers.values()) and p.containers
                       for p in k.pods.values()) for n in names)
    await cluster.wait_for(ok, timeout=20, message="pods running")


async def test_a_hang_and_1mb_of_output_neither_crash_nor_stall_the_other_pods(env: Env) -> None:
    cluster, kube, bus = env
    names = ["hang", "big", "other"]
    for n in names:
        await kube.create(PODS, NS, bare_pod(n))
    await running(cluster, names)
    kubelet = cluster.kubelets["sim-node-0"]
    kubelet.set_exec_outcomes(NS, "hang", {"*": {"hang": True}})
    kubelet.set_exec_outcomes(NS, "big", {"*": {"stdout": "x" * (1 << 20)}})
    kubelet.set_exec_outcomes(NS, "other", {"*": {"exitCode": 1, "stderr": "not yet"}})
    await kube.create(PODPROBEMARKERS, NS, probe_marker("m", {"exec": {"command": ["/check.sh"]}}))

    def settled(rs: dict[tuple[str, str], ProbeResult]) -> bool:
        return all(rs.get((n, "m#check")) is not None and rs[(n, "m#check")].state != "Unknown" for n in names)

    rs = await poll(lambda: results(bus), settled, timeout=30, what="a result for every pod")
    assert rs[("hang", "m#check")].state == "Failed"
    assert rs[("hang", "m#check")].message == 'command "/check.sh" timed out'
    assert rs[("big", "m#check")].state == "Succeeded" and rs[("big", "m#check")].message == "x" * 1024
    assert rs[("other", "m#check")].state == "Failed" and rs[("other", "m#check")].message == "not yet"
    kubelet.set_exec_outcomes(NS, "other", {"*": {"exitCode": 0, "stdout": "ready"}})
    rs = await poll(lambda: results(bus), lambda r: r[("other", "m#check")].state == "Succeeded", timeout=10,
                    what="the other pod still probed while one hangs and one prints 1 MB")
    assert rs[("other", "m#check")].message == "ready"


async def test_tcp_probe_connects_to_the_pod_address_and_fails_once_the_container_is_gone(env: Env) -> None:
    cluster, kube, bus = env
    await kube.create(PODS, NS, bare_pod("tcp"))
    await running(cluster, ["tcp"])
    [ps] = [p for p in cluster.kubelets["sim-node-0"].pods.values() if p.name == "tcp"]
    assert ps.ip.startswith("127.") and ps.ip != "127.0.0.1"
    await kube.create(PODPROBEMARKERS, NS, probe_marker("t", {"tcpSocket": {"port": 9000}}))
    rs = await poll(lambda: results(bus), lambda r: r.get(("tcp", "t#check")) is not None
                    and r[("tcp", "t#check")].state == "Succeeded", timeout=20, what="the tcp probe to succeed")
    assert rs[("tcp", "t#check")].node == "sim-node-0"
    cluster.kubelets["sim-node-0"].net.container_stopped(ps.uid, "main")  # type: ignore[union-attr]
    rs = await poll(lambda: results(bus), lambda r: r[("tcp", "t#check")].state == "Failed", timeout=20,
                    what="the tcp probe to fail once nothing listens")
    assert "connect" in rs[("tcp", "t#check")].message


async def test_a_deleted_pod_s_results_leave_kb_probe(env: Env) -> None:
    cluster, kube, bus = env
    await kube.create(PODS, NS, bare_pod("gone"))
    await running(cluster, ["gone"])
    await kube.create(PODPROBEMARKERS, NS, probe_marker("g", {"exec": {"command": ["/ok.sh"]}}))
    await poll(lambda: results(bus), lambda r: r.get(("gone", "g#check")) is not None
               and r[("gone", "g#check")].state == "Succeeded", timeout=20, what="the pod's result")
    await kube.delete(PODS, NS, "gone")
    await poll(lambda: results(bus), lambda r: ("gone", "g#check") not in r, timeout=20,
               what="the deleted pod's results purged")


async def test_a_restarted_container_is_unknown_until_probed_again(env: Env) -> None:
    """A new container id resets the probe to Unknown, which is reported (the pod loses its markers while
    its container restarts), then the next probes bring the state back."""
    cluster, kube, bus = env
    states: list[str] = []

    async def on_result(msg: Any) -> None:
        r = PROBE_DECODER.decode(msg.data)
        if r.pod == "restart":
            states.append(r.state)

    sub = await bus.nc.subscribe(bus.subjects.probe_all(), cb=on_result)
    try:
        await kube.create(PODS, NS, bare_pod("restart"))
        await running(cluster, ["restart"])
        await kube.create(PODPROBEMARKERS, NS, probe_marker("r", {"exec": {"command": ["/ok.sh"]}}))
        await poll(lambda: asyncio.sleep(0, states), lambda s: s[-1:] == ["Succeeded"], timeout=20,
                   what="the first result")
        before = len(states)
        await cluster.kubelets["sim-node-0"].set_probes(NS, "restart", {"liveness": False})  # the kubelet restarts it
        await poll(lambda: asyncio.sleep(0, states), lambda s: s[before:before + 1] == ["Unknown"]
                   and s[-1:] == ["Succeeded"], timeout=20, what="Unknown on the new container, then Succeeded")
    finally:
        await sub.unsubscribe()
