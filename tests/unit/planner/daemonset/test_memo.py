"""The DaemonSet pass memoises per-pod facts, per-node fits and what it derives from them between passes
(`kit.memo`); these properties check that a memoised pass decides exactly what a pass from a cold memo
decides, over whole rollouts where the view keeps unchanged objects (as the planner service does),
replaces changed ones, and sometimes mutates one in place with a new resourceVersion."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.kube import ControllerRevision, Node, Pod
from services.planner.daemonset import plan as ds_plan
from services.planner.daemonset.plan import DsPlan, plan_daemonset
from services.planner.kit.gates import DEFAULT_GATES
from services.planner.kit.memo import MemoRegistry
from tests.unit.planner.daemonset.helpers import NOW, DsCluster, ds_dict, node_dict, rolling


class _Objects:
    """Decoded view objects kept between passes while their JSON is unchanged (the service's behaviour)."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], tuple[bytes, Any]] = {}

    def view(self, kind: type[Any], key: str, raw: dict[str, Any]) -> Any:
        data = msgspec.json.encode(raw)
        got = self.kept.get((kind.__name__, key))
        if got is not None and got[0] == data:
            return got[1]
        obj = msgspec.convert(raw, kind)
        self.kept[(kind.__name__, key)] = (data, obj)
        return obj


def _cold(monkeypatch: pytest.MonkeyPatch, *args: Any, **kw: Any) -> DsPlan:
    with monkeypatch.context() as m:
        m.setattr(ds_plan, "_POD_FACTS", MemoRegistry())
        m.setattr(ds_plan, "_NODE_FITS", MemoRegistry())
        return plan_daemonset(*args, **kw)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 7), budget=st.integers(1, 3), partition=st.integers(0, 4), surge=st.booleans(),
       min_ready=st.sampled_from([0, 2]), in_place=st.booleans(), taint_at=st.integers(0, 6),
       mutate_at=st.integers(0, 6))
def test_a_memoised_pass_decides_what_a_cold_pass_decides(monkeypatch: pytest.MonkeyPatch, n: int, budget: int,
                                                          partition: int, surge: bool, min_ready: int,
                                                          in_place: bool, taint_at: int, mutate_at: int) -> None:
    ds_plan._POD_FACTS.clear()
    ds_plan._NODE_FITS.clear()
    ru: dict[str, Any] = {"maxSurge": budget, "maxUnavailable": 0} if surge else {"maxUnavailable": budget}
    if in_place and not surge:
        ru["rollingUpdateType"] = "InPlaceIfPossible"
    nodes = [f"node-{i}" for i in range(n)]
    c = DsCluster(ds_dict(strategy=rolling(**ru, partition=partition), min_ready=min_ready), nodes)
    objects = _Objects()
    now = NOW
    for step in range(60):
        if step == 8:
            c.set_image("nginx:2.0")
        if step == 8 + taint_at:  # a NoExecute taint evicts the pod of the last node
            c.nodes[nodes[-1]] = node_dict(nodes[-1], taints=[{"key": "k", "value": "v", "effect": "NoExecute"}])
        # a new version of one node every pass with the same verdict (a label nothing selects on)
        beat = c.nodes[nodes[step % n]]
        beat["metadata"]["labels"] = {**beat["metadata"]["labels"], "beat": str(step)}
        ds = c.daemonset()
        pods = [objects.view(Pod, p["metadata"]["uid"], p)
                for p in sorted(c.pods.values(), key=lambda p: p["metadata"]["name"])]
        if step == 8 + mutate_at and pods:  # a pod changed in place under a new resourceVersion
            pods[0].metadata.labels = {**pods[0].metadata.labels, "controller-revision-hash": "mutated"}
            pods[0].metadata.resource_version = f"{pods[0].metadata.resource_version}-mutated"
        node_views = [objects.view(Node, k, v) for k, v in sorted(c.nodes.items())]
        revisions = [objects.view(ControllerRevision, k, r) for k, r in sorted(c.revisions.items())]
        warm = plan_daemonset(ds, pods, node_views, revisions, now=now, gates=DEFAULT_GATES)
        cold = _cold(monkeypatch, ds, pods, node_views, revisions, now=now, gates=DEFAULT_GATES)
        assert msgspec.to_builtins(warm) == msgspec.to_builtins(cold), f"pass {step}"
        c.apply(warm, now)  # type: ignore[arg-type]
        c.kubelet(now)
        now += timedelta(seconds=1)


def test_the_same_view_twice_gives_the_same_plan() -> None:
    """The memo's fastest path (every object unchanged) reuses everything and changes nothing."""
    c = DsCluster(ds_dict(strategy=rolling(maxUnavailable=1)), ["a", "b", "c"])
    now = c.settle(NOW)
    c.set_image("nginx:2.0")
    ds = c.daemonset()
    pods, nodes = c.pod_views(), [msgspec.convert(v, Node) for _, v in sorted(c.nodes.items())]
    revisions = [msgspec.convert(r, ControllerRevision) for r in c.revisions.values()]
    first = plan_daemonset(ds, pods, nodes, revisions, now=now, gates=DEFAULT_GATES)
    second = plan_daemonset(ds, pods, nodes, revisions, now=now, gates=DEFAULT_GATES)
    assert msgspec.to_builtins(first) == msgspec.to_builtins(second)
