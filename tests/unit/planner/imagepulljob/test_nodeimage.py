"""NodeImage lifecycle, spec upkeep, pull-progress folding and timeouts (`pkg/controller/nodeimage`,
`pkg/daemon/imagepuller`)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.constants import PULL_START_DEADLINE_SECONDS
from schemas.messages import CreateOp, DeleteOp, PatchOp
from schemas.nodework import REASON_EXPIRED
from schemas.subjects import Subjects
from services.bus import stream_configs
from services.planner.imagepulljob.nodeimage import (
    NodeImagePlan,
    counters,
    fold_results,
    plan_node_image,
    plan_node_images,
)
from services.planner.kit.expectations import command_scoped, expectation_met
from tests.unit.planner.imagepulljob.builders import (
    JOB_UID,
    NOW,
    ago,
    node,
    node_image,
    owned_tag,
    result,
    tag_status,
)

JOBS = {("default", "job"): JOB_UID}


def stream_max_age(base: str) -> float | None:
    subjects = Subjects("kb")
    [cfg] = [c for c in stream_configs(subjects) if c.name == subjects.stream(base)]
    return cfg.max_age


def only_patch(plan: NodeImagePlan) -> dict[str, Any]:
    [cmd] = plan.commands
    [op] = cmd.ops
    assert isinstance(op, PatchOp) and isinstance(op.patch, dict)
    return op.patch


# --- lifecycle -------------------------------------------------------------------------------------


def test_created_for_a_ready_node_with_its_labels() -> None:
    plan = plan_node_image(node("n1", labels={"zone": "a"}), None, JOBS, NOW)
    [cmd] = plan.commands
    op = cmd.ops[0]
    assert isinstance(op, CreateOp) and op.resource.plural == "nodeimages" and not op.resource.namespaced
    assert op.body["metadata"] == {"name": "n1", "labels": {"zone": "a"}}


def test_not_created_for_a_node_that_is_not_ready() -> None:
    assert plan_node_image(node("n1", ready=False), None, JOBS, NOW).commands == []


def test_created_30s_after_the_node_turned_ready() -> None:
    plan = plan_node_image(node("n1", since=10), None, JOBS, NOW)
    assert plan.commands == [] and plan.requeue_after == 20


def test_deleted_with_its_node() -> None:
    plan = plan_node_image(None, node_image("n1"), JOBS, NOW)
    op = plan.commands[0].ops[0]
    assert isinstance(op, DeleteOp) and op.name == "n1" and op.uid == "ni-n1"
    assert plan_node_image(node("n1", deleting=True), node_image("n1"), JOBS, NOW).commands


def test_fake_node_image_kept_without_node() -> None:
    ni = node_image("n1", labels={"apps.kruise.io/fake-nodeimage": "true"})
    assert plan_node_image(None, ni, JOBS, NOW).commands == []


def test_labels_mirrored_from_the_node() -> None:
    patch = only_patch(
        plan_node_image(
            node("n1", labels={"zone": "b", "new": "1"}),
            node_image("n1", labels={"zone": "a", "old": "x"}),
            JOBS,
            NOW,
        )
    )
    assert patch["metadata"]["labels"] == {"zone": "b", "new": "1", "old": None}
    assert patch["metadata"]["resourceVersion"] == "1"


def test_one_node_image_per_node_name() -> None:
    plans = plan_node_images([node("a"), node("b")], [node_image("b"), node_image("gone")], JOBS, NOW)
    assert [p.name for p in plans] == ["a", "b", "gone"]
    assert [c.verb for p in plans for c in p.commands] == ["nodeimage-create", "nodeimage-delete"]


# --- spec upkeep -----------------------------------------------------------------------------------


def test_tag_of_a_deleted_job_is_dropped() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag()]})
    patch = only_patch(plan_node_image(node("n1"), ni, {}, NOW))
    assert patch["spec"]["images"] == {"nginx": None}


def test_tag_of_a_recreated_job_is_dropped() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag()]})
    assert only_patch(plan_node_image(node("n1"), ni, {("default", "job"): "new-uid"}, NOW))["spec"][
        "images"
    ] == {"nginx": None}


def test_other_owner_kinds_are_kept() -> None:
    tag = owned_tag()
    tag["ownerReferences"].append(
        {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "d", "uid": "x"}
    )
    ni = node_image("n1", tags={"nginx": [tag]})
    tags = only_patch(plan_node_image(node("n1"), ni, {}, NOW))["spec"]["images"]["nginx"]["tags"]
    assert [r["kind"] for r in tags[0]["ownerReferences"]] == ["Pod"]


def test_tag_without_created_at_is_dropped() -> None:
    tag = owned_tag()
    del tag["createdAt"]
    ni = node_image("n1", tags={"nginx": [tag, owned_tag(tag="2")]})
    tags = only_patch(plan_node_image(node("n1"), ni, JOBS, NOW))["spec"]["images"]["nginx"]["tags"]
    assert [t["tag"] for t in tags] == ["2"]


def test_finished_tag_dropped_after_its_ttl() -> None:
    ni = node_image(
        "n1",
        tags={"nginx": [owned_tag(ttlSecondsAfterFinished=60)]},
        statuses={"nginx": [tag_status("Succeeded", completed=ago(61))]},
    )
    assert only_patch(plan_node_image(node("n1"), ni, JOBS, NOW))["spec"]["images"] == {"nginx": None}
    young = node_image(
        "n1",
        tags={"nginx": [owned_tag(ttlSecondsAfterFinished=60)]},
        statuses={"nginx": [tag_status("Succeeded", completed=ago(20))]},
    )
    plan = plan_node_image(node("n1"), young, JOBS, NOW)
    assert plan.commands == [] and plan.requeue_after == 40


# --- folding pull results, sending pulls ----------------------------------------------------------


def status_cmds(plan: NodeImagePlan) -> list[Any]:
    return [c for c in plan.commands if c.verb == "nodeimage-status"]


def pulls(plan: NodeImagePlan) -> list[Any]:
    return [c for c in plan.commands if c.verb == "pull"]


def test_a_tag_without_a_result_is_pulled_on_its_node() -> None:
    tag = owned_tag(version=2, timeoutSeconds=30, activeDeadlineSeconds=600, created=ago(5))
    tag["imagePullPolicy"] = "Always"
    ni = node_image("n1", tags={"nginx": [tag]}, secrets={"nginx": [{"namespace": "default", "name": "reg"}]})
    [cmd] = plan_node_image(node("n1"), ni, JOBS, NOW).commands
    assert cmd.verb == "pull" and cmd.node == "n1" and cmd.ops == []
    # it must start within the start deadline (300 s), which ends before the tag's activeDeadline here
    assert cmd.id == "nodeimage/ni-n1/pull/nginx:1.21/2/0" and cmd.not_after == "2026-01-01T12:05:00Z"
    [op] = cmd.node_ops
    assert (op.image, op.version, op.timeout_seconds, op.always) == ("nginx:1.21", 2, 30, True)
    assert [(s.namespace, s.name) for s in op.secrets] == [("default", "reg")]


@pytest.mark.parametrize(("policy", "not_after"), [
    pytest.param({}, "2026-01-01T12:05:00Z", id="start-deadline"),
    pytest.param({"activeDeadlineSeconds": 65}, "2026-01-01T12:01:00Z", id="active-deadline-sooner"),
])
def test_a_pull_expires_unless_started_by_its_deadline(policy: dict[str, Any], not_after: str) -> None:
    """Not the engine's 30 s default: a pull may wait behind its node's queue for the start deadline
    (PULL_START_DEADLINE_SECONDS, also KB_NODE's max_age), never past the tag's activeDeadlineSeconds."""
    ni = node_image("n1", tags={"nginx": [owned_tag(**policy)]})
    [cmd] = plan_node_image(node("n1"), ni, JOBS, NOW).commands
    assert cmd.not_after == not_after
    assert PULL_START_DEADLINE_SECONDS == 300
    assert stream_max_age("NODE") == PULL_START_DEADLINE_SECONDS


def test_a_pull_expects_its_agents_report() -> None:
    """The engine holds the command (not the NodeImage) until the node's agent answers it."""
    ni = node_image("n1", tags={"nginx": [owned_tag()]})
    [cmd] = plan_node_image(node("n1"), ni, JOBS, NOW).commands
    [exp] = cmd.expects
    assert (exp.kind, exp.key, exp.value) == ("reported", "n1/nginx:1.21", cmd.id)
    assert command_scoped(exp)
    answered = result("n1", "pulling")
    assert expectation_met(exp, {}, lambda uid: answered.command_id if uid == answered.metadata.uid else None)
    assert not expectation_met(exp, {}, lambda uid: None)
    assert not expectation_met(exp, {}, lambda uid: "nodeimage/ni-n1/pull/nginx:1.21/0/7")


def test_an_expired_pull_is_a_failed_attempt_and_the_last_one_fails_the_tag() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(backoffLimit=1)]})
    expired = {"reason": REASON_EXPIRED, "message": "pull of nginx:1.21 was not started before its deadline"}
    retry = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", attempt=0, ended=5, **expired)])
    [cmd] = pulls(retry)
    assert cmd.id.endswith("/1") and status_cmds(retry) == []
    final = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", attempt=1, ended=5, **expired)])
    assert final.status is not None
    [tag] = final.status.image_statuses["nginx"].tags
    assert tag.phase == "Failed" and "not started before its deadline" in tag.message


