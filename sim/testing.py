"""pytest helpers for tests that need the embedded cluster.

Use in a test module (or conftest) with `from sim.testing import sim_cluster, kube_api  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sim.cluster import SimCluster

FAST = {"pull_delay": 0.05, "start_delay": 0.05, "bookmark_interval": 0.2}


@pytest.fixture
async def sim_cluster(tmp_path: Path) -> AsyncIterator[SimCluster]:
    """A 3-node embedded cluster with fast pulls/starts, on a random loopback port."""
    async with SimCluster(nodes=3, tmpdir=tmp_path, **FAST) as cluster:  # type: ignore[arg-type]
        yield cluster


@pytest.fixture
async def kube_api(sim_cluster: SimCluster) -> AsyncIterator[Any]:
    """A kubernetes_asyncio ApiClient connected to `sim_cluster`."""
    async with sim_cluster.api_client() as api:
        yield api
