"""End-to-end fixtures: the whole stack as processes (NATS, sim, watcher, planner, executor)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.kube import Kube
from services.stack import Stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(workdir=tmp_path / "stack")
    try:
        await s.start()
        yield s
    except BaseException:
        for name in ("watcher", "planner", "executor", "sim"):
            print(f"--- {name} log ---\n{s.log_tail(name, 40)}")
        raise
    finally:
        await s.stop()


@pytest.fixture
async def kube(stack: Stack) -> AsyncIterator[Kube]:
    k = await Kube.connect(stack.kubeconfig)
    try:
        yield k
    finally:
        await k.close()
