"""Advanced DaemonSet image pre-download behind PreDownloadImageForDaemonSetUpdate: Kruise's L39 row, the
parallelism and timeout annotations as Kruise parses them, the one-batch skip, the jobs' names, selector and
deletion once the rollout is done; off by default."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates
from tests.unit.planner.daemonset.helpers import NOW, DsCluster, ds_dict, rolling

GATES = parse_feature_gates("PreDownloadImageForDaemonSetUpdate=true", DEFAULT_GATES)
NODES = [f"node-{i}" for i in range(6)]


def rollout(strategy: dict[str, Any], annotations: dict[str, str] | None = None, *, gates: Any = GATES,
            nodes: list[str] | None = None) -> tuple[DsCluster, Any]:
    c = DsCluster(ds_dict(strategy=strategy, annotations=annotations), nodes or NODES)
    now = c.settle(NOW, gates)
    c.set_image("nginx:2.0")
    return c, now


def test_l39_on_delete_gets_one_job_per_changed_container_and_no_pod_is_deleted() -> None:
    c, now = rollout({"type": "OnDelete", "rollingUpdate": {}})
    plan = c.step(now + timedelta(seconds=1), GATES)  # the revision
    plan = c.step(now + timedelta(seconds=2), GATES)
    rev = next(r for r in c.revisions.values() if r["metadata"]["name"] == plan.update_revision)
    assert list(c.jobs) == [f"{rev['metadata']['name']}-c"]
    job = c.jobs[f"{rev['metadata']['name']}-c"]
    assert job["spec"]["parallelism"] == 1
    assert job["spec"]["pullPolicy"] == {"backoffLimit": 1, "timeoutSeconds": 300}
    assert job["spec"]["completionPolicy"] == {"type": "Always", "ttlSecondsAfterFinished": 600}
    assert job["metadata"]["labels"]["controller.kubernetes.io/hash"] == ""
    assert job["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert rev["metadata"]["labels"]["apps.kruise.io/pre-predownload-created"] == "true"
    assert plan.deleted == []
    assert ("CreatedImagePullJob", f"created ImagePullJob {rev['metadata']['name']}-c for image: nginx:2.0") \
        in c.k8s_events
    [create] = [cmd for cmd in plan.commands if cmd.verb == "imagepulljob-create"]
    assert create.on_failure is not None and (create.on_failure.type, create.on_failure.reason) == (
        "Normal", "FailedCreateImagePullJob")  # Normal, as in Kruise (the executor keeps the type)


def test_jobs_target_the_nodes_of_pods_not_yet_updated() -> None:
    """The documented deviation: the selector excludes the hash the updated pods carry."""
    c, now = rollout(rolling(maxUnavailable=1))
    c.step(now + timedelta(seconds=1), GATES)
    plan = c.step(now + timedelta(seconds=2), GATES)
    job = next(iter(c.jobs.values()))
    hash_ = plan.update_revision.rsplit("-", 1)[-1]
    assert job["spec"]["podSelector"] == {"matchLabels": {"app": "d"}, "matchExpressions": [
        {"key": "controller-revision-hash", "operator": "NotIn", "values": [plan.update_revision, hash_]}]}


@pytest.mark.parametrize(
    ("annotation", "want"),
    [pytest.param("10", 10, id="ten"), pytest.param("0", 0, id="zero-pauses"),
     pytest.param("50%", 1, id="percent-is-1"), pytest.param("abc", 1, id="garbage-is-1"),
     pytest.param("-2", -2, id="negative-passed-on")],
)
def test_parallelism_annotation(annotation: str, want: int) -> None:
    c, now = rollout(rolling(maxUnavailable=1), {"apps.kruise.io/image-predownload-parallelism": annotation,
                                                 "apps.kruise.io/image-predownload-timeout-seconds": "x"})
    c.step(now + timedelta(seconds=1), GATES)
    c.step(now + timedelta(seconds=2), GATES)
    job = next(iter(c.jobs.values()))
    assert job["spec"]["parallelism"] == want
    assert job["spec"]["pullPolicy"]["timeoutSeconds"] == 300  # unparsable timeout: the default


def test_a_rollout_in_one_batch_is_ignored() -> None:
    c, now = rollout(rolling(maxUnavailable="100%"))
    c.step(now + timedelta(seconds=1), GATES)
    plan = c.step(now + timedelta(seconds=2), GATES)
    rev = c.revisions[plan.update_revision]
    assert c.jobs == {} and rev["metadata"]["labels"]["apps.kruise.io/image-predownload-ignored"] == "true"


def test_jobs_are_deleted_once_the_rollout_is_done_and_the_gate_is_off_by_default() -> None:
    c, now = rollout(rolling(maxUnavailable=2))
    now = c.settle(now + timedelta(seconds=1), GATES)
    assert c.jobs == {}  # created during the rollout, deleted when updated == desired
    assert any(cmd.verb == "imagepulljob-delete" for cmd in c.applied)
    off, now = rollout(rolling(maxUnavailable=2), gates=DEFAULT_GATES)
    off.settle(now + timedelta(seconds=1))
    assert off.jobs == {} and not any(cmd.verb == "imagepulljob-create" for cmd in off.applied)
