"""``plan_image_pull_job``: one ImagePullJob reconcile (`pkg/controller/imagepulljob/imagepulljob_controller.go`)
as a pure function of the job, the NodeImages (and, for a podSelector, the pods and their CloneSet) and `now`.

The pass, in Kruise's order:

1. Being deleted, or finished: drop the protection finalizer; a finished Always job is deleted
   `ttlSecondsAfterFinished` after its completionTime (requeued until then).
2. Status (`calculateStatus`): desired = #targets (none yet shortly after the job's creation: it waits
   `IMAGE_PULL_JOB_TARGET_GRACE_SECONDS` for NodeImages seen on another watch, `target_grace`); a target is *synced* when the image's tag on its
   NodeImage lists this job (by uid) as owner and carries the job's pull secrets; its status counts only
   for the spec's version: Succeeded, Failed, anything else (or none yet) is active. An Always job past
   `activeDeadlineSeconds` since startTime completes with every unfinished target failed. An Always job
   with desired == succeeded + failed completes. failedNodes sorted; the message as Kruise words it.
3. Sync (`syncNodeImages`): the tag goes to the next `parallelism - active` not-synced targets, in target
   order (0 pauses). Each is one NodeImage spec write.
4. One job status write, only when the status changed; the protection finalizer added if missing
   (after the status write, which is guarded by the resourceVersion planned on); requeue for the
   deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import (
    COMPLETION_NEVER,
    FINALIZER_DELETION_PROTECTION,
    IMAGE_PULL_JOB_TARGET_GRACE_SECONDS,
    MESSAGE_JOB_COMPLETED,
    MESSAGE_JOB_DEADLINE_EXCEEDED,
    MESSAGE_JOB_NO_PROGRESS,
    PHASE_FAILED,
    PHASE_SUCCEEDED,
)
from schemas.imagepulljob import ImagePullJob, ImagePullJobStatus, status_json
from schemas.kinds import IMAGE_PULL_JOB
from schemas.kube import Pod
from schemas.messages import (
    VERB_FINALIZER,
    VERB_JOB_DELETE,
    VERB_NODE_IMAGE_SPEC,
    VERB_STATUS,
    Command,
    Expectation,
    RolloutEvent,
)
from schemas.nodeimage import NodeImage
from services.planner.imagepulljob import imageref, ops
from services.planner.imagepulljob.tags import has_secret, owned_tag_version, secret_refs, synced_image_spec
from services.planner.imagepulljob.targets import select_targets
from services.planner.imagepulljob.validation import (
    JobError,
    gate_error,
    parallelism_of,
    validate_image_pull_job,
)
from services.planner.kit.builder import Builder, short_digest
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.gcpause import gc_paused
from services.planner.kit.plan import Revisionless
from services.planner.kit.timeutil import format_time, parse_time, seconds_between

MIN_REQUEUE_SECONDS = 1.0


class JobView(msgspec.Struct):
    """Everything one pass over a job looks at."""

    job: ImagePullJob
    node_images: list[NodeImage]  # every NodeImage (cluster-scoped), name order
    pods: list[Pod] = []  # pods of the job's namespace (read only with a podSelector)
    owner: CloneSet | None = None  # the job's controlling CloneSet, for the podSelector's order


@dataclass
class JobPlan(Revisionless):
    """One pass: the writes, the status after it, and what it handed out."""

    commands: list[Command]
    events: list[RolloutEvent]
    status: ImagePullJobStatus
    requeue_after: float | None
    targets: list[str] = field(default_factory=list)  # NodeImage names in hand-out order
    next_nodes: list[str] = field(default_factory=list)  # targets this pass adds the tag to
    error: JobError | None = None
    expectations: list[Expectation] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.error is None


def status_message(status: ImagePullJobStatus) -> str:
    """`formatStatusMessage`: completed, no progress (nothing targeted), or the finished share to 0.1 %."""
    if status.completion_time is not None:
        return MESSAGE_JOB_COMPLETED
    if status.desired == 0:
        return MESSAGE_JOB_NO_PROGRESS
    return f"job is running, progress {100.0 * (status.succeeded + status.failed) / status.desired:.1f}%"


@dataclass
class Tally:
    pulling: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_synced: list[str] = field(default_factory=list)  # target order


def tally(job: ImagePullJob, targets: list[NodeImage]) -> Tally:
    image, tag = imageref.name_tag(job.spec.image)
    refs = secret_refs(job)
    out = Tally()
    for ni in targets:
        name = ni.metadata.name
        spec = ni.spec.images.get(image)
        secrets_ok = spec is None or all(has_secret(spec, r) for r in refs)
        version = owned_tag_version(ni, job, image, tag)
        if version < 0 or not secrets_ok:
            out.not_synced.append(name)
            if version < 0:
                continue
        status = ni.tag_status(image, tag)
        if status is None or status.version != version:
            out.pulling.append(name)
        elif status.phase == PHASE_SUCCEEDED:
            out.succeeded.append(name)
        elif status.phase == PHASE_FAILED:
            out.failed.append(name)
        else:
            out.pulling.append(name)
    return out


def target_grace(job: ImagePullJob, targets: list[NodeImage], now: datetime,
                 grace: float = IMAGE_PULL_JOB_TARGET_GRACE_SECONDS) -> float | None:
    """Seconds the job waits for targets before it may complete with none (None: it does not wait).

    Kruise completes a job whose selector matches no NodeImage at once (desired 0). Here the job and the
    NodeImages arrive on separate watches, so a job created right after its nodes' NodeImages can be seen
    first; for `grace` seconds after its creation such a job stays Running and is looked at again then.
    """
    if targets:
        return None
    created = parse_time(job.metadata.creation_timestamp) or parse_time(job.status.start_time) or now
    left = grace - seconds_between(now, created)
    return left if left > 0 else None


def calculate_status(
    job: ImagePullJob, targets: list[NodeImage], now: datetime, *, hold: bool = False
) -> tuple[ImagePullJobStatus, Tally]:
    """`calculateStatus`: the status to write and the targets still to hand the image to. `hold`: do not
    complete a job without targets yet (`target_grace`)."""
    t = tally(job, targets)
    start = job.status.start_time or format_time(now)
    desired = len(targets)
    cp = job.spec.completion_policy
    deadline = cp.active_deadline_seconds
    if (
        cp.type != COMPLETION_NEVER
        and isinstance(deadline, int)
        and desired != len(t.succeeded) + len(t.failed)
    ):
        started = parse_time(start) or now
        if seconds_between(now, started) >= deadline:
            counted = (
                set(t.succeeded) | set(t.failed) | set(t.pulling)
            )  # a node missing only a secret is one of these
            failed = sorted([*t.failed, *t.pulling, *(n for n in t.not_synced if n not in counted)])
            status = ImagePullJobStatus(
                start_time=start,
                completion_time=format_time(now),
                desired=desired,
                succeeded=len(t.succeeded),
                failed=len(failed),
                failed_nodes=failed,
                message=MESSAGE_JOB_DEADLINE_EXCEEDED,
            )
            return status, Tally(succeeded=t.succeeded, failed=failed)
    status = ImagePullJobStatus(
        start_time=start,
        desired=desired,
        active=len(t.pulling),
        succeeded=len(t.succeeded),
        failed=len(t.failed),
        failed_nodes=sorted(t.failed),
    )
    if cp.type != COMPLETION_NEVER and desired - status.succeeded - status.failed == 0 and not hold:
        status = msgspec.structs.replace(status, completion_time=format_time(now))
    return msgspec.structs.replace(status, message=status_message(status)), t


@gc_paused
def plan_image_pull_job(view: JobView, *, now: datetime, gates: FeatureGates = DEFAULT_GATES,
                        target_grace_seconds: float = IMAGE_PULL_JOB_TARGET_GRACE_SECONDS) -> JobPlan:
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    job = view.job
    b = Builder.of(IMAGE_PULL_JOB, job, now)
    uid = job.metadata.uid
    if gate_error(gates) is not None:  # Kruise does not run the controller at all
        return JobPlan(commands=[], events=[], status=job.status, requeue_after=None)
    error = validate_image_pull_job(job)
    if error is not None:
        b.event("rejected", error.message, reason="InvalidSpec", field=error.field)
        return JobPlan(commands=[], events=b.events, status=job.status, requeue_after=None, error=error)
    finalizers = job.metadata.finalizers
    if job.metadata.deletion_timestamp is not None or job.status.completion_time is not None:
        if FINALIZER_DELETION_PROTECTION in finalizers:
            kept = [f for f in finalizers if f != FINALIZER_DELETION_PROTECTION]
            b.command(f"{uid}/finalizer/remove", VERB_FINALIZER, [ops.job_finalizers_patch(job, kept)])
        requeue: float | None = None
        ttl = job.spec.completion_policy.ttl_seconds_after_finished
        completed = parse_time(job.status.completion_time)
        if job.metadata.deletion_timestamp is None and isinstance(ttl, int) and completed is not None:
            left = ttl - seconds_between(now, completed)
            if left <= 0:
                b.command(f"{uid}/delete", VERB_JOB_DELETE, [ops.job_delete(job)])
                b.event(
                    "job-deleted",
                    f"deleted ImagePullJob {job.metadata.name}: ttlSecondsAfterFinished "
                    f"{ttl}s passed since it completed",
                )
            else:
                requeue = left
        return JobPlan(commands=b.commands, events=b.events, status=job.status, requeue_after=requeue)

    targets = select_targets(job, view.node_images, view.pods, view.owner)
    waiting = target_grace(job, targets, now, target_grace_seconds)
    status, t = calculate_status(job, targets, now, hold=waiting is not None)
    next_nodes: list[str] = []
    if status.completion_time is None and t.not_synced:
        room = parallelism_of(job) - status.active
        if room > 0:
            by_name = {ni.metadata.name: ni for ni in targets}
            image, tag = imageref.name_tag(job.spec.image)
            for name in t.not_synced[:room]:
                ni = by_name[name]
                spec = synced_image_spec(ni, job, image, tag, now)
                if spec is None:
                    continue
                next_nodes.append(name)
                b.command(
                    f"{uid}/nodeimage-spec/{name}/{ni.metadata.resource_version}",
                    VERB_NODE_IMAGE_SPEC,
                    [ops.node_image_spec_patch(ni, {image: spec})],
                )
    body = status_json(status)
    if body != status_json(job.status):
        b.command(
            f"{uid}/status/{job.metadata.resource_version}/{short_digest(body)}",
            VERB_STATUS,
            [b.status_patch(body)],
        )
        if status.completion_time is not None:
            b.event(
                "job-completed",
                f"{status.message}: {status.succeeded} succeeded, {status.failed} failed",
                data={"succeeded": status.succeeded, "failed": status.failed, "desired": status.desired},
            )
    if FINALIZER_DELETION_PROTECTION not in finalizers:
        # after the status write: that one is guarded by the resourceVersion this pass planned on, the
        # finalizer patch (uid test only) would otherwise make it stale
        b.command(
            f"{uid}/finalizer/add",
            VERB_FINALIZER,
            [ops.job_finalizers_patch(job, [*finalizers, FINALIZER_DELETION_PROTECTION])],
        )
    requeue = None
    deadline = job.spec.completion_policy.active_deadline_seconds
    if (
        status.completion_time is None
        and job.spec.completion_policy.type != COMPLETION_NEVER
        and isinstance(deadline, int)
    ):
        started = parse_time(status.start_time) or now
        requeue = max(MIN_REQUEUE_SECONDS, deadline - seconds_between(now, started))
    if waiting is not None:
        requeue = waiting if requeue is None else min(requeue, waiting)
    return JobPlan(
        commands=b.commands,
        events=b.events,
        status=status,
        requeue_after=requeue,
        targets=[ni.metadata.name for ni in targets],
        next_nodes=next_nodes,
    )


def preview_document(plan: JobPlan, job: ImagePullJob) -> dict[str, Any]:
    """What `kruisebus plan` prints for a job."""
    return {
        "job": f"{job.metadata.namespace}/{job.metadata.name}",
        "image": job.spec.image,
        "valid": plan.error is None,
        "error": plan.error.message if plan.error is not None else None,
        "targets": plan.targets,
        "nextNodes": plan.next_nodes,
        "status": status_json(plan.status),
        "commands": [{"id": c.id, "verb": c.verb, "ops": msgspec.to_builtins(c.ops)} for c in plan.commands],
        "events": [msgspec.to_builtins(e) for e in plan.events],
        "requeueAfter": plan.requeue_after,
    }


__all__ = [
    "JobPlan",
    "JobView",
    "calculate_status",
    "plan_image_pull_job",
    "preview_document",
    "status_message",
    "tally",
    "target_grace",
]
