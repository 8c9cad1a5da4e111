"""The ImagePullJob controller pass (`pkg/controller/imagepulljob`): targets, parallelism, sync, status,
completion, TTL; Kruise's scenario rows J7 and J8 each their own test."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet
from schemas.constants import IMAGE_PULL_JOB_TARGET_GRACE_SECONDS
from schemas.messages import DeleteOp, PatchOp
from schemas.nodeimage import NodeImage
from services.planner.imagepulljob.job import JobPlan, JobView, plan_image_pull_job
from services.planner.imagepulljob.tags import jitter
from services.planner.kit.gates import parse_feature_gates
from tests.unit.planner.imagepulljob.builders import (
    JOB_UID,
    NOW,
    ago,
    job,
    node_image,
    owned_tag,
    pod,
    tag_status,
)

GATES = parse_feature_gates("ImagePullJobGate=true")


def run(j: Any, nis: list[NodeImage], **kw: Any) -> JobPlan:
    return plan_image_pull_job(JobView(job=j, node_images=nis, **kw), now=NOW, gates=GATES)


def spec_writes(plan: JobPlan) -> dict[str, dict[str, Any]]:
    """NodeImage name -> the `spec.images` it writes."""
    out: dict[str, dict[str, Any]] = {}
    for c in plan.commands:
        for op in c.ops:
            if isinstance(op, PatchOp) and op.resource.plural == "nodeimages":
                assert isinstance(op.patch, dict)
                out[op.name] = op.patch["spec"]["images"]
    return out


def status_write(plan: JobPlan) -> dict[str, Any] | None:
    for c in plan.commands:
        if c.verb == "status":
            op = c.ops[0]
            assert isinstance(op, PatchOp) and isinstance(op.patch, dict)
            return dict(op.patch["status"])
    return None


def empty(*names: str) -> list[NodeImage]:
    return [node_image(n) for n in names]


# --- Kruise's scenario rows ------------------------------------------------------------------------


def test_J7_job_completed_with_completion_policy() -> None:
    ni = node_image("node1", tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Succeeded")]})
    plan = run(job(status={"startTime": ago(60)}), [ni])
    s = plan.status
    assert (s.desired, s.succeeded, s.failed, s.active) == (1, 1, 0, 0)
    assert s.message == "job has completed" and s.completion_time is not None


def test_J8_job_timeout_with_active_deadline_seconds() -> None:
    ni = node_image("node1", tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Pulling")]})
    j = job(
        completion={"type": "Always", "activeDeadlineSeconds": 300},
        pull_policy={"timeoutSeconds": 60},
        status={"startTime": ago(600)},
    )
    s = run(j, [ni]).status
    assert s.failed == 1 and s.failed_nodes == ["node1"]
    assert s.message == "job exceeds activeDeadlineSeconds" and s.completion_time is not None


# --- status ----------------------------------------------------------------------------------------


def test_progress_message_one_decimal() -> None:
    nis = [node_image("n0", tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Succeeded")]})]
    nis += [node_image(f"n{i}", tags={"nginx": [owned_tag()]}) for i in range(1, 8)]
    s = run(job(parallelism=8, status={"startTime": ago(5)}), nis).status
    assert (s.desired, s.succeeded, s.active) == (8, 1, 7)
    assert s.message == "job is running, progress 12.5%"


def test_no_targets_never_job_says_no_progress() -> None:
    s = run(job(completion={"type": "Never"}), []).status
    assert s.desired == 0 and s.message == "job is running, no progress" and s.completion_time is None


def test_always_job_without_targets_completes() -> None:
    s = run(job(creationTimestamp=ago(60)), []).status
    assert s.completion_time is not None and s.message == "job has completed"


@pytest.mark.parametrize(("age", "waits"), [
    pytest.param(0, 5.0, id="just-created"),
    pytest.param(2, 3.0, id="2s-old"),
    pytest.param(IMAGE_PULL_JOB_TARGET_GRACE_SECONDS, None, id="grace-over"),
])
def test_a_new_job_without_targets_waits_for_its_nodeimages(age: float, waits: float | None) -> None:
    """The job's watch can overtake its NodeImages' (a job created right after the nodes got theirs):
    for a few seconds after its creation a job that matches no NodeImage stays Running and is looked at
    again when the grace ends, instead of completing with desired 0 as Kruise would on that view."""
    plan = run(job(creationTimestamp=ago(age)), [])
    if waits is None:
        assert plan.status.completion_time is not None and plan.requeue_after is None
        return
    assert plan.status.completion_time is None and plan.status.desired == 0
    assert plan.status.message == "job is running, no progress" and plan.requeue_after == waits
    assert not [e for e in plan.events if e.type == "job-completed"]
    # once its NodeImage is seen it proceeds as usual, well within the grace
    seen = run(job(creationTimestamp=ago(age)), [node_image("n1")])
    assert spec_writes(seen).keys() == {"n1"} and seen.status.desired == 1 and seen.requeue_after is None


def test_the_grace_is_counted_from_the_start_time_without_a_creation_timestamp() -> None:
    assert run(job(status={"startTime": ago(1)}), []).requeue_after == 4.0
    assert run(job(status={"startTime": ago(9)}), []).status.completion_time is not None


def test_failed_nodes_sorted() -> None:
    nis = [
        node_image(n, tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Failed")]})
        for n in ("zeta", "alpha", "mid")
    ]
    s = run(job(selector={"names": ["zeta", "alpha", "mid"]}), nis).status
    assert s.failed_nodes == ["alpha", "mid", "zeta"] and s.failed == 3


def test_status_of_another_version_counts_as_pulling() -> None:
    ni = node_image(
        "n1", tags={"nginx": [owned_tag(version=2)]}, statuses={"nginx": [tag_status("Succeeded", version=1)]}
    )
    s = run(job(), [ni]).status
    assert (s.active, s.succeeded) == (1, 0)


def test_tag_owned_by_another_job_is_not_synced() -> None:
    ni = node_image(
        "n1",
        tags={"nginx": [owned_tag(uid="other", version=3)]},
        statuses={"nginx": [tag_status("Succeeded", version=3)]},
    )
    plan = run(job(), [ni])
    assert plan.status.active == 0 and plan.status.succeeded == 0
    tags = spec_writes(plan)["n1"]["nginx"]["tags"]
    assert tags[0]["version"] == 4  # a new round for this job
    assert [r["uid"] for r in tags[0]["ownerReferences"]] == ["other", JOB_UID]


def test_never_job_does_not_complete() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Succeeded")]})
    s = run(job(completion={"type": "Never"}), [ni]).status
    assert s.completion_time is None and s.message == "job is running, progress 100.0%"


def test_status_written_only_when_it_changes() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag()]})
    first = run(job(), [ni])
    body = status_write(first)
    assert body is not None and body["active"] == 1 and body["succeeded"] == 0  # zeros are written
    again = run(job(status=msgspec.to_builtins(first.status)), [ni])
    assert status_write(again) is None


# --- targets ---------------------------------------------------------------------------------------


def test_names_selector_in_given_order_missing_skipped() -> None:
    plan = run(job(selector={"names": ["c", "missing", "a"]}, parallelism=5), empty("a", "b", "c"))
    assert plan.targets == ["c", "a"] and plan.next_nodes == ["c", "a"]


def test_label_selector_matches_mirrored_node_labels() -> None:
    nis = [node_image("a", labels={"zone": "x"}), node_image("b", labels={"zone": "y"})]
    plan = run(job(selector={"matchLabels": {"zone": "y"}}, parallelism=5), nis)
    assert plan.targets == ["b"]


def test_no_selector_targets_every_node_image() -> None:
    assert run(job(parallelism=5), empty("a", "b", "c")).targets == ["a", "b", "c"]


def test_pod_selector_targets_nodes_of_active_scheduled_matching_pods() -> None:
    pods = [
        pod("p1", "n1", labels={"app": "a"}),
        pod("p2", "n1", labels={"app": "a"}),
        pod("p3", "n2", labels={"app": "a"}, phase="Succeeded"),
        pod("p4", "n3", labels={"app": "b"}),
        pod("p5", "", labels={"app": "a"}),
        pod("p6", "n4", labels={"app": "a"}, namespace="other"),
        pod("p7", "n5", labels={"app": "a"}),
    ]
    plan = run(
        job(pod_selector={"matchLabels": {"app": "a"}}, parallelism=9),
        empty("n1", "n2", "n3", "n4"),
        pods=pods,
    )  # n5 has no NodeImage
    assert plan.targets == ["n1"]


def _cloneset(priority: dict[str, Any]) -> CloneSet:
    return msgspec.convert(
        {
            "metadata": {"name": "cs", "namespace": "default", "uid": "cs-uid"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "a"}},
                "updateStrategy": {"type": "InPlaceIfPossible", "priorityStrategy": priority},
            },
        },
        CloneSet,
    )


def test_pod_selector_follows_the_owning_clonesets_update_order() -> None:
    pods = [pod(f"p{i}", f"n{i}", labels={"app": "a", "prio": str(w)}) for i, w in ((1, 1), (2, 9), (3, 5))]
    owner = {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "name": "cs",
        "uid": "cs-uid",
        "controller": True,
    }
    prio = {
        "weightPriority": [
            {"weight": 100, "matchSelector": {"matchLabels": {"prio": "9"}}},
            {"weight": 50, "matchSelector": {"matchLabels": {"prio": "5"}}},
        ]
    }
    j = job(pod_selector={"matchLabels": {"app": "a"}}, parallelism=1, owner=owner)
    plan = run(j, empty("n1", "n2", "n3"), pods=pods, owner=_cloneset(prio))
    assert plan.targets == ["n2", "n3", "n1"] and plan.next_nodes == ["n2"]
    assert run(j, empty("n1", "n2", "n3"), pods=pods).targets == ["n1", "n2", "n3"]  # no owner: name order


# --- parallelism and sync ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parallelism", "expected"),
    [(None, 1), (0, 0), (2, 2), ("3", 3), (10, 4)],
    ids=["default-1", "zero-pauses", "two", "int-string", "more-than-targets"],
)
def test_parallelism_limits_new_nodes(parallelism: Any, expected: int) -> None:
    plan = run(job(parallelism=parallelism), empty("a", "b", "c", "d"))
    assert len(plan.next_nodes) == expected and plan.next_nodes == ["a", "b", "c", "d"][:expected]


def test_active_pulls_use_up_parallelism() -> None:
    nis = [node_image("a", tags={"nginx": [owned_tag()]}), node_image("b"), node_image("c")]
    assert run(job(parallelism=2), nis).next_nodes == ["b"]
    done = [
        node_image("a", tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Succeeded")]}),
        node_image("b"),
        node_image("c"),
    ]
    assert run(job(parallelism=2), done).next_nodes == ["b", "c"]


def test_new_tag_entry() -> None:
    plan = run(
        job(pull_secrets=["reg"], completion={"type": "Always", "ttlSecondsAfterFinished": 100}), empty("a")
    )
    entry = spec_writes(plan)["a"]["nginx"]
    [tag] = entry["tags"]
    assert tag["tag"] == "1.21" and tag.get("version", 0) == 0 and tag["createdAt"] == "2026-01-01T12:00:00Z"
    assert tag["imagePullPolicy"] == "IfNotPresent"
    assert tag["ownerReferences"] == [
        {
            "apiVersion": "apps.kruise.io/v1alpha1",
            "kind": "ImagePullJob",
            "namespace": "default",
            "name": "job",
            "uid": JOB_UID,
        }
    ]
    j = job(completion={"type": "Always", "ttlSecondsAfterFinished": 100})
    assert tag["pullPolicy"] == {
        "timeoutSeconds": 600,
        "backoffLimit": 3,
        "ttlSecondsAfterFinished": 100 + 300 + jitter(j, "a", 300),
    }
    assert entry["pullSecrets"] == [{"namespace": "default", "name": "reg"}]
    op = plan.commands[0].ops[0]
    assert isinstance(op, PatchOp) and op.patch["metadata"] == {"resourceVersion": "1"}  # type: ignore[call-overload,index]


def test_new_tag_version_follows_an_old_status() -> None:
    ni = node_image("a", statuses={"nginx": [tag_status("Succeeded", version=4)]})
    assert spec_writes(run(job(), [ni]))["a"]["nginx"]["tags"][0]["version"] == 5


def test_tags_sorted_by_tag() -> None:
    ni = node_image("a", tags={"nginx": [owned_tag(tag="2.0", uid="x")]})
    tags = spec_writes(run(job(image="nginx:1.21"), [ni]))["a"]["nginx"]["tags"]
    assert [t["tag"] for t in tags] == ["1.21", "2.0"]


@pytest.mark.parametrize(
    ("completion", "pull", "ttl_base", "deadline"),
    [
        ({"type": "Always"}, {"timeoutSeconds": 100, "backoffLimit": 2}, 200, None),
        ({"type": "Always", "activeDeadlineSeconds": 900}, {"timeoutSeconds": 600}, 900, 900),
        ({"type": "Always"}, {}, 1800, None),
    ],
    ids=["always-timeout-x-backoff", "always-deadline", "always-defaults-600x3"],
)
def test_always_tag_ttl(
    completion: dict[str, Any], pull: dict[str, Any], ttl_base: int, deadline: int | None
) -> None:
    j = job(completion=completion, pull_policy=pull)
    policy = spec_writes(run(j, empty("a")))["a"]["nginx"]["tags"][0]["pullPolicy"]
    assert policy["ttlSecondsAfterFinished"] == ttl_base + 300 + jitter(j, "a", 300)
    assert policy.get("activeDeadlineSeconds") == deadline


@pytest.mark.parametrize(
    ("timeout", "deadline"),
    [(600, 1800), (3600, 3600), (None, 1800)],
    ids=["timeout-below-1800", "timeout-above-1800", "no-timeout"],
)
def test_never_tag_ttl_and_deadline(timeout: int | None, deadline: int) -> None:
    j = job(completion={"type": "Never"}, pull_policy={"timeoutSeconds": timeout} if timeout else {})
    policy = spec_writes(run(j, empty("a")))["a"]["nginx"]["tags"][0]["pullPolicy"]
    assert policy["activeDeadlineSeconds"] == deadline
    assert 24 * 3600 - 600 <= policy["ttlSecondsAfterFinished"] < 24 * 3600 + 600


def test_missing_pull_secret_resyncs_an_owned_tag() -> None:
    ni = node_image("a", tags={"nginx": [owned_tag()]})
    assert run(job(pull_secrets=["reg"]), [ni]).next_nodes == []  # active, and it fills parallelism 1
    plan = run(job(pull_secrets=["reg"], parallelism=2), [ni])
    assert plan.next_nodes == ["a"]  # counted active and not synced: the secret is added
    assert spec_writes(plan)["a"]["nginx"]["pullSecrets"] == [{"namespace": "default", "name": "reg"}]
    assert spec_writes(plan)["a"]["nginx"]["tags"][0].get("version", 0) == 0  # same round


def test_digest_image_uses_the_digest_as_tag() -> None:
    digest = "sha256:" + "a" * 64
    tags = spec_writes(run(job(image=f"docker.io/library/nginx:1.21@{digest}"), empty("a")))["a"]["nginx"][
        "tags"
    ]
    assert tags[0]["tag"] == digest


# --- lifecycle: finalizer, completion, TTL, deadline ----------------------------------------------


def test_finalizer_added_when_missing() -> None:
    plan = run(job(finalizers=[]), empty("a"))
    fin = next(c for c in plan.commands if c.verb == "finalizer")
    assert fin.ops[0].patch[-1] == {
        "op": "add",
        "path": "/metadata/finalizers",  # type: ignore[union-attr]
        "value": ["apps.kruise.io/deletion-protection"],
    }


def test_finished_job_drops_finalizer_and_waits_for_ttl() -> None:
    j = job(
        completion={"type": "Always", "ttlSecondsAfterFinished": 600},
        status={"startTime": ago(900), "completionTime": ago(100), "desired": 1, "succeeded": 1},
    )
    plan = run(j, empty("a"))
    assert [c.verb for c in plan.commands] == ["finalizer"] and plan.requeue_after == 500


def test_finished_job_deleted_after_ttl() -> None:
    j = job(
        completion={"type": "Always", "ttlSecondsAfterFinished": 600},
        finalizers=[],
        status={"startTime": ago(900), "completionTime": ago(600)},
    )
    plan = run(j, empty("a"))
    assert [c.verb for c in plan.commands] == ["imagepulljob-delete"]
    op = plan.commands[0].ops[0]
    assert isinstance(op, DeleteOp) and op.uid == JOB_UID and op.resource.plural == "imagepulljobs"


def test_finished_job_without_ttl_is_kept() -> None:
    plan = run(job(finalizers=[], status={"completionTime": ago(10_000)}), empty("a"))
    assert plan.commands == [] and plan.requeue_after is None


def test_deadline_requeue() -> None:
    j = job(completion={"type": "Always", "activeDeadlineSeconds": 900}, status={"startTime": ago(100)})
    assert run(j, empty("a")).requeue_after == 800


def test_deadline_counts_unsynced_targets_failed() -> None:
    nis = [
        node_image("a", tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Succeeded")]}),
        node_image("b", tags={"nginx": [owned_tag()]}),
        node_image("c"),
    ]
    j = job(completion={"type": "Always", "activeDeadlineSeconds": 600}, status={"startTime": ago(601)})
    plan = run(j, nis)
    s = plan.status
    assert (s.succeeded, s.failed, s.active, s.failed_nodes) == (1, 2, 0, ["b", "c"])
    assert plan.next_nodes == []  # a finished job hands nothing out


def test_deleting_job_only_drops_its_finalizer() -> None:
    plan = run(job(deletionTimestamp=ago(1)), empty("a"))
    assert [c.verb for c in plan.commands] == ["finalizer"]


def test_gate_off_plans_nothing() -> None:
    plan = plan_image_pull_job(JobView(job=job(), node_images=empty("a")), now=NOW)
    assert plan.commands == [] and plan.events == []


def test_invalid_job_is_reported_not_acted_on() -> None:
    plan = run(job(parallelism="50%"), empty("a"))
    assert plan.commands == [] and not plan.accepted
    assert plan.events[0].type == "rejected" and plan.events[0].field == "spec.parallelism"
    assert plan.events[0].message == "parallelism does not support percentage value"


def test_a_pass_repeated_before_its_writes_land_decides_the_same_commands() -> None:
    """Re-planning on the same view (the writes not observed yet) picks the same nodes with the same
    command ids, so the bus's duplicate window drops the repeat instead of exceeding parallelism."""
    view = JobView(job=job(parallelism=2), node_images=empty("a", "b", "c"))
    first = plan_image_pull_job(view, now=NOW, gates=GATES)
    second = plan_image_pull_job(view, now=NOW, gates=GATES)
    assert [c.id for c in first.commands] == [c.id for c in second.commands]
    assert first.next_nodes == ["a", "b"]


def test_deadline_counts_a_node_once_when_only_its_secret_is_missing() -> None:
    nis = [
        node_image("a", tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Succeeded")]}),
        node_image("b", tags={"nginx": [owned_tag()]}),
    ]
    j = job(
        completion={"type": "Always", "activeDeadlineSeconds": 600},
        status={"startTime": ago(601)},
        pull_secrets=["reg"],
    )
    s = run(j, nis).status
    assert s.message == "job exceeds activeDeadlineSeconds"
    assert (s.desired, s.succeeded, s.failed, s.failed_nodes) == (2, 1, 1, ["b"])
