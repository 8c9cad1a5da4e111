"""The `cluster` fixture of the API conformance suite: the embedded cluster, or a real one.

Every test runs twice: `[sim]` against an in-process `SimCluster` and `[real]` (marker `real`) against
a real Kubernetes: the cluster of `KRUISEBUS_E2E_KUBECONFIG` when that is set, else the session's own
control plane (kube-apiserver 1.20 built by `make test`, `tests/realkube.py`; skipped, saying why, where
it is not built). Each test gets a fresh, uniquely named namespace, deleted afterwards. Sim-only
behaviours call `cluster.require_sim(why)`, which skips on a real cluster; behaviours that need a newer
API server than the one at hand call `cluster.require_version(minor, why)`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiException

from sim import SimCluster
from sim.cluster import wait_until

ENV = "KRUISEBUS_E2E_KUBECONFIG"


class Cluster:
    """What a conformance test needs: an ApiClient, its namespace, and the sim (None on a real cluster)."""

    def __init__(self, api: Any, ns: str, sim: SimCluster | None, kubeconfig: str) -> None:
        self.api = api
        self.ns = ns
        self.sim = sim
        self.kubeconfig = kubeconfig
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.crds = client.ApiextensionsV1Api(api)

    @property
    def is_sim(self) -> bool:
        return self.sim is not None

    def require_sim(self, why: str) -> None:
        if self.sim is None:
            pytest.skip(f"sim-only: {why}")

    async def require_version(self, minor: int, why: str) -> None:
        """Skip on a real API server older than 1.<minor> (the sim serves the newest behaviour)."""
        if self.sim is not None:
            return
        info = await client.VersionApi(self.api).get_code()
        have = int("".join(ch for ch in info.minor if ch.isdigit()) or 0)
        if have < minor:
            pytest.skip(f"needs Kubernetes >= 1.{minor} ({why}); the server is {info.git_version}")

    async def wait_for(
        self,
        predicate: Callable[[], Any | Awaitable[Any]],
        timeout: float | None = None,
        what: str = "condition",
    ) -> Any:
        """Poll with a deadline (longer on a real cluster: its controllers are asynchronous)."""
        return await wait_until(predicate, timeout=timeout or (10.0 if self.is_sim else 60.0),
                                interval=0.02 if self.is_sim else 0.5, message=what)

    async def gone(self, read: Callable[[], Awaitable[Any]]) -> bool:
        try:
            await read()
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    async def node_name(self) -> str:
        """A Ready node to run pods on (skips when the cluster has none)."""
        nodes = (await self.core.list_node()).items
        for n in nodes:
            if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or [])):
                return str(n.metadata.name)
        pytest.skip("the cluster has no Ready node")
        raise AssertionError  # unreachable


async def _root_ca(c: Cluster) -> bool:
    """kube-controller-manager puts this ConfigMap in every new namespace, a moment after it is created:
    tests start once it is there, so it is never an event or list item they did not expect."""
    try:
        await c.core.read_namespaced_config_map("kube-root-ca.crt", c.ns)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


@pytest.fixture(params=["sim", pytest.param("real", marks=pytest.mark.real)])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    ns = f"kb-conf-{uuid.uuid4().hex[:8]}"
    if request.param == "real":
        kubeconfig = os.environ.get(ENV) or request.getfixturevalue("real_cluster").kubeconfig
        api = await config.new_client_from_config(config_file=kubeconfig)
        try:
            c = Cluster(api, ns, None, kubeconfig)
            await c.core.create_namespace({"metadata": {"name": ns}})
            with contextlib.suppress(TimeoutError):  # a cluster that does not publish it: go on
                await c.wait_for(lambda: _root_ca(c), timeout=10, what="kube-root-ca.crt in the new namespace")
            try:
                yield c
            finally:
                try:
                    await c.core.delete_namespace(ns)
                except ApiException:
                    pass
        finally:
            await api.close()
        return
    # small watch history so "too old" paths are reachable; short wait for future resourceVersions;
    # the Job controller retries failed pods after 0.5 s instead of 10 s
    async with SimCluster(
        nodes=2, tmpdir=tmp_path, pull_delay=0.01, start_delay=0.01, watch_history=50, bookmark_interval=0.2,
        job_backoff=0.5,
    ) as sim:
        sim.api.rv_wait = 0.3
        async with sim.api_client() as api:
            c = Cluster(api, ns, sim, str(sim.kubeconfig_path))
            await c.core.create_namespace({"metadata": {"name": ns}})
            yield c
