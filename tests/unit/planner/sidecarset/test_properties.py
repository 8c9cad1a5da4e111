"""Properties of the upgrade arithmetic over random pod populations (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.kube import Pod
from services.planner.kit.intstr import partition_replicas
from services.planner.sidecarset.plan import is_consistent, is_updated, next_upgrade_pods, sidecar_names
from tests.unit.planner.sidecarset.test_plan import V1, V2, injected, pods, running, ss_at

budgets = st.one_of(st.integers(min_value=0, max_value=12), st.integers(min_value=0, max_value=100).map(lambda p: f"{p}%"))
partitions = st.one_of(st.integers(min_value=0, max_value=12), st.integers(min_value=0, max_value=100).map(lambda p: f"{p}%"))


def population(n: int, u: int, c: int, not_ready: int) -> tuple[Any, list[Pod]]:
    old, new = ss_at(V1), ss_at(V2)
    out = pods(n, u, c, old=old, new=new)
    for i in range(n - not_ready, n):
        if i >= u:
            out[i] = running(injected(old, f"pod-{i}"), index=i, ready=False)
    return new, out


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=12).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(min_value=0, max_value=n)).flatmap(lambda t: st.tuples(
        st.just(t[0]), st.just(t[1]), st.integers(min_value=0, max_value=t[1]),
        st.integers(min_value=0, max_value=t[0])))), budgets, partitions)
def test_budget_and_partition_hold(shape: tuple[int, int, int, int], mu: int | str, partition: int | str) -> None:
    n, u, c, not_ready = shape
    base, matched = population(n, u, c, not_ready)
    ss = ss_at(V2, updateStrategy={"maxUnavailable": mu, "partition": partition})
    assert ss.metadata.annotations == base.metadata.annotations
    chosen = next_upgrade_pods(ss, matched).chosen
    names = sidecar_names(ss)
    chosen_names = {p.metadata.name for p in chosen}
    # only pods not yet updated are chosen, each once
    assert len(chosen_names) == len(chosen)
    assert not any(is_updated(ss, p) for p in chosen)
    # the ready pods taken never push the unavailable updated pods past the budget
    total = len(matched)
    budget = mu if isinstance(mu, int) else -(-int(mu[:-1]) * total // 100)
    unavailable = sum(1 for p in matched if is_updated(ss, p) and not (is_consistent(p, names) and _ready(p)))
    ready_taken = sum(1 for p in chosen if _ready(p))
    assert ready_taken <= max(0, budget - unavailable)
    # partition: the pods left on the old version are at least the partition (of the candidates)
    candidates = [p for p in matched if not is_updated(ss, p) and is_consistent(p, names)]
    assert len(chosen) <= max(0, len(candidates) - partition_replicas(partition, total))


def _ready(p: Pod) -> bool:
    cond = p.status.condition("Ready")
    return p.status.phase == "Running" and cond is not None and cond.status == "True"
