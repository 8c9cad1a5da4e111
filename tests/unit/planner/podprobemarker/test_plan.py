"""The PodProbeMarker planner: probe results become pod markers and a condition, written through the
pod status endpoint; removing a marker or a probe removes exactly what it set (Kruise's
`pkg/controller/nodepodprobe/node_pod_probe_controller_test.go` "test3, marker policy", I9, and the
ownership rules of services/planner/podprobemarker/plan.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from schemas.constants import ANNOTATION_DELETION_COST, ANNOTATION_PROBE_MARKERS
from schemas.kube import Pod
from schemas.messages import Command, PatchOp, ProbeResult
from schemas.podprobemarker import PodProbeMarker
from services.planner.podprobemarker.plan import plan_podprobemarker, pod_records
from tests.unit.planner.podprobemarker.fixtures import pod, ppm, result

NOW = datetime(2026, 1, 1, tzinfo=UTC)
COST = ANNOTATION_DELETION_COST
EXEC = {"exec": {"command": ["/probe.sh"]}}


def marker_commands(plan_commands: list[Command]) -> list[Command]:
    return [c for c in plan_commands if c.verb == "probe"]


def apply(p: Pod, cmd: Command) -> Pod:
    """What the API server's strategic merge on pods/status does with the command's body."""
    [op] = cmd.ops
    assert isinstance(op, PatchOp) and op.subresource == "status" and op.patch_type == "strategic"
    body: dict[str, Any] = op.patch  # type: ignore[assignment]
    assert body["metadata"]["uid"] == p.metadata.uid
    raw = msgspec.to_builtins(p)
    meta = raw["metadata"]
    for field in ("labels", "annotations"):
        current = dict(meta.get(field) or {})
        for k, v in (body["metadata"].get(field) or {}).items():
            if v is None:
                current.pop(k, None)
            else:
                current[k] = v
        meta[field] = current
    conds = {c["type"]: c for c in raw["status"].get("conditions") or []}
    for c in (body.get("status") or {}).get("conditions") or []:
        if c.get("$patch") == "delete":
            conds.pop(c["type"], None)
        else:
            conds[c["type"]] = {**conds.get(c["type"], {}), **c}
    raw["status"]["conditions"] = list(conds.values())
    meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
    return msgspec.convert(raw, Pod)


def converge(marker: PodProbeMarker, pods: list[Pod], results: list[ProbeResult],
             markers: list[PodProbeMarker] | None = None) -> tuple[list[Pod], list[Command]]:
    """Plan and apply until nothing is written (at most 3 passes); every command written on the way."""
    written: list[Command] = []
    for _ in range(3):
        cmds = marker_commands(plan_podprobemarker(marker, pods, results, None, now=NOW).commands)
        if not cmds:
            return pods, written
        written += cmds
        by_uid = {c.pod_uid: c for c in cmds}
        pods = [apply(p, by_uid[p.metadata.uid]) if p.metadata.uid in by_uid else p for p in pods]
    raise AssertionError("the planner kept writing")


def test_I9_failed_result_removes_succeeded_keys_and_sets_failed_ones() -> None:
    start = pod(labels={"server-healthy": "true"}, annotations={COST: "10"})
    [after], written = converge(ppm(), [start], [result(state="Failed", message="boom")])
    assert after.metadata.labels["server-healthy"] == "false"
    assert after.metadata.annotations[COST] == "-10", "a key both policies set ends with the matched value"
    cond = after.status.condition("game.kruise.io/healthy")
    assert cond is not None and cond.status == "False" and cond.message == "boom"
    assert written[0].on_success is not None and written[0].on_success.reason == "KruiseProbeFailed"
    assert written[0].on_success.involved is not None and written[0].on_success.involved.name == "pod-1"


def test_succeeded_sets_markers_condition_true_and_event() -> None:
    [after], written = converge(ppm(), [pod()], [result(message="ok")])
    assert after.metadata.labels["server-healthy"] == "true" and after.metadata.annotations[COST] == "10"
    cond = after.status.condition("game.kruise.io/healthy")
    assert cond is not None and cond.status == "True" and cond.message == "ok"
    assert len(written) == 1 and written[0].on_success is not None
    assert written[0].on_success.reason == "KruiseProbeSucceeded"


def test_no_write_while_results_are_unchanged() -> None:
    [after], _ = converge(ppm(), [pod()], [result()])
    refreshed = msgspec.structs.replace(result(), time="2026-01-01T00:10:00Z")  # re-reported after 600 s
    assert marker_commands(plan_podprobemarker(ppm(), [after], [refreshed], None, now=NOW).commands) == []


def test_unknown_removes_the_opposite_keys_only_and_sets_condition_false() -> None:
    """Kruise's rule: with no matching policy, the last other policy's keys are removed."""
    [marked], _ = converge(ppm(), [pod()], [result(state="Failed")])
    [after], _ = converge(ppm(), [marked], [result(state="Unknown", transition="2026-01-01T00:01:00Z")])
    assert "server-healthy" not in after.metadata.labels and COST not in after.metadata.annotations
    cond = after.status.condition("game.kruise.io/healthy")
    assert cond is not None and cond.status == "False"


def test_a_flip_back_is_written_again() -> None:
    """A->B->A within the duplicate window: the third write has its own command id."""
    p = pod()
    ids = []
    for state, at in (("Succeeded", "00:00"), ("Failed", "00:01"), ("Succeeded", "00:02")):
        [p], written = converge(ppm(), [p], [result(state=state, transition=f"2026-01-01T{at}:00Z")])
        ids += [c.id for c in written]
    assert len(ids) == len(set(ids)) == 3
    assert p.metadata.labels["server-healthy"] == "true"


def test_deleting_a_marker_removes_exactly_its_own_markers_not_a_prefix_sharing_one() -> None:
    """`pm-1` is deleted; `ppm-1` (whose name contains `pm-1#`) keeps everything it set."""
    pm1 = ppm("pm-1", probes=[{"name": "healthy", "containerName": "main", "probe": EXEC,
                               "markerPolicy": [{"state": "Succeeded", "labels": {"pm1-ok": "true"}}]}])
    ppm1 = ppm("ppm-1", probes=[{"name": "healthy", "containerName": "main", "podConditionType": "x.io/h",
                                 "probe": EXEC, "markerPolicy": [{"state": "Succeeded", "labels": {"ppm1-ok": "true"}}]}])
    [p], _ = converge(pm1, [pod()], [result("pm-1#healthy")])
    [p], _ = converge(ppm1, [p], [result("ppm-1#healthy")])
    assert set(pod_records(p)) == {"pm-1#healthy", "ppm-1#healthy"}
    gone = msgspec.structs.replace(pm1, metadata=msgspec.structs.replace(pm1.metadata,
                                                                          deletion_timestamp="2026-01-01T00:05:00Z"))
    [p], _ = converge(gone, [p], [result("pm-1#healthy")])
    assert "pm1-ok" not in p.metadata.labels
    assert p.metadata.labels["ppm1-ok"] == "true" and p.status.condition("x.io/h") is not None
    assert set(pod_records(p)) == {"ppm-1#healthy"}
    finalizer = [c for c in plan_podprobemarker(gone, [p], [], None, now=NOW).commands if c.verb == "finalizer"]
    assert len(finalizer) == 1, "with its pods clean, the marker's finalizer is removed"


def test_removing_a_probe_removes_its_markers_and_condition_but_a_shared_key_stays() -> None:
    two = ppm("ppm-1", probes=[
        {"name": "a", "containerName": "main", "podConditionType": "x.io/a", "probe": EXEC,
         "markerPolicy": [{"state": "Succeeded", "labels": {"a": "1", "shared": "yes"}}]},
        {"name": "b", "containerName": "main", "podConditionType": "x.io/b", "probe": EXEC,
         "markerPolicy": [{"state": "Succeeded", "labels": {"b": "1", "shared": "yes"}}]},
    ])
    [p], _ = converge(two, [pod()], [result("ppm-1#a"), result("ppm-1#b")])
    one = ppm("ppm-1", probes=[msgspec.to_builtins(two.spec.probes[1])])
    [p], _ = converge(one, [p], [result("ppm-1#a"), result("ppm-1#b")])
    assert "a" not in p.metadata.labels and p.status.condition("x.io/a") is None
    assert p.metadata.labels["b"] == "1" and p.metadata.labels["shared"] == "yes", \
        "a key another probe's record claims stays"
    assert set(pod_records(p)) == {"ppm-1#b"}


def test_a_pod_the_marker_no_longer_selects_loses_its_markers() -> None:
    [p], _ = converge(ppm(), [pod()], [result()])
    unselected = msgspec.structs.replace(p, metadata=msgspec.structs.replace(p.metadata, labels={
        **{k: v for k, v in p.metadata.labels.items() if k != "app"}, "app": "other"}))
    [after], _ = converge(ppm(), [unselected], [result()])
    assert "server-healthy" not in after.metadata.labels and ANNOTATION_PROBE_MARKERS not in after.metadata.annotations


def test_the_finalizer_is_added_then_status_counts_matched_pods() -> None:
    fresh = ppm()
    fresh = msgspec.structs.replace(fresh, metadata=msgspec.structs.replace(fresh.metadata, finalizers=[]))
    pods = [pod("a"), pod("b"), pod("c", initialized=False)]
    plan = plan_podprobemarker(fresh, pods, [], None, now=NOW)
    assert [c.verb for c in plan.commands] == ["finalizer"], "the status waits for the finalizer's new version"
    plan = plan_podprobemarker(ppm(), pods, [], None, now=NOW)
    [status] = plan.commands
    assert status.verb == "status" and plan.matched_pods == 2
    assert status.ops[0].patch["status"]["matchedPods"] == 2  # type: ignore[union-attr,index,call-overload]


@pytest.mark.parametrize("change", [{"probes": []}], ids=["no-probes"])
def test_an_invalid_marker_is_reported_and_never_run(change: dict[str, Any]) -> None:
    bad = ppm(**change)
    plan = plan_podprobemarker(bad, [pod()], [result()], None, now=NOW)
    assert [c.verb for c in plan.commands] == ["invalid-spec"]
    assert [(e.type, e.field) for e in plan.events] == [("rejected", "spec.probes")]
    assert not plan.accepted


def test_the_event_is_the_changed_probe_s_even_when_policies_share_a_key() -> None:
    """Both policies set the deletion cost; an unchanged probe must not claim the Event of another."""
    two = ppm("ppm-1", probes=[
        {"name": "a", "containerName": "main", "probe": EXEC, "markerPolicy": [
            {"state": "Succeeded", "annotations": {COST: "-10"}}, {"state": "Failed", "annotations": {COST: "10"}}]},
        {"name": "b", "containerName": "main", "probe": EXEC, "podConditionType": "x.io/b"},
    ])
    [p], _ = converge(two, [pod()], [result("ppm-1#a"), result("ppm-1#b", "Succeeded", "up")])
    [p], written = converge(two, [p], [result("ppm-1#a"), result("ppm-1#b", "Failed", "down",
                                                                  transition="2026-01-01T00:01:00Z")])
    assert len(written) == 1 and written[0].on_success is not None
    assert (written[0].on_success.reason, written[0].on_success.message) == ("KruiseProbeFailed", "down")
    assert p.metadata.annotations[COST] == "-10"


def test_planning_on_lean_pods_gives_the_same_plan() -> None:
    """The planner service keeps `lean_pod` copies of every pod for the markers."""
    from services.planner.podprobemarker.lean import lean_pod

    [marked], _ = converge(ppm(), [pod(ports=[{"name": "http", "containerPort": 80}])], [result(message="ok")])
    cases = [
        ([pod()], [result()]),
        ([marked], [result(message="ok")]),  # nothing to do
        ([marked], [result(state="Failed", message="down", transition="2026-01-01T00:01:00Z")]),
        ([marked], [result(state="Unknown", transition="2026-01-01T00:02:00Z")]),
    ]
    for pods, results in cases:
        full = plan_podprobemarker(ppm(), pods, results, None, now=NOW)
        lean = plan_podprobemarker(ppm(), [lean_pod(p) for p in pods], results, None, now=NOW)
        assert msgspec.json.encode(full.commands) == msgspec.json.encode(lean.commands)
        assert full.matched_pods == lean.matched_pods