def test_a_digest_tag_is_pulled_by_digest() -> None:
    digest = "sha256:" + "a" * 64
    ni = node_image("n1", tags={"nginx": [owned_tag(tag=digest)]})
    [cmd] = plan_node_image(node("n1"), ni, JOBS, NOW).commands
    assert cmd.node_ops[0].image == f"nginx@{digest}"


def test_intermediate_progress_is_not_written() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag()]})
    plan = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "pulling", percent=70)])
    assert plan.commands == [] and plan.in_flight[("nginx", "1.21", 0)].progress == 70


def test_a_finished_pull_is_one_status_write() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag()]})
    plan = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "succeeded", image_id="nginx@sha256:abc")])
    [cmd] = plan.commands
    assert cmd.verb == "nodeimage-status"
    op = cmd.ops[0]
    assert isinstance(op, PatchOp) and op.subresource == "status" and isinstance(op.patch, dict)
    assert op.patch["metadata"] == {"resourceVersion": "1"}
    status = op.patch["status"]
    assert status["imageStatuses"]["nginx"]["tags"] == [{
        "tag": "1.21", "phase": "Succeeded", "progress": 100, "startTime": ago(9), "completionTime": ago(0),
        "imageID": "nginx@sha256:abc"}]
    assert (status["desired"], status["succeeded"], status["failed"], status["pulling"], status["waiting"]) == (
        1, 1, 0, 0, 0)
    assert [e.reason for e in plan.events] == ["PullImageSucceed"]  # rollout log only: no extra API write
    assert plan.events[0].workload == "job" and plan.events[0].message == "Image nginx:1.21, ecalpsedTime 9s"


