"""The prober against real sockets and a real NATS: the embedded cluster with its pod network, the
watcher and one prober in-process (issue 12).

One prober serving two nodes publishes each pod's results under its own node, as two probers would,
and follows a pod that moves between them; a prober restarted after pods were deleted or moved and a
probe was removed retires exactly those results and resumes the others without republishing them.

Exec outcomes come from the sim's control API: a probe that hangs past its timeout fails with
"timed out", a probe printing 1 MB succeeds with a message cut to 1024 bytes, and neither stops the
prober from probing the other pods (a third pod's outcome flips and is reported). tcpSocket really
connects to the pod's loopback address and fails once the container is gone; each attempt is counted
in `kruisebus_probes_total`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import pytest
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY

from schemas.messages import PODPROBEMARKERS, PODS, PROBE_DECODER, ProbeResult
from schemas.subjects import STREAM_PROBE
from services.bus import Bus
from services.kube import Kube
from services.natsd import NatsServer
from services.observe import poll
from services.prober.service import Prober
from services.runtime import open_runtime
from services.runtime.base import ImageRuntime
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
        prober = Prober(bus, {"sim-node-0": await open_runtime("sim", node="sim-node-0", sim_url=cluster.url)})
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


def probes_counted(result: str) -> float:
    return REGISTRY.get_sample_value("kruisebus_probes_total", {"node": "sim-node-0", "result": result}) or 0.0


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
    before = {r: probes_counted(r) for r in ("succeeded", "failed")}
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
    # each attempt is counted on /metrics by its node and result
    assert probes_counted("succeeded") > before["succeeded"] and probes_counted("failed") > before["failed"]


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


async def test_a_lost_kb_probe_is_recreated_and_the_current_results_published_again(env: Env) -> None:
    """The probers own KB_PROBE: deleted under a running prober, it comes back with its config and holds
    the results last reported (same state, same times), although no probe outcome changed."""
    cluster, kube, bus = env
    await kube.create(PODS, NS, bare_pod("kept"))
    await running(cluster, ["kept"])
    await kube.create(PODPROBEMARKERS, NS, probe_marker("k", {"exec": {"command": ["/ok.sh"]}}))
    rs = await poll(lambda: results(bus), lambda r: r.get(("kept", "k#check")) is not None
                    and r[("kept", "k#check")].state == "Succeeded", timeout=20, what="the pod's result")
    before = rs[("kept", "k#check")]
    stream = bus.subjects.stream(STREAM_PROBE)
    old = await bus.js.stream_info(stream)
    await bus.js.delete_stream(stream)

    async def current() -> dict[tuple[str, str], ProbeResult]:
        try:
            return await results(bus)
        except NotFoundError:
            return {}

    rs = await poll(current, lambda r: ("kept", "k#check") in r, timeout=15,
                    what="KB_PROBE recreated, holding the pod's result again")
    assert rs[("kept", "k#check")] == before
    new = await bus.js.stream_info(stream)
    assert new.created != old.created
    assert (new.config.subjects, new.config.max_msgs_per_subject, new.config.description) == \
        (old.config.subjects, old.config.max_msgs_per_subject, old.config.description)
    # and a change after the loss is reported on the new stream
    cluster.kubelets["sim-node-0"].set_exec_outcomes(NS, "kept", {"*": {"exitCode": 1, "stderr": "down"}})
    await poll(current, lambda r: r[("kept", "k#check")].state == "Failed", timeout=15,
               what="a later result on the recreated stream")


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


# --- several nodes ---------------------------------------------------------------------------------
StartProber = Callable[[list[str]], Awaitable[Callable[[], Awaitable[None]]]]
Env2 = tuple[SimCluster, Kube, Bus, StartProber]
NODES = ["sim-node-0", "sim-node-1"]


@pytest.fixture
async def env2(tmp_path: Path, nats_server: NatsServer, uid: str) -> AsyncIterator[Env2]:
    """Two sim nodes and the watcher; probers (each serving the nodes it is given) started by the test,
    each returning how to stop it (as a process ending: its tasks cancelled, nothing purged)."""
    cfg = NodeConfig(start_delay=0.05, stop_delay=0.05, pull_delay=0.0, pod_network=True)
    async with SimCluster(nodes=2, tmpdir=tmp_path, node_config=cfg) as cluster:
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-prober", prefix=f"p{uid}")
        await bus.ensure_streams()
        ready = asyncio.Event()
        tasks = [asyncio.create_task(run_watcher(kube, bus, ready=ready))]

        async def start(nodes: list[str]) -> Callable[[], Awaitable[None]]:
            runtimes: dict[str, ImageRuntime] = {
                n: await open_runtime("sim", node=n, sim_url=cluster.url) for n in nodes}
            prober = Prober(bus, runtimes)
            stop = asyncio.Event()
            task = asyncio.create_task(prober.run(stop))
            tasks.append(task)
            await poll(lambda: asyncio.sleep(0, prober.replayed.is_set()), bool, timeout=20,
                       what=f"the prober of {nodes} replayed")

            async def halt() -> None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

            return halt

        try:
            await asyncio.wait_for(ready.wait(), 10)
            yield cluster, kube, bus, start
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.close(drain=False)
            await kube.close()


def pinned_pod(name: str, node: str) -> dict[str, Any]:
    body = bare_pod(name)
    body["spec"]["nodeName"] = node
    return body


async def by_uid(bus: Bus) -> dict[tuple[str, str], ProbeResult]:
    """The results KB_PROBE holds now. A read that overlaps a purge of the stream (a prober retiring
    results) can time out on a loaded machine; it is read again, as the caller polls anyway."""
    for attempt in range(3):
        try:
            out = await bus.last_per_subject(bus.subjects.probe_all(), PROBE_DECODER)
            break
        except nats.errors.TimeoutError:
            if attempt == 2:
                raise
    return {(r.pod_uid, r.probe): r for r in out.values()}


async def create_running(cluster: SimCluster, kube: Kube, name: str, node: str) -> str:
    created = msgspec.json.decode(await kube.create(PODS, NS, pinned_pod(name, node)))
    uid = created["metadata"]["uid"]

    def ok() -> bool:
        ps = cluster.kubelets[node].pods.get(uid)
        return ps is not None and bool(ps.containers) and all(c.started for c in ps.containers.values())

    await cluster.wait_for(ok, timeout=20, message=f"{name} running on {node}")
    return str(uid)


def two_probes(name: str) -> dict[str, Any]:
    body = probe_marker(name, {"exec": {"command": ["/check.sh"]}})
    extra = {**body["spec"]["probes"][0], "name": "extra", "podConditionType": "kruisebus.io/extra"}
    body["spec"]["probes"].append(extra)
    return body


async def test_one_prober_serves_two_nodes_and_follows_a_pod_that_moves_between_them(env2: Env2) -> None:
    cluster, kube, bus, start = env2
    await start(NODES)
    a = await create_running(cluster, kube, "a", "sim-node-0")
    b = await create_running(cluster, kube, "b", "sim-node-1")
    cluster.kubelets["sim-node-1"].set_exec_outcomes(NS, "b", {"*": {"exitCode": 1, "stderr": "busy"}})
    await kube.create(PODPROBEMARKERS, NS, two_probes("m"))
    want = {(a, "m#check"), (a, "m#extra"), (b, "m#check"), (b, "m#extra")}
    rs = await poll(lambda: by_uid(bus), lambda r: set(r) == want and all(x.state != "Unknown" for x in r.values()),
                    timeout=30, what="both probes of both nodes' pods reported by the one prober")
    assert {k: (r.node, r.state) for k, r in rs.items()} == {
        (a, "m#check"): ("sim-node-0", "Succeeded"), (a, "m#extra"): ("sim-node-0", "Succeeded"),
        (b, "m#check"): ("sim-node-1", "Failed"), (b, "m#extra"): ("sim-node-1", "Failed")}
    assert rs[(b, "m#check")].message == "busy"

    # a probe removed from the marker: its results leave KB_PROBE, the other probe keeps running
    await kube.patch(PODPROBEMARKERS, NS, "m", [{"op": "remove", "path": "/spec/probes/1"}], "json")
    await poll(lambda: by_uid(bus), lambda r: set(r) == {(a, "m#check"), (b, "m#check")}, timeout=20,
               what="the removed probe's results retired")

    # pod `a` moves: deleted on sim-node-0, recreated on sim-node-1 (a new uid, as a controller would)
    await kube.delete(PODS, NS, "a")
    await cluster.wait_for(lambda: a not in cluster.kubelets["sim-node-0"].pods, timeout=20, message="a gone")
    moved = await create_running(cluster, kube, "a", "sim-node-1")
    rs = await poll(lambda: by_uid(bus), lambda r: set(r) == {(moved, "m#check"), (b, "m#check")}
                    and r[(moved, "m#check")].state == "Succeeded", timeout=30,
                    what="the old pod's result gone, the moved pod probed on its new node")
    assert rs[(moved, "m#check")].node == "sim-node-1"


async def test_a_restarted_prober_retires_what_went_away_while_it_was_down(env2: Env2) -> None:
    """While the node's prober is down: one pod is deleted, one moves to the other node, a probe leaves
    the marker. Restarted, it retires exactly those results (the moved pod is the other node's
    prober's now) and resumes the rest without republishing them."""
    cluster, kube, bus, start = env2
    halt0 = await start(["sim-node-0"])
    await start(["sim-node-1"])
    keep = await create_running(cluster, kube, "keep", "sim-node-0")
    gone = await create_running(cluster, kube, "gone", "sim-node-0")
    mover = await create_running(cluster, kube, "mover", "sim-node-0")
    await kube.create(PODPROBEMARKERS, NS, two_probes("r"))
    before = await poll(lambda: by_uid(bus), lambda r: len(r) == 6 and all(x.state == "Succeeded" for x in r.values()),
                        timeout=30, what="two results for each of the three pods")

    await halt0()  # killed: nothing purged on the way out
    await kube.patch(PODPROBEMARKERS, NS, "r", [{"op": "remove", "path": "/spec/probes/1"}], "json")
    for name in ("gone", "mover"):
        await kube.delete(PODS, NS, name)
    await cluster.wait_for(lambda: not {gone, mover} & set(cluster.kubelets["sim-node-0"].pods), timeout=20,
                           message="the pods gone from sim-node-0")
    moved = await create_running(cluster, kube, "mover", "sim-node-1")
    stale = await by_uid(bus)
    assert (gone, "r#check") in stale and (keep, "r#extra") in stale, "the down prober purged nothing"

    await start(["sim-node-0"])
    rs = await poll(lambda: by_uid(bus), lambda r: set(r) == {(keep, "r#check"), (moved, "r#check")}
                    and r[(moved, "r#check")].state == "Succeeded", timeout=30,
                    what="only the live pods' live probe left on KB_PROBE")
    assert rs[(moved, "r#check")].node == "sim-node-1"
    assert rs[(keep, "r#check")].time == before[(keep, "r#check")].time, \
        "an unchanged result must not be republished by the restarted prober"


async def test_a_prober_stopped_while_it_starts_ends_at_once(tmp_path: Path, nats_server: NatsServer,
                                                            uid: str) -> None:
    """Started before the install's streams exist (before `kruisebus nats-init`), a prober waits for
    them; stopped (SIGTERM) before its view is replayed, it ends instead of waiting for a replay that
    never comes."""
    async with SimCluster(nodes=1, tmpdir=tmp_path) as cluster:
        bus = await Bus.connect(nats_server.url, name="test-prober-stop", prefix=f"z{uid}")
        stop = asyncio.Event()
        prober = Prober(bus, {"sim-node-0": await open_runtime("sim", node="sim-node-0", sim_url=cluster.url)})
        task = asyncio.create_task(prober.run(stop))
        try:
            await asyncio.wait({task}, timeout=1)
            assert not task.done(), task  # waiting for the streams
            stop.set()
            await asyncio.wait_for(task, 10)
            assert not prober.replayed.is_set()
        finally:
            task.cancel()
            await bus.close(drain=False)
