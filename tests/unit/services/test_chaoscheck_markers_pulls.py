"""The chaos checker's PodProbeMarker and ImagePullJob rules on hand-made objects: a pod whose markers
lag or contradict its probe's current outcome, a stale key of the previous outcome, a pull job that
has not finished on every node and a node that downloaded a job's image twice are flagged; the
settled states a user expects are not."""

from __future__ import annotations

from typing import Any

import msgspec

from bench.chaos import BUSY, CONDITION, IDLE, PROBE, marker_body
from schemas.constants import ANNOTATION_DELETION_COST as DELETION_COST
from schemas.imagepulljob import ImagePullJob
from schemas.kube import Pod
from schemas.podprobemarker import PodProbeMarker
from services.chaoscheck import (
    PULLED_TWICE,
    Checker,
    ProbeOutcome,
    marker_problems,
    pull_job_problems,
    repeated_pulls,
)
from services.planner.kit.selectors import matches

PPM = msgspec.convert(marker_body(), PodProbeMarker)
OK = ProbeOutcome("Succeeded", "idle r3")
FAIL = ProbeOutcome("Failed", "busy r3")


def pod(name: str, labels: dict[str, str], annotations: dict[str, str],
        condition: tuple[str, str] | None, *, deleting: bool = False) -> Pod:
    conditions = [{"type": "Ready", "status": "True"}]
    if condition is not None:
        conditions.append({"type": CONDITION, "status": condition[0], "message": condition[1]})
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                            "labels": {"app": "probed", **labels}, "annotations": annotations}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return msgspec.convert({"metadata": meta, "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "a"}]},
                            "status": {"phase": "Running", "conditions": conditions}}, Pod)


def idle(name: str = "p0", message: str = "idle r3") -> Pod:
    return pod(name, {IDLE: "true"}, {DELETION_COST: "-10"}, ("True", message))


def busy(name: str = "p0", message: str = "busy r3") -> Pod:
    return pod(name, {IDLE: "false"}, {DELETION_COST: "10", BUSY: "true"}, ("False", message))


def test_pods_showing_their_current_outcomes_have_converged() -> None:
    assert marker_problems(PPM, [idle("p0"), busy("p1")], {"p0": {PROBE: OK}, "p1": {PROBE: FAIL}}) == []


def test_a_pod_still_showing_the_previous_outcome_is_not_converged() -> None:
    problems = marker_problems(PPM, [idle("p0")], {"p0": {PROBE: FAIL}})
    text = "\n".join(problems)
    assert "labels {'soak-idle': 'true'}" in text, text
    assert "annotations" in text and BUSY in text, text
    assert "condition soak.kruisebus.io/idle True 'idle r3', want False 'busy r3'" in text, text


def test_a_stale_key_of_the_other_state_left_on_the_pod_is_flagged() -> None:
    """Succeeded again, values right, but the Failed policy's own annotation was never removed."""
    stale = pod("p0", {IDLE: "true"}, {DELETION_COST: "-10", BUSY: "true"}, ("True", "idle r3"))
    assert marker_problems(PPM, [stale], {"p0": {PROBE: OK}}) == [
        f"pod p0 probe {PROBE} (Succeeded 'idle r3'): stale annotations of the other state: ['{BUSY}']"]


def test_an_old_condition_message_or_a_missing_condition_is_flagged() -> None:
    assert marker_problems(PPM, [idle("p0", "idle r2")], {"p0": {PROBE: OK}}) == [
        f"pod p0 probe {PROBE} (Succeeded 'idle r3'): condition {CONDITION} True 'idle r2', want True 'idle r3'"]
    bare = pod("p0", {IDLE: "true"}, {DELETION_COST: "-10"}, None)
    assert [p.split(": ", 1)[1] for p in marker_problems(PPM, [bare], {"p0": {PROBE: OK}})] == [
        f"condition {CONDITION} missing, want True 'idle r3'"]


def test_pods_without_an_outcome_set_are_not_judged_a_missing_or_deleted_probed_pod_is() -> None:
    unmarked = pod("p0", {}, {}, None)
    assert marker_problems(PPM, [unmarked], {}) == []
    gone = "pod p1 has a probe outcome but the marker selects no such active pod"
    assert marker_problems(PPM, [pod("p1", {}, {}, None, deleting=True)], {"p1": {PROBE: OK}}) == [gone]
    assert marker_problems(PPM, [], {"p1": {PROBE: OK}}) == [gone]


def test_the_soak_marker_selects_its_pods_only() -> None:
    assert matches(PPM.spec.selector, idle().metadata.labels)
    assert not matches(PPM.spec.selector, {"app": "inplace"})


def job(**status: Any) -> ImagePullJob:
    return msgspec.convert({"metadata": {"name": "pull-r1-0", "namespace": "default", "uid": "j"},
                            "spec": {"image": "img:v9"}, "status": status}, ImagePullJob)


def test_a_job_finished_on_every_node_has_converged() -> None:
    done = job(desired=4, succeeded=4, completionTime="2026-01-01T00:00:05Z", message="job has completed")
    assert pull_job_problems(done, 4) == []


def test_an_unfinished_job_a_job_short_of_nodes_and_a_failed_node_are_not_converged() -> None:
    running = job(desired=4, succeeded=2, active=2, message="job is running, progress 50.0%")
    assert pull_job_problems(running, 4) == [
        "not finished (job is running, progress 50.0%)", "succeeded 2 of desired 4, failed 0 [], active 2"]
    few = job(desired=0, completionTime="2026-01-01T00:00:05Z", message="job has completed")
    assert pull_job_problems(few, 4) == ["status.desired 0, want 4 (every node)"]
    failed = job(desired=4, succeeded=3, failed=1, failedNodes=["n2"], completionTime="2026-01-01T00:00:05Z")
    assert pull_job_problems(failed, 4) == ["succeeded 3 of desired 4, failed 1 ['n2'], active 0"]


def test_a_node_downloading_a_job_image_twice_is_flagged_other_images_are_not() -> None:
    log = {"n1": ["img:v1", "img:v9", "img:v9"], "n2": ["img:v9", "img:v1", "img:v1"]}
    [f] = repeated_pulls(log, {"img:v9"})
    assert (f.kind, f.value, f.limit, f.detail) == (PULLED_TWICE, 2, 1, "node n1 downloaded img:v9 2 times")
    assert repeated_pulls({"n1": ["img:v9"], "n2": ["img:v9"]}, {"img:v9"}) == []


def test_the_checker_records_a_repeated_download_once_and_again_only_when_it_grows() -> None:
    checker = Checker(clock=lambda: 0.0)
    log = {"n1": ["img:v9", "img:v9"]}
    assert [v.workload for v in checker.check_pulls(log, {"img:v9"})] == ["nodes/n1"]
    assert checker.check_pulls(log, {"img:v9"}) == []
    assert len(checker.check_pulls({"n1": ["img:v9"] * 3}, {"img:v9"})) == 1
    assert checker.counts()[PULLED_TWICE] == 2