def test_finished_status_takes_no_second_write() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag()]}, statuses={"nginx": [tag_status("Succeeded")]})
    assert plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", message="late")]).commands == []


def test_a_result_of_another_version_means_pull_again() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(version=2)]})
    plan = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "succeeded", version=1),
                                                        result("n2", "succeeded", version=2)])
    assert status_cmds(plan) == [] and [c.id for c in pulls(plan)] == ["nodeimage/ni-n1/pull/nginx:1.21/2/0"]


def test_failed_attempt_is_retried_after_the_backoff() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(backoffLimit=2)]})
    early = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", attempt=1, ended=1)])
    assert early.commands == [] and early.requeue_after == 1  # 2 s after the second attempt
    due = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", attempt=1, ended=2)])
    assert [c.id for c in due.commands] == ["nodeimage/ni-n1/pull/nginx:1.21/0/2"]


def test_backoff_is_capped_at_30s() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(backoffLimit=9)]})
    plan = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", attempt=7, ended=29)])
    assert plan.commands == [] and plan.requeue_after == 1


def test_failed_pull_carries_the_reason_once_attempts_are_used_up() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(backoffLimit=1)]})
    plan = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", attempt=1, reason="ImageNotFound",
                                                              message="manifest unknown")])
    assert plan.status is not None
    [tag] = plan.status.image_statuses["nginx"].tags
    assert (tag.phase, tag.message, plan.status.failed) == ("Failed", "manifest unknown", 1)
    status_cmd, event_cmd = plan.commands
    assert status_cmd.verb == "nodeimage-status" and event_cmd.verb == "event" and event_cmd.ops == []
    assert event_cmd.workload.kind == "ImagePullJob" and event_cmd.workload.uid == JOB_UID
    assert event_cmd.on_success is not None and (event_cmd.on_success.type, event_cmd.on_success.reason) == (
        "Warning", "PullImageFailed")
    assert event_cmd.on_success.message == "Image nginx:1.21 manifest unknown"


def test_default_backoff_makes_four_attempts() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag()]})
    assert pulls(plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", attempt=2, ended=60)]))
    final = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "failed", attempt=3, ended=60)])
    assert status_cmds(final) and not pulls(final)


def test_two_tags_finishing_together_share_one_write() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(tag="1"), owned_tag(tag="2")]})
    plan = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "succeeded", tag="1"),
                                                        result("n1", "succeeded", tag="2")])
    assert len(status_cmds(plan)) == 1 and plan.status is not None and plan.status.succeeded == 2


