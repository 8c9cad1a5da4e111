"""The sim's kubelets on a real kube-apiserver (1.20): what the embedded cluster alone cannot show.

A real API server answers a status write with whatever the pod is by then (spec changes that landed
just before included), drops status fields it does not know (`hostIPs`) and fills in ones the kubelet
left out (`lastState: {}`). The kubelets here run in-process against the session's control plane
through an `HttpBackend` that counts their pod status writes, so each test sees exactly the API calls
its own kubelet made.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sim.backend import HttpBackend
from sim.cluster import wait_until
from sim.kubeconfig import backend_from_kubeconfig
from sim.nodes import ANNOTATION_READY, NodeConfig, NodeFleet
from tests.conftest import RealCluster

pytestmark = [pytest.mark.real, pytest.mark.timeout(180)]

MERGE = "application/merge-patch+json"
OLD, NEW = "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.10"


class CountingBackend:
    """The kubelets' HttpBackend, counting pod status writes; `before_status_write` (one-shot) runs
    just before the next one is sent, to land another writer's change first."""

    def __init__(self, inner: HttpBackend) -> None:
        self.inner = inner
        self.status_writes = 0
        self.before_status_write: Callable[[], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def patch_pod_status(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        hook, self.before_status_write = self.before_status_write, None
        if hook is not None:
            await hook()
        self.status_writes += 1
        return await self.inner.patch_pod_status(ns, name, patch)


class Env:
    def __init__(self, real: RealCluster, backend: CountingBackend, fleet: NodeFleet, ns: str) -> None:
        self.real = real
        self.backend = backend
        self.fleet = fleet
        self.ns = ns
        self.node = next(iter(fleet.kubelets))

    async def api(self, method: str, path: str, body: Any = None, ctype: str = "application/json") -> Any:
        return await self.backend.inner._req(method, path, body, ctype)

    def pod_path(self, name: str = "") -> str:
        return f"/api/v1/namespaces/{self.ns}/pods" + (f"/{name}" if name else "")

    async def pod(self, name: str) -> dict[str, Any]:
        return dict(await self.api("GET", self.pod_path(name)))

    async def create_running_pod(self, name: str) -> dict[str, Any]:
        await self.api("POST", self.pod_path(), {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": self.node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": OLD}]}})

        async def ready() -> dict[str, Any] | None:
            p = await self.pod(name)
            conds = (p.get("status") or {}).get("conditions") or []
            return p if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) else None

        return dict(await wait_until(ready, timeout=30, interval=0.2, message=f"pod {name} Ready"))

    def known(self, uid: str) -> Any:
        """The kubelet's state for a pod (None until it has seen it)."""
        return self.fleet.kubelets[self.node].pods.get(uid)


