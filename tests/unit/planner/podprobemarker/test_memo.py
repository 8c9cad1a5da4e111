"""The PodProbeMarker pass memoises each pod's facts (`kit.memo`) and each pod's decision with the inputs
it was made from; this property checks that a memoised pass decides exactly what a pass from a cold memo
decides while, between passes, pods take the planner's writes, are relabelled out of the selector or
replaced, results flip or disappear, and the marker's spec changes or it is deleted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.kube import Pod
from schemas.messages import ProbeResult
from schemas.podprobemarker import PodProbeMarker
from services.planner.kit.memo import MemoRegistry
from services.planner.podprobemarker import plan as ppm_plan
from services.planner.podprobemarker.plan import plan_podprobemarker
from tests.unit.planner.podprobemarker.fixtures import pod, ppm, result
from tests.unit.planner.podprobemarker.test_plan import apply, marker_commands

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PROBE = "ppm-1#healthy"


def _cold(monkeypatch: pytest.MonkeyPatch, *args: Any, **kw: Any) -> Any:
    with monkeypatch.context() as m:
        m.setattr(ppm_plan, "_FACTS", MemoRegistry())
        return plan_podprobemarker(*args, **kw)


def _relabelled(p: Pod, rv: int) -> Pod:
    meta = msgspec.structs.replace(p.metadata, labels={**p.metadata.labels, "app": "other"}, resource_version=str(rv))
    return msgspec.structs.replace(p, metadata=meta)


def _deleting(marker: PodProbeMarker) -> PodProbeMarker:
    meta = msgspec.structs.replace(marker.metadata, deletion_timestamp="2026-01-01T00:00:00Z")
    return msgspec.structs.replace(marker, metadata=meta)


# a step: (what, which pod)
STEPS = st.lists(st.tuples(st.sampled_from(["apply", "flip", "drop", "relabel", "replace", "spec", "delete"]),
                           st.integers(0, 7)), max_size=14)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 8), steps=STEPS)
def test_a_memoised_pass_decides_what_a_cold_pass_decides(monkeypatch: pytest.MonkeyPatch, n: int,
                                                          steps: list[tuple[str, int]]) -> None:
    ppm_plan._FACTS.clear()
    marker = ppm()
    pods = [pod(f"pod-{i}") for i in range(n)]
    results: dict[str, ProbeResult] = {f"pod-{i}": result(pod_name=f"pod-{i}") for i in range(n)}
    rv = 100
    for what, i in [("apply", 0), *steps]:
        i %= n
        name = f"pod-{i}"
        rv += 1
        if what == "flip":
            old = results.get(name)
            state = "Failed" if old is None or old.state == "Succeeded" else "Succeeded"
            results[name] = result(pod_name=name, state=state, transition=f"2026-01-01T00:{rv % 60:02d}:00Z")
        elif what == "drop":
            results.pop(name, None)
        elif what == "relabel":
            pods[i] = _relabelled(pods[i], rv)
        elif what == "replace":  # the same pod again, as a new object at a new resourceVersion
            raw = msgspec.to_builtins(pods[i])
            raw["metadata"]["resourceVersion"] = str(rv)
            pods[i] = msgspec.convert(raw, Pod)
        elif what == "spec":
            marker = ppm(selector={"matchLabels": {"app": "other" if rv % 2 else "test"}})
        elif what == "delete":
            marker = _deleting(marker)
        view = list(results.values())
        warm = plan_podprobemarker(marker, pods, view, None, now=NOW)
        cold = _cold(monkeypatch, marker, pods, view, None, now=NOW)
        assert msgspec.to_builtins(warm.commands) == msgspec.to_builtins(cold.commands)
        assert warm.matched_pods == cold.matched_pods
        if what == "apply":  # the API server applies what the pass wrote
            by_uid = {c.pod_uid: c for c in marker_commands(warm.commands)}
            pods = [apply(p, by_uid[p.metadata.uid]) if p.metadata.uid in by_uid else p for p in pods]


def test_a_pass_with_unchanged_inputs_reuses_every_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the pods whose results changed are decided again (counted through the pod decision)."""
    ppm_plan._FACTS.clear()
    marker = ppm()
    pods = [pod(f"pod-{i}") for i in range(200)]
    results = [result(pod_name=f"pod-{i}") for i in range(200)]
    calls: list[str] = []
    real = ppm_plan._pod_change

    def counting(m: PodProbeMarker, p: Pod, *args: Any) -> Any:
        calls.append(p.metadata.name)
        return real(m, p, *args)

    monkeypatch.setattr(ppm_plan, "_pod_change", counting)
    first = plan_podprobemarker(marker, pods, results, None, now=NOW)
    assert len(calls) == 200 and len(marker_commands(first.commands)) == 200
    calls.clear()
    results[7] = result(pod_name="pod-7", state="Failed")
    again = plan_podprobemarker(marker, pods, results, None, now=NOW)
    assert calls == ["pod-7"]
    assert len(marker_commands(again.commands)) == 200  # nothing was applied: every pod still needs its write
