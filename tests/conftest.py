"""Shared fixtures: one real nats-server per session, unique names per test, and (for the `[real]`
tests) one real Kubernetes control plane per session with simulated kubelets (tests/realkube.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client as NATS

from services.natsd import NatsServer
from tests import realkube


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def private_nats_server() -> Iterator[NatsServer]:
    """A server of the test's own, for tests that kill or restart it."""
    server = NatsServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def uid() -> str:
    """A short unique id: name streams/prefixes per test so tests share one server safely."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url, name="test", drain_timeout=2)
    try:
        yield client
    finally:
        await client.close()


class RealCluster:
    """The session's real control plane (kube-apiserver 1.20) and the `sim nodes` giving it nodes."""

    def __init__(self, cp: realkube.ControlPlane, nodes: realkube.SimNodes) -> None:
        self.cp = cp
        self.nodes = nodes
        self.kubeconfig = str(cp.kubeconfig)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a counter from kube-apiserver's /metrics over the series matching `labels`."""
        return realkube.metric(self.cp, name, **labels)


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[RealCluster]:
    """Started on first use; skips (saying why) where the control plane is not built."""
    why = realkube.unavailable()
    if why:
        pytest.skip(why)
    cp = realkube.ControlPlane().start()
    nodes = realkube.SimNodes(cp, 3)
    try:
        nodes.start()
        yield RealCluster(cp, nodes)
    except BaseException:
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            print(f"--- {name} log ---\n{cp.log_tail(name, 20)}")
        raise
    finally:
        nodes.stop()
        cp.cleanup()
