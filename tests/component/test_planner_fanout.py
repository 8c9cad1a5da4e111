"""Which workloads a change of a shared object re-plans (real nats-server, the engine's routing): a pod
only the markers and pull jobs that select it, a job only the NodeImages whose tags it owns, and only
when it comes or goes, not on every status write. Before, every pod event planned every marker and
every job, and every job status change every NodeImage (thousands of passes a rollout)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from schemas.messages import ImagePullJobState, NodeImageState, PodProbeMarkerState, PodState, StateEvent
from services.bus import Bus
from services.natsd import NatsServer
from services.planner.kit.gates import parse_feature_gates
from services.planner.service import Planner
from services.planner.workloads import registry_for
from tests.unit.planner.imagepulljob import builders as pj
from tests.unit.planner.podprobemarker import fixtures as pm

GATES = parse_feature_gates("ImagePullJobGate=true")


@pytest.fixture
async def planner(nats_server: NatsServer, uid: str) -> AsyncIterator[Planner]:
    bus = await Bus.connect(nats_server.url, name="test-fanout", prefix=f"f{uid}")
    try:
        yield Planner(bus, gates=GATES, registry=registry_for(GATES))
    finally:
        await bus.close()


async def replanned(planner: Planner, *events: StateEvent) -> set[str]:
    """The workloads (by name) these state events mark for a pass, through the engine's routing."""
    planner.dirty.clear()
    for event in events:
        await planner.on_state(event)
    return {planner.workloads[uid].obj.metadata.name for uid in planner.dirty}


def relabel(pod: object, rv: str, **labels: str) -> object:
    meta = pod.metadata  # type: ignore[attr-defined]
    return msgspec.structs.replace(pod, metadata=msgspec.structs.replace(meta, labels=labels, resource_version=rv))


async def test_a_pod_replans_only_the_markers_and_jobs_that_select_it(planner: Planner) -> None:
    markers = [pm.ppm("ppm-a", selector={"matchLabels": {"app": "a"}}),
               pm.ppm("ppm-b", selector={"matchLabels": {"app": "b"}})]
    jobs = [pj.job(uid="job-a", name="warm-a", pod_selector={"matchLabels": {"app": "a"}}),
            pj.job(uid="job-all", name="warm-all")]  # no podSelector: it reads no pod
    await replanned(planner, *(PodProbeMarkerState(object=m) for m in markers),
                    *(ImagePullJobState(object=j) for j in jobs))
    pods = [relabel(pm.pod(f"pod-{i}"), "7", app="a") for i in range(5)]
    assert await replanned(planner, *(PodState(object=p) for p in pods)) == {"ppm-a", "warm-a"}  # type: ignore[arg-type]
    other = relabel(pm.pod("other"), "7", app="c")
    assert await replanned(planner, PodState(object=other)) == set()  # type: ignore[arg-type]
    # moved from a to b: both markers (the one it left and the one it joined)
    assert await replanned(planner, PodState(object=relabel(pods[0], "8", app="b"))) == {  # type: ignore[arg-type]
        "ppm-a", "ppm-b", "warm-a"}
    assert await replanned(planner, PodState(object=pods[1], deleted=True)) == {"ppm-a", "warm-a"}  # type: ignore[arg-type]


async def test_a_job_replans_only_its_nodeimages_and_not_on_status_writes(planner: Planner) -> None:
    owned = {"nginx": [pj.owned_tag(uid="job-1")]}
    nis = [pj.node_image("n1", tags=owned), pj.node_image("n2", tags=owned), pj.node_image("n3")]
    job = pj.job(uid="job-1")
    await replanned(planner, *(NodeImageState(object=ni) for ni in nis), ImagePullJobState(object=job))
    counts = {"n1": 0, "n2": 0, "n3": 0}
    for i in range(5):  # the job's status moves on with every node that finished
        status = msgspec.structs.replace(job.status, succeeded=i, desired=2)
        job = msgspec.structs.replace(job, status=status,
                                      metadata=msgspec.structs.replace(job.metadata, resource_version=str(10 + i)))
        for name in await replanned(planner, ImagePullJobState(object=job)):
            if name in counts:
                counts[name] += 1
    assert counts == {"n1": 0, "n2": 0, "n3": 0}, "a job status write re-planned NodeImages"
    marked = await replanned(planner, ImagePullJobState(object=job, deleted=True))
    assert {n for n in marked if n.startswith("n")} == {"n1", "n2"}  # their tags lose the owner
