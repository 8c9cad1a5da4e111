"""The seed scenario with the planner and the executor each SIGKILLed once mid-rollout.

The rollout must still complete, and no pod may be updated twice for one revision (restartCount
goes up by exactly one for every pod); the scenario also checks maxUnavailable on every sample.
"""

from __future__ import annotations

import pytest
from rich.progress import Progress

from services.demo import run_seed_scenario
from services.kube import Kube
from services.observe import Snapshot, restart_count, snapshot
from services.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(400)]


async def test_rollout_survives_planner_and_executor_sigkill(stack: Stack, kube: Kube) -> None:
    killed: list[str] = []

    async def chaos(phase: str, snap: Snapshot) -> None:
        in_flight = any(p.metadata.labels.get("controller-revision-hash") == snap.cloneset.status.update_revision
                        for p in snap.pods) and snap.cloneset.status.update_revision != snap.cloneset.status.current_revision
        if phase == "partition" and in_flight and "planner" not in killed:
            killed.append("planner")
            await stack.restart("planner")
        if phase == "complete" and "executor" not in killed and len(snap.updated()) >= 3:
            killed.append("executor")
            await stack.restart("executor")

    with Progress(disable=True) as progress:
        report = await run_seed_scenario(kube, progress, hook=chaos, timeout=240, grace_seconds=1)

    assert killed == ["planner", "executor"], f"chaos did not happen as planned: {killed}"
    snap = await snapshot(kube, "default", "sample")
    assert sorted(p.metadata.uid for p in snap.pods) == sorted(report.before)
    for pod in snap.pods:
        assert restart_count(pod) == report.before[pod.metadata.uid].restarts + 1, pod.metadata.name
    stack.check_alive()
