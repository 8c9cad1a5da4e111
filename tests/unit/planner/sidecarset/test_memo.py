"""The SidecarSet pass memoises each pod's matching and facts (`kit.memo`) and what it derives from the
matched pods (status, upgrade order); this property checks that a memoised pass decides exactly what a
pass from a cold memo decides while pods are replaced one by one (upgraded, stuck on the old image,
not ready, relabelled out of the selector) between passes, and while the SidecarSet's sidecar image
changes (the pass that starts an upgrade keeps every pod's facts and only compares hashes again)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.kube import Pod
from services.planner.kit.memo import MemoRegistry
from services.planner.sidecarset import plan as ss_plan
from services.planner.sidecarset import podfacts
from services.planner.sidecarset.plan import plan_sidecarset
from tests.unit.planner.sidecarset.test_plan import V1, V2, injected, pods, running, ss_at

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def _versioned(p: Pod, rv: str) -> Pod:
    return msgspec.structs.replace(p, metadata=msgspec.structs.replace(p.metadata, resource_version=rv))


def _variants(n: int) -> list[list[Pod]]:
    old, new = ss_at(V1), ss_at(V2)
    stale = [running(injected(old, f"pod-{i}"), index=i, ready=False) for i in range(n)]
    moved = []
    for i in range(n):  # relabelled out of the selector after injection
        raw = injected(old, f"pod-{i}")
        raw["metadata"]["labels"]["app"] = "other"
        moved.append(running(raw, index=i))
    kinds = [pods(n, 0, 0, old=old, new=new), pods(n, n, n, old=old, new=new), pods(n, n, 0, old=old, new=new),
             stale, moved]
    return [[_versioned(p, f"{k}") for p in kind] for k, kind in enumerate(kinds)]


def _cold(monkeypatch: pytest.MonkeyPatch, *args: Any, **kw: Any) -> Any:
    with monkeypatch.context() as m:
        m.setattr(ss_plan, "_MATCHES", MemoRegistry())
        m.setattr(podfacts, "_FACTS", {})
        return plan_sidecarset(*args, **kw)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 8), mu=st.integers(1, 3), partition=st.integers(0, 3),
       steps=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 4), st.integers(0, 2)), max_size=12))
def test_a_memoised_pass_decides_what_a_cold_pass_decides(monkeypatch: pytest.MonkeyPatch, n: int, mu: int,
                                                          partition: int, steps: list[tuple[int, int, int]]) -> None:
    ss_plan._MATCHES.clear()
    strategy = {"maxUnavailable": mu, "partition": partition}
    # the SidecarSet at the pods' new image, back at their old one, and at one no pod has yet
    versions = [ss_at(V2, updateStrategy=strategy), ss_at(V1, updateStrategy=strategy),
                ss_at("sidecar:v3", updateStrategy=strategy)]
    variants = _variants(n)
    view = list(variants[0])
    for i, kind, version in [(0, 0, 0), *steps]:
        view[i % n] = variants[kind][i % n]
        ss = versions[version]
        warm = plan_sidecarset(ss, view, [], now=NOW)
        cold = _cold(monkeypatch, ss, view, [], now=NOW)
        assert msgspec.to_builtins(warm) == msgspec.to_builtins(cold)


def test_the_pass_after_a_sidecar_image_change_decides_no_pod_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The upgrade pass itself: the memo built for the old image serves the new one (no pod is decided
    again), and it upgrades what a cold pass would."""
    ss_plan._MATCHES.clear()
    old, new = ss_at(V1), ss_at(V2)
    view = [_versioned(p, "1") for p in pods(6, 0, 0, old=old, new=old)]
    settled = plan_sidecarset(old, view, [], now=NOW)
    assert settled.upgrade == []
    decided: list[str] = []
    real = podfacts.pod_facts

    def counting(*args: Any) -> Any:
        decided.append(args[1].metadata.name)
        return real(*args)

    with monkeypatch.context() as m:
        m.setattr(ss_plan, "pod_facts", counting)
        warm = plan_sidecarset(new, view, [], now=NOW)
    assert decided == []
    assert len(warm.upgrade) == 1 and warm.status.updated_pods == 0
    assert msgspec.to_builtins(warm) == msgspec.to_builtins(_cold(monkeypatch, new, view, [], now=NOW))
