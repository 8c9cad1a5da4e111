"""Properties of the DaemonSet rolling update over random fleets, budgets and partitions: never more
nodes without an available pod than maxUnavailable (Standard), never more extra pods than maxSurge and
never a node without an available pod (surge), never more nodes updated than the window allows, and
convergence to exactly `nodes - partition` updated nodes with one pod each."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.planner.daemonset.helpers import NOW, DsCluster, ds_dict, node_of, rolling


def _available_nodes(c: DsCluster) -> int:
    ok = set()
    for p in c.pods.values():
        conds = {x["type"]: x["status"] for x in p.get("status", {}).get("conditions", [])}
        if conds.get("Ready") == "True" and p["spec"].get("nodeName"):
            ok.add(p["spec"]["nodeName"])
    return len(ok)


def _updated_nodes(c: DsCluster, h: str) -> int:
    return len({node_of(p) for p in c.pods.values() if p["metadata"]["labels"]["controller-revision-hash"] == h})


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), budget=st.integers(1, 4), partition=st.integers(0, 9), surge=st.booleans())
def test_rolling_update_stays_within_its_budget_and_window_and_converges(n: int, budget: int, partition: int,
                                                                         surge: bool) -> None:
    ru = {"maxSurge": budget, "maxUnavailable": 0} if surge else {"maxUnavailable": budget}
    nodes = [f"node-{i}" for i in range(n)]
    c = DsCluster(ds_dict(strategy=rolling(**ru, partition=partition)), nodes)
    now = c.settle(NOW)
    c.set_image("nginx:2.0")
    window = max(n - partition, 0)
    quiet = 0
    for _ in range(200):
        now += timedelta(seconds=1)
        plan = c.plan(now)
        c.apply(plan, now)  # type: ignore[arg-type]
        # after the pass's writes, before the kubelet starts anything new
        if surge:
            assert _available_nodes(c) == n
            extra = sum(len(v) - 1 for v in c.pods_by_node().values())
            assert extra <= budget
        else:
            assert n - _available_nodes(c) <= budget
        new_hash = plan.update_revision.rsplit("-", 1)[-1]
        assert _updated_nodes(c, new_hash) <= window
        c.kubelet(now)
        quiet = quiet + 1 if not plan.commands else 0
        if quiet >= 2:
            break
    else:
        raise AssertionError("did not converge")
    assert _updated_nodes(c, new_hash) == window
    assert all(len(v) == 1 for v in c.pods_by_node().values()) and len(c.pods_by_node()) == n
