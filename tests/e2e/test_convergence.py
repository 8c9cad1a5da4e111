"""Convergence after restarts and redeliveries: what a chaos soak found, each as one deterministic scenario.

Every service is a process; the checks read only the Kubernetes API, as a user would.
"""

from __future__ import annotations

import asyncio

import pytest

from schemas.messages import CLONESETS, PODS
from services.kube import Kube
from services.observe import Snapshot, images_of, poll, snapshot
from services.stack import Stack
from tests.e2e.helpers import NS, cloneset, set_image, settled

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]


async def test_a_pod_deleted_while_the_watcher_is_down_is_replaced(stack: Stack, kube: Kube) -> None:
    """The watcher's first list after a restart must retire what the stream still calls live: the
    deleted pod used to stay in the planner's view for good (status 5/5 with 4 pods, and the planner
    deleting the ghost over and over instead of creating a replacement)."""
    await kube.create(CLONESETS, NS, cloneset("ghost", replicas=5, strategy={"type": "ReCreate"}))
    before = await settled(kube, "ghost", 5)
    victim = before.pods[0]
    await stack.kill("watcher")
    await kube.delete(PODS, NS, victim.metadata.name, grace_period_seconds=0)
    await poll(lambda: snapshot(kube, NS, "ghost"), lambda s: len(s.pods) == 4, timeout=30,
               what="the deletion on the API server")
    await stack.start_service("watcher")
    after = await settled(kube, "ghost", 5)
    assert victim.metadata.uid not in {p.metadata.uid for p in after.pods}
    assert after.cloneset.status.replicas == 5 and after.cloneset.status.ready_replicas == 5
    stack.check_alive()


@pytest.mark.parametrize("stack", [{"sim_args": ("--stop-delay", "1")}], indirect=True)
async def test_an_update_overtaking_one_in_progress_stays_within_the_budget(stack: Stack, kube: Kube) -> None:
    """v1 -> v2, and v3 while the first pod is still restarting into v2 (containers take 1 s to stop).

    The pod's restart into v2 changes its imageID; taking that for "done" made it ready and took a
    second pod down while the first restarted again into v3: 2 unavailable under a budget of 1.
    """
    await kube.create(CLONESETS, NS, cloneset("overtake", replicas=5, strategy={
        "type": "InPlaceIfPossible", "maxUnavailable": 1}, image="nginx:1.19"))
    await settled(kube, "overtake", 5)
    worst = 0

    def sample(s: Snapshot) -> None:
        nonlocal worst
        worst = max(worst, s.unavailable + max(0, 5 - len(s.pods)))

    await set_image(kube, "overtake", "nginx:1.20")
    # The scenario's own timing (not a wait for a condition): the next change half a second later,
    # while the first pod's container is still stopping on its way to v2.
    await asyncio.sleep(0.5)
    await set_image(kube, "overtake", "nginx:1.21")
    await poll(lambda: snapshot(kube, NS, "overtake"),
               lambda s: len(s.pods) == 5 and s.ready == 5 and len(s.updated()) == 5
               and all(images_of(p) == ["nginx:1.21"] for p in s.pods)
               and all(c.image == "nginx:1.21" for p in s.pods for c in p.status.container_statuses),
               timeout=120, interval=0.05, on_sample=sample, what="every pod ready on v3")
    assert worst <= 1, f"maxUnavailable 1, but {worst} pods were unavailable at once"
    stack.check_alive()
