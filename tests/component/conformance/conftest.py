"""The `cluster` fixture of the API conformance suite: the embedded cluster, or a real one.

Every test runs twice: `[sim]` against an in-process `SimCluster` and `[real]` against the cluster of
`KRUISEBUS_E2E_KUBECONFIG` (skipped when that is not set). Each test gets a fresh, uniquely named
namespace, deleted afterwards. Sim-only behaviours call `cluster.require_sim(why)`, which skips on a real
cluster.
"""

from __future__ import annotations

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


@pytest.fixture(params=["sim", "real"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    ns = f"kb-conf-{uuid.uuid4().hex[:8]}"
    if request.param == "real":
        kubeconfig = os.environ.get(ENV)
        if not kubeconfig:
            pytest.skip(f"{ENV} is not set: the real-cluster variant of the conformance suite is skipped")
        api = await config.new_client_from_config(config_file=kubeconfig)
        try:
            c = Cluster(api, ns, None, kubeconfig)
            await c.core.create_namespace({"metadata": {"name": ns}})
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
    # small watch history so "too old" paths are reachable; short wait for future resourceVersions
    async with SimCluster(
        nodes=2, tmpdir=tmp_path, pull_delay=0.01, start_delay=0.01, watch_history=50, bookmark_interval=0.2
    ) as sim:
        sim.api.rv_wait = 0.3
        async with sim.api_client() as api:
            c = Cluster(api, ns, sim, str(sim.kubeconfig_path))
            await c.core.create_namespace({"metadata": {"name": ns}})
            yield c