@pytest.fixture
async def env(real_cluster: RealCluster) -> AsyncIterator[Env]:
    backend = CountingBackend(backend_from_kubeconfig(real_cluster.kubeconfig))
    ns = f"kb-kl-{uuid.uuid4().hex[:8]}"
    fleet = NodeFleet(backend, 1, NodeConfig(pull_delay=0.05, start_delay=0.05, events=False),  # type: ignore[arg-type]
                      scheduler=False, name_prefix=f"kl-{ns[6:]}-", heartbeat=10.0)
    await backend.inner._req("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    await fleet.start()
    try:
        yield Env(real_cluster, backend, fleet, ns)
    finally:
        await fleet.stop()
        await backend.inner._req("DELETE", f"/api/v1/namespaces/{ns}")
        for name in fleet.kubelets:
            await backend.inner._req("DELETE", f"/api/v1/nodes/{name}")
        await backend.inner.close()


@pytest.mark.parametrize("trigger", ["annotation", "readiness"])
async def test_an_image_patch_landing_just_before_a_status_write_still_restarts_the_container(
        env: Env, trigger: str) -> None:
    """The executor's in-place image patch can reach the server right before a kubelet status write;
    the write's answer then already carries the new spec. The container must still be restarted on the
    new image (it once stayed on the old one for good: the patch's own watch event looked handled).

    `annotation`: a change that needs no status write (the kubelet before its fixes wrote one anyway, a
    no-op whose answer was the image-patched pod). `readiness`: a change that does need one (readiness
    off), so the image patch always lands right before a real write."""
    pod = await env.create_running_pod("race")
    uid = pod["metadata"]["uid"]
    landed = asyncio.Event()

    async def image_patch() -> None:
        await env.api("PATCH", env.pod_path("race"),
                      {"spec": {"containers": [{"name": "main", "image": NEW}]}},
                      "application/strategic-merge-patch+json")
        landed.set()

    env.backend.before_status_write = image_patch
    # Any change the kubelet sees may make it write status; the image patch goes in just before that.
    key, value = ("example.com/poke", "1") if trigger == "annotation" else (ANNOTATION_READY, "false")
    await env.api("PATCH", env.pod_path("race"), {"metadata": {"annotations": {key: value}}}, MERGE)
    await wait_until(lambda: (ps := env.known(uid)) is not None
                     and (ps.pod["metadata"].get("annotations") or {}).get(key) == value,
                     timeout=30, interval=0.05, message="the kubelet to see the annotation")
    if trigger == "readiness":
        await wait_until(landed.is_set, timeout=30, interval=0.05, message="the status write (readiness off)")
    elif not landed.is_set():  # the kubelet had nothing to write: patch the image now
        env.backend.before_status_write = None
        await image_patch()

    async def restarted() -> dict[str, Any] | None:
        p = await env.pod("race")
        cs = ((p.get("status") or {}).get("containerStatuses") or [{}])[0]
        ready = bool(cs.get("ready")) == (trigger == "annotation")  # readiness off stays off
        return p if cs.get("image") == NEW and cs.get("restartCount") == 1 and ready else None

    await wait_until(restarted, timeout=30, interval=0.2, message=f"the container restarted on {NEW}")


async def test_watch_events_cost_no_status_writes(env: Env) -> None:
    """A 1.20 server drops `status.hostIPs` and adds `lastState: {}`: a kubelet comparing its desired
    status field by field with the server's saw a difference in every event and wrote a no-op PATCH
    for each. Label and annotation changes must cost no pod status write."""
    pod = await env.create_running_pod("quiet")
    uid = pod["metadata"]["uid"]
    await wait_until(lambda: (ps := env.known(uid)) is not None and ps.pod["metadata"].get("resourceVersion")
                     == pod["metadata"]["resourceVersion"] or None, timeout=10, interval=0.05,
                     message="the kubelet to catch up")
    before = env.backend.status_writes
    for i in range(10):
        await env.api("PATCH", env.pod_path("quiet"), {"metadata": {"annotations": {"example.com/i": str(i)}}},
                      MERGE)
    await wait_until(lambda: (ps := env.known(uid)) is not None
                     and (ps.pod["metadata"].get("annotations") or {}).get("example.com/i") == "9",
                     timeout=30, interval=0.05, message="the kubelet to see every change")
    assert env.backend.status_writes == before, "watch events that change nothing for the kubelet cost writes"


async def test_a_readiness_flip_costs_one_write_each_way(env: Env) -> None:
    """No ping-pong: readiness off then on again is one status write each, and the status settles
    (the echo of an older write must not be taken for the status to keep)."""
    pod = await env.create_running_pod("flip")
    uid = pod["metadata"]["uid"]
    await wait_until(lambda: (ps := env.known(uid)) is not None and ps.pod["metadata"].get("resourceVersion")
                     == pod["metadata"]["resourceVersion"] or None, timeout=10, interval=0.05,
                     message="the kubelet to catch up")
    before = env.backend.status_writes

    async def ready_is(value: str) -> bool:
        p = await env.pod("flip")
        return any(c["type"] == "Ready" and c["status"] == value for c in p["status"]["conditions"])

    await env.api("PATCH", env.pod_path("flip"), {"metadata": {"annotations": {ANNOTATION_READY: "false"}}}, MERGE)
    await wait_until(lambda: ready_is("False"), timeout=30, interval=0.1, message="Ready False")
    await env.api("PATCH", env.pod_path("flip"), {"metadata": {"annotations": {ANNOTATION_READY: None}}}, MERGE)
    await wait_until(lambda: ready_is("True"), timeout=30, interval=0.1, message="Ready True")
    # then something that needs no write: once the kubelet has seen it, nothing may have written since
    poked = await env.api("PATCH", env.pod_path("flip"), {"metadata": {"annotations": {"example.com/x": "1"}}},
                          MERGE)
    rv = poked["metadata"]["resourceVersion"]
    await wait_until(lambda: (ps := env.known(uid)) is not None
                     and (ps.pod["metadata"].get("annotations") or {}).get("example.com/x") == "1",
                     timeout=10, interval=0.05, message="the kubelet to see the last change")
    assert env.backend.status_writes - before == 2
    assert (await env.pod("flip"))["metadata"]["resourceVersion"] == rv, "the status kept changing"