def test_counters_add_up() -> None:
    ni = node_image("n1", tags={"a": [owned_tag(tag="1"), owned_tag(tag="2"), owned_tag(tag="3")],
                                "b": [owned_tag(tag="1")]},
                    statuses={"a": [tag_status("Succeeded", tag="1"), tag_status("Failed", tag="2")]})
    fold = fold_results(ni, [result("n1", "pulling", image="a", tag="3")], NOW)
    assert counters(ni.spec.images, ni.status.image_statuses, fold.live) == (4, 1, 1, 1, 1)
    assert [(image, t.tag, attempt) for image, t, attempt in fold.pulls] == [("b", "1", 0)]


# --- timeouts --------------------------------------------------------------------------------------


def test_node_that_never_responds_fails_the_tag_after_10_minutes() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(created=ago(601))]})
    plan = plan_node_image(node("n1"), ni, JOBS, NOW)
    assert plan.status is not None and not pulls(plan)
    [tag] = plan.status.image_statuses["nginx"].tags
    assert (tag.phase, tag.message) == ("Failed", "node has not responded for a long time")
    assert "on node n1 for node has not responded for a long time" in plan.events[0].message


def test_response_timeout_waits() -> None:
    plan = plan_node_image(node("n1"), node_image("n1", tags={"nginx": [owned_tag(created=ago(100))]}), JOBS, NOW)
    assert status_cmds(plan) == [] and plan.requeue_after == 500


def test_a_live_result_counts_as_a_response() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(created=ago(3600))]})
    assert plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "pulling", percent=5)]).commands == []


def test_pull_past_its_deadline_fails() -> None:
    ni = node_image("n1", tags={"nginx": [owned_tag(created=ago(1000), activeDeadlineSeconds=300)]},
                    statuses={"nginx": [tag_status("Pulling")]})
    plan = plan_node_image(node("n1"), ni, JOBS, NOW)
    assert plan.status is not None
    assert plan.status.image_statuses["nginx"].tags[0].message == "pulling exceeds the activeDeadlineSeconds"


def test_fake_node_image_still_gets_upkeep() -> None:
    ni = node_image("n1", labels={"apps.kruise.io/fake-nodeimage": "true"}, tags={"nginx": [owned_tag()]})
    assert only_patch(plan_node_image(None, ni, {}, NOW))["spec"]["images"] == {"nginx": None}


def test_deadline_ignores_a_final_status_of_an_older_version() -> None:
    ni = node_image(
        "n1",
        tags={"nginx": [owned_tag(version=1, created=ago(1000), activeDeadlineSeconds=300)]},
        statuses={"nginx": [tag_status("Succeeded", version=0)]},
    )
    plan = plan_node_image(node("n1"), ni, JOBS, NOW, [result("n1", "pulling", version=1)])
    assert plan.status is not None
    [tag] = plan.status.image_statuses["nginx"].tags
    assert (tag.version, tag.phase, tag.message) == (1, "Failed", "pulling exceeds the activeDeadlineSeconds")


def test_status_of_a_dropped_tag_is_cleaned_up_once() -> None:
    ni = node_image(
        "n1",
        tags={"nginx": [owned_tag(tag="2")]},
        statuses={"nginx": [tag_status("Succeeded", tag="1"), tag_status("Succeeded", tag="2")]},
        desired=2,
        succeeded=2,
    )
    plan = plan_node_image(node("n1"), ni, JOBS, NOW)
    assert plan.status is not None and [t.tag for t in plan.status.image_statuses["nginx"].tags] == ["2"]
    assert (plan.status.desired, plan.status.succeeded) == (1, 1)
    clean = node_image(
        "n1",
        tags={"nginx": [owned_tag(tag="2")]},
        statuses={"nginx": [tag_status("Succeeded", tag="2")]},
        desired=1,
        succeeded=1,
    )
    assert plan_node_image(node("n1"), clean, JOBS, NOW).commands == []


def test_a_new_tag_costs_no_status_write_before_its_pull_finishes() -> None:
    ni = node_image(
        "n1",
        tags={"nginx": [owned_tag(tag="1"), owned_tag(tag="2")]},
        statuses={"nginx": [tag_status("Succeeded", tag="1")]},
        desired=1,
        succeeded=1,
    )
    assert [c.verb for c in plan_node_image(node("n1"), ni, JOBS, NOW).commands] == ["pull"]  # no status
