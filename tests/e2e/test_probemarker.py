"""PodProbeMarker end to end on the sim, every service a process, one prober per node (issue 12).

The seed example: the game servers' `Idle` probe marks idle pods `gameserver-idle: 'true'` with
`controller.kubernetes.io/pod-deletion-cost: '-10'` (busy ones `'false'` and `'10'`), and a CloneSet
scale-in then deletes exactly the idle pods first. Also: a prober killed -9 and restarted resumes
without a marker flapping (and a deleted marker takes exactly its markers along), a pod that moves to
another node is probed there with no stale marker or result left (with one prober per node, and with
the nodes split over two multi-node probers), and an invalid marker is refused or reported.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest

from schemas.constants import ANNOTATION_DELETION_COST, ANNOTATION_PROBE_MARKERS
from schemas.kube import Pod
from schemas.messages import (
    CLONESETS,
    EVENT_DECODER,
    EVENTS,
    NODES,
    PODPROBEMARKERS,
    PODS,
    PROBE_DECODER,
    ProbeResult,
    RolloutEvent,
)
from schemas.subjects import STREAM_EVENTS
from services.errors import KubeError, KubeNotFound
from services.kube import Kube
from services.observe import poll
from services.stack import Stack
from tests.e2e.helpers import NS, cloneset, settled

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]
PROBERS = [{"probers": True}]
IDLE = "gameserver-idle"
CONDITION = "game.kruise.io/idle"


def game(name: str, replicas: int) -> dict[str, Any]:
    body = cloneset(name, replicas=replicas)
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8080}]
    return body


def marker(name: str, app: str, probe: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "PodProbeMarker",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": app}}, "probes": [{
                "name": "Idle", "containerName": "main",
                "probe": probe or {"exec": {"command": ["/home/game/idle.sh"]}, "initialDelaySeconds": 1,
                                   "periodSeconds": 1, "timeoutSeconds": 1, "successThreshold": 1,
                                   "failureThreshold": 1},
                "markerPolicy": [
                    {"state": "Succeeded", "labels": {IDLE: "true"}, "annotations": {ANNOTATION_DELETION_COST: "-10"}},
                    {"state": "Failed", "labels": {IDLE: "false"}, "annotations": {ANNOTATION_DELETION_COST: "10"}},
                ],
                "podConditionType": CONDITION}]}}


async def set_exec(stack: Stack, pod: str, outcome: dict[str, Any]) -> None:
    """What exec in the pod's containers answers (the sim's runtime API)."""
    async with aiohttp.ClientSession() as s, \
            s.post(f"{stack.sim_url}/sim/pods/{NS}/{pod}/exec-outcomes", json={"*": outcome}) as resp:
        assert resp.status == 200, await resp.text()


async def set_http(stack: Stack, pod: str, outcome: dict[str, Any]) -> None:
    """What the pod's containers answer to HTTP (the sim's pod network)."""
    async with aiohttp.ClientSession() as s, \
            s.post(f"{stack.sim_url}/sim/pods/{NS}/{pod}/http", json=outcome) as resp:
        assert resp.status == 200, await resp.text()


async def pods_of(kube: Kube, app: str) -> list[Pod]:
    items, _ = await kube.list(PODS, NS, label_selector=f"app={app}")
    pods = [msgspec.json.decode(i, type=Pod) for i in items]
    return sorted((p for p in pods if not p.metadata.deletion_timestamp), key=lambda p: p.metadata.name)


def marked(pods: list[Pod], idle: set[str]) -> bool:
    """Every pod shows its result: label, deletion cost and condition."""
    for p in pods:
        want = "true" if p.metadata.name in idle else "false"
        cond = p.status.condition(CONDITION)
        if p.metadata.labels.get(IDLE) != want or cond is None \
                or cond.status != ("True" if want == "true" else "False") \
                or p.metadata.annotations.get(ANNOTATION_DELETION_COST) != ("-10" if want == "true" else "10"):
            return False
    return True


@pytest.mark.parametrize("stack", PROBERS, indirect=True)
async def test_seed_idle_game_servers_are_marked_and_deleted_first_on_scale_in(stack: Stack, kube: Kube) -> None:
    await kube.create(CLONESETS, NS, game("game", 4))
    await settled(kube, "game", 4)
    pods = await pods_of(kube, "game")
    idle = {pods[0].metadata.name, pods[2].metadata.name}
    for p in pods:
        name = p.metadata.name
        await set_exec(stack, name, {"exitCode": 0, "stdout": "idle"} if name in idle
                       else {"exitCode": 1, "stderr": "3 players online"})
    await kube.create(PODPROBEMARKERS, NS, marker("game-idle", "game"))
    marked_pods = await poll(lambda: pods_of(kube, "game"), lambda ps: len(ps) == 4 and marked(ps, idle),
                             timeout=60, what="every game server marked idle or busy")
    busy = next(p for p in marked_pods if p.metadata.name not in idle)
    assert busy.status.condition(CONDITION).message == "3 players online"  # type: ignore[union-attr]
    ppm = msgspec.json.decode(await kube.get(PODPROBEMARKERS, NS, "game-idle"))
    assert ppm["status"]["matchedPods"] == 4
    assert "kruise.io/node-pod-probe-cleanup" in ppm["metadata"]["finalizers"]

    async def pod_event_reasons() -> set[tuple[str, str]]:
        items, _ = await kube.list(EVENTS, NS)
        events = [msgspec.json.decode(i) for i in items]
        return {(e["involvedObject"]["name"], e["reason"]) for e in events if e["involvedObject"]["kind"] == "Pod"}

    # each marker's Event is written after its pod's status patch
    await poll(pod_event_reasons, lambda reasons: {(n, "KruiseProbeSucceeded") for n in idle} <= reasons,
               timeout=30, what="a KruiseProbeSucceeded Event for each idle pod")

    await kube.patch(CLONESETS, NS, "game", {"spec": {"replicas": 2}}, "merge")
    left = await poll(lambda: pods_of(kube, "game"), lambda ps: len(ps) == 2, timeout=60,
                      what="the scale-in to 2 pods")
    assert {p.metadata.name for p in left} == {p.metadata.name for p in pods} - idle, \
        "scale-in must delete exactly the idle pods (deletion cost -10) first"


@pytest.mark.parametrize("stack", PROBERS, indirect=True)
async def test_prober_killed_and_restarted_resumes_without_flapping(stack: Stack, kube: Kube) -> None:
    await kube.create(CLONESETS, NS, game("flap", 2))
    await settled(kube, "flap", 2)
    await kube.create(PODPROBEMARKERS, NS, marker("flap-idle", "flap"))
    pods = await poll(lambda: pods_of(kube, "flap"), lambda ps: marked(ps, {p.metadata.name for p in ps}),
                      timeout=60, what="both pods marked idle")
    versions = {p.metadata.name: p.metadata.resource_version for p in pods}
    node = pods[0].spec.node_name
    await stack.kill(stack.prober_of(node))
    await stack.start_service(stack.prober_of(node))
    seen: list[str] = []

    async def labels() -> list[Pod]:
        ps = await pods_of(kube, "flap")
        seen.extend(p.metadata.labels.get(IDLE, "") for p in ps)
        return ps

    # the restarted prober runs the probe several times (period 1 s) while we watch the pods
    prober_log = stack.log_path(stack.prober_of(node))
    await poll(labels, lambda _: "resumed" in prober_log.read_text(errors="replace"), timeout=30,
               what="the restarted prober to resume")
    for _ in range(3):
        await poll(labels, lambda ps: True, timeout=5, what="pods")
    await poll(labels, lambda ps: marked(ps, {p.metadata.name for p in ps}), timeout=10, what="still marked")
    assert set(seen) == {"true"}, f"a marker flapped while the prober restarted: {sorted(set(seen))}"
    now = {p.metadata.name: p.metadata.resource_version for p in await pods_of(kube, "flap")}
    assert now == versions, "a restarted prober must not cause pod writes while results are unchanged"

    # deleting the marker removes its markers and condition, then its finalizer lets it go
    await kube.delete(PODPROBEMARKERS, NS, "flap-idle")
    cleaned = await poll(lambda: pods_of(kube, "flap"), lambda ps: all(
        IDLE not in p.metadata.labels and p.status.condition(CONDITION) is None
        and ANNOTATION_DELETION_COST not in p.metadata.annotations
        and ANNOTATION_PROBE_MARKERS not in p.metadata.annotations for p in ps), timeout=30,
        what="the deleted marker's markers gone")
    assert len(cleaned) == 2

    async def gone() -> bool:
        try:
            await kube.get(PODPROBEMARKERS, NS, "flap-idle")
        except KubeNotFound:
            return True
        return False

    await poll(gone, bool, timeout=30, what="the marker gone once its finalizer is removed")


async def probe_results(stack: Stack) -> list[ProbeResult]:
    bus = await stack.connect(name="test-results")
    try:
        return list((await bus.last_per_subject(bus.subjects.probe_all(), PROBE_DECODER)).values())
    finally:
        await bus.close()


@pytest.mark.parametrize("stack", [*PROBERS, {"probers": True, "prober_processes": 2}], indirect=True,
                         ids=["prober-per-node", "two-multi-node-probers"])
async def test_http_probe_of_a_pod_that_moves_node_leaves_no_stale_marker(stack: Stack, kube: Kube) -> None:
    await kube.create(CLONESETS, NS, game("mover", 1))
    await settled(kube, "mover", 1)
    http = {"httpGet": {"path": "/idle", "port": "http", "scheme": "HTTP"}, "initialDelaySeconds": 1,
            "periodSeconds": 1, "timeoutSeconds": 1}
    await kube.create(PODPROBEMARKERS, NS, marker("mover-idle", "mover", http))
    [first] = await poll(lambda: pods_of(kube, "mover"), lambda ps: len(ps) == 1 and marked(ps, {ps[0].metadata.name}),
                         timeout=60, what="the pod marked idle through its HTTP answer (200)")
    await set_http(stack, first.metadata.name, {"status": 503, "body": "busy"})
    await poll(lambda: pods_of(kube, "mover"), lambda ps: marked(ps, set()), timeout=30,
               what="the pod marked busy (503)")
    old_node = first.spec.node_name
    # cordon the pod's node and delete the pod: the CloneSet's replacement lands on another node
    nodes = [n for n in stack.node_names if n != old_node]
    await kube.patch(NODES, None, old_node,
                     {"spec": {"unschedulable": True}}, "merge")
    await kube.delete(PODS, NS, first.metadata.name, uid=first.metadata.uid)
    [moved] = await poll(lambda: pods_of(kube, "mover"),
                         lambda ps: len(ps) == 1 and ps[0].metadata.uid != first.metadata.uid
                         and ps[0].spec.node_name in nodes and ps[0].status.pod_ip != "",
                         timeout=60, what="the replacement pod on another node")
    assert moved.metadata.labels.get(IDLE) != "false", "the old pod's busy marker must not reach the new pod"
    [moved] = await poll(lambda: pods_of(kube, "mover"), lambda ps: len(ps) == 1 and marked(ps, {ps[0].metadata.name}),
                         timeout=60, what="the moved pod probed by its new node's prober (200: idle)")
    log = stack.log_path(stack.prober_of(moved.spec.node_name)).read_text(errors="replace")
    assert f"{moved.metadata.name} mover-idle#Idle: Succeeded" in log
    # KB_PROBE: the old pod's result retired, the moved pod's published under its new node
    results = await poll(lambda: probe_results(stack), lambda rs: all(r.pod_uid != first.metadata.uid for r in rs),
                         timeout=30, what="the old pod's result retired from KB_PROBE")
    assert [(r.pod_uid, r.node, r.state) for r in results if r.probe == "mover-idle#Idle"] == \
        [(moved.metadata.uid, moved.spec.node_name, "Succeeded")]


async def rollout_events(stack: Stack) -> list[RolloutEvent]:
    bus = await stack.connect(name="test-events")
    try:
        return [EVENT_DECODER.decode(m.data or b"") for m in await bus.stream_messages(STREAM_EVENTS)]
    finally:
        await bus.close()


@pytest.mark.parametrize("stack", [{"probers": True, "webhook": False}], indirect=True)
async def test_an_invalid_marker_admitted_without_the_webhook_is_reported_and_never_run(stack: Stack,
                                                                                        kube: Kube) -> None:
    await kube.create(CLONESETS, NS, game("bad", 1))
    await settled(kube, "bad", 1)
    body = marker("bad-idle", "bad")
    body["spec"]["probes"][0]["name"] = "Ready"
    await kube.create(PODPROBEMARKERS, NS, body)

    async def condition() -> dict[str, Any]:
        ppm = msgspec.json.decode(await kube.get(PODPROBEMARKERS, NS, "bad-idle"))
        return next((c for c in ppm.get("status", {}).get("conditions", []) if c["type"] == "InvalidSpec"), {})

    cond = await poll(condition, lambda c: c.get("status") == "True", timeout=30, what="the InvalidSpec condition")
    assert cond["message"] == 'spec.probes[0].name: Invalid value: "Ready": probe name can\'t be Ready'
    events = await poll(lambda: rollout_events(stack), lambda evs: any(e.type == "rejected" and e.workload == "bad-idle"
                                                                       for e in evs), timeout=10, what="rejected")
    assert [e.field for e in events if e.type == "rejected" and e.workload == "bad-idle"] == ["spec.probes[0].name"]
    [p] = await pods_of(kube, "bad")
    assert IDLE not in p.metadata.labels and p.status.condition(CONDITION) is None, "an invalid marker never runs"
    assert "bad-idle#" not in stack.log_path(stack.prober_of(p.spec.node_name)).read_text(errors="replace")


@pytest.mark.parametrize("stack", PROBERS, indirect=True)
async def test_the_webhook_refuses_an_invalid_marker_naming_the_field(stack: Stack, kube: Kube) -> None:
    body = marker("refused", "x")
    body["spec"]["probes"][0]["probe"] = {"httpGet": {"path": "/idle", "port": 8080, "scheme": "FTP"}}
    with pytest.raises(KubeError) as err:
        await kube.create(PODPROBEMARKERS, NS, body)
    assert "spec.probes[0].probe.httpGet.scheme" in str(err.value) and "FTP" in str(err.value)
