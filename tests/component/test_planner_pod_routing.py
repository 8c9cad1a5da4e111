"""Which DaemonSets a pod's create or update re-plans, through the engine's routing (real nats-server):
Kruise's pod event handlers (`TestEnqueueRequestForPodCreate`, `TestEnqueueRequestForPodUpdate`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from schemas.daemonset import DaemonSet
from schemas.kube import Pod
from schemas.messages import DaemonSetState, PodState, StateEvent
from services.bus import Bus
from services.natsd import NatsServer
from services.planner.kit.gates import DEFAULT_GATES
from services.planner.service import Planner
from services.planner.workloads import registry_for
from tests.unit.planner.daemonset.helpers import ds_dict


@pytest.fixture
async def planner(nats_server: NatsServer, uid: str) -> AsyncIterator[Planner]:
    bus = await Bus.connect(nats_server.url, name="test-pod-routing", prefix=f"r{uid}")
    try:
        yield Planner(bus, gates=DEFAULT_GATES, registry=registry_for(DEFAULT_GATES))
    finally:
        await bus.close()


def daemonset(name: str, *, namespace: str = "default", app: str = "d") -> DaemonSet:
    body = ds_dict()
    body["metadata"].update(name=name, uid=f"uid-{name}", namespace=namespace)
    body["spec"]["selector"] = {"matchLabels": {"app": app}}
    body["spec"]["template"]["metadata"]["labels"] = {"app": app}
    return msgspec.convert(body, DaemonSet)


def pod(rv: str, *, owner: str | None = None, app: str = "d") -> Pod:
    meta: dict[str, Any] = {"name": "p", "namespace": "default", "uid": "pod-uid", "resourceVersion": rv,
                            "labels": {"app": app}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps.kruise.io/v1beta1", "kind": "DaemonSet", "name": owner,
                                    "uid": f"uid-{owner}", "controller": True}]
    return msgspec.convert({"metadata": meta, "spec": {"containers": [{"name": "c", "image": "i"}]}}, Pod)


async def replanned(planner: Planner, *events: StateEvent) -> set[str]:
    planner.dirty.clear()
    for event in events:
        await planner.on_state(event)
    return {planner.workloads[uid].obj.metadata.name for uid in planner.dirty}


async def _four(planner: Planner) -> None:
    await replanned(planner, DaemonSetState(object=daemonset("ds01")), DaemonSetState(object=daemonset("ds02")),
                    DaemonSetState(object=daemonset("other", app="x")),
                    DaemonSetState(object=daemonset("elsewhere", namespace="ns2")))


async def test_l20_an_orphan_pod_replans_every_daemonset_that_selects_it(planner: Planner) -> None:
    await _four(planner)
    assert await replanned(planner, PodState(object=pod("1"))) == {"ds01", "ds02"}
    assert list(planner.orphans) == ["pod-uid"]  # handed to their passes (ORPHAN_PODS), which adopt it
    assert await replanned(planner, PodState(object=pod("2", owner="ds02"))) == {"ds02"}  # adopted by ds02
    assert planner.orphans == {}


async def test_l20_an_owned_pod_replans_its_owner(planner: Planner) -> None:
    await _four(planner)
    assert await replanned(planner, PodState(object=pod("1", owner="ds01"))) == {"ds01"}


async def test_l21_the_same_resource_version_replans_nothing(planner: Planner) -> None:
    await _four(planner)
    await replanned(planner, PodState(object=pod("1", owner="ds01")))
    assert await replanned(planner, PodState(object=pod("1", owner="ds01"))) == set()
    assert await replanned(planner, PodState(object=pod("2", owner="ds01"))) == {"ds01"}


async def test_l21_a_moved_controller_reference_replans_the_old_and_the_new_owner(planner: Planner) -> None:
    await _four(planner)
    await replanned(planner, PodState(object=pod("1", owner="ds01")))
    # only the new version arrives (no tombstone for the old owner): both are re-planned, the old one
    # no longer holds the pod
    assert await replanned(planner, PodState(object=pod("2", owner="ds02"))) == {"ds01", "ds02"}
    by_name = {wl.obj.metadata.name: wl for wl in planner.workloads.values() if wl.obj is not None}
    assert not by_name["ds01"].pods and list(by_name["ds02"].pods) == ["pod-uid"]
    # the watcher's way: the old version's tombstone, then the new version
    assert await replanned(planner, PodState(object=pod("2", owner="ds02"), deleted=True),
                           PodState(object=pod("3", owner="ds01"))) == {"ds01", "ds02"}
