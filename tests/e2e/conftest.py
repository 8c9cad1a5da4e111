"""End-to-end fixtures: the whole stack as processes (NATS, sim, watcher, planner, executor).

`real_stack` is the same stack on the session's real control plane (kube-apiserver, controller-manager
and scheduler 1.20, with `sim nodes` as its kubelets): the `[real]` variant of a scenario.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.kube import Kube
from services.stack import Stack
from tests.conftest import RealCluster


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """The stack; `@pytest.mark.parametrize("stack", [{...}], indirect=True)` passes `Stack` options."""
    options = getattr(request, "param", {})
    s = Stack(workdir=tmp_path / "stack", **options)
    try:
        await s.start()
        yield s
    except BaseException:
        for name in ("watcher", "planner", "executor", "sim"):
            print(f"--- {name} log ---\n{s.log_tail(name, 40)}")
        raise
    finally:
        await s.stop()
    # every subject a service used was one its NATS user may use (services.natsauth)
    assert s.permission_violations() == [], "\n".join(s.permission_violations())


@pytest.fixture
async def real_stack(tmp_path: Path, real_cluster: RealCluster) -> AsyncIterator[Stack]:
    s = Stack(workdir=tmp_path / "stack", cluster=real_cluster.kubeconfig, nodes=0)
    try:
        await s.start()
        yield s
    except BaseException:
        for name in ("watcher", "planner", "executor"):
            print(f"--- {name} log ---\n{s.log_tail(name, 40)}")
        print(f"--- sim nodes log ---\n{real_cluster.nodes.log.read_text()[-3000:]}")
        raise
    finally:
        await s.stop()
    assert s.permission_violations() == [], "\n".join(s.permission_violations())


@pytest.fixture
async def real_kube(real_stack: Stack) -> AsyncIterator[Kube]:
    k = await Kube.connect(real_stack.kubeconfig)
    try:
        yield k
    finally:
        await k.close()


@pytest.fixture
async def kube(stack: Stack) -> AsyncIterator[Kube]:
    k = await Kube.connect(stack.kubeconfig)
    try:
        yield k
    finally:
        await k.close()
