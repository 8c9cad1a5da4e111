"""The embedded cluster the runtime tests pull from: two simulated nodes with fast pulls, a 60 MB and a
5 GB image (for progress and timeouts), short back-off, and a client on it. Shared by the `sim` and
`kube` runtime tests, which import these fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.kube import Kube
from sim import SimCluster
from sim.nodes import NodeConfig


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[SimCluster]:
    cfg = NodeConfig(
        bandwidth_mb_s=100.0,
        default_image_size_mb=1.0,
        image_sizes_mb={"big:1": 60.0, "huge:1": 5000.0},
        start_delay=0.01,
        pull_backoff=0.2,
        stop_delay=0.0,
    )
    async with SimCluster(nodes=2, tmpdir=tmp_path, node_config=cfg) as c:
        yield c


@pytest.fixture
async def kube(cluster: SimCluster) -> AsyncIterator[Kube]:
    k = await Kube.connect(str(cluster.kubeconfig_path))
    try:
        yield k
    finally:
        await k.close()
