"""``plan_broadcastjob``: one Kruise BroadcastJob reconcile (`pkg/controller/broadcastjob/broadcastjob_controller.go`) as a pure function.

A BroadcastJob runs one pod on every eligible node: the pod's `nodeName` (if set), nodeSelector and
required node affinity match, every NoSchedule/NoExecute taint (and `unschedulable`) is tolerated, and
the pod's requests fit the node's allocatable (other pods ignored). Pods are created up to
`parallelism - active` per pass (a percent of the eligible nodes, rounded up), pinned with
`spec.nodeName` (Kruise's `--assign-bcj-pods-by-scheduler=false` placement), and named
`<job>-<hash of the node>` so a restarted planner plans the same pod for the same node. Pods on nodes
that stopped fitting are deleted.

Finishing (completionPolicy `Always` only): every eligible node has a finished pod -> `Complete`;
failurePolicy `FailFast` and a failed pod -> active pods deleted, `Failed`; `activeDeadlineSeconds`
since startTime -> `Failed`; `Pause` and a failed pod -> phase `paused` (no condition); `Continue`
keeps going. A finished BroadcastJob with `ttlSecondsAfterFinished` deletes itself that long after
completionTime. Nodes come from the engine's view of cluster Nodes (`owned["node"]`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Final

import msgspec

from schemas.broadcastjob import BroadcastJob, BroadcastJobStatus
from schemas.constants import (
    BCJ_PHASE_COMPLETED,
    BCJ_PHASE_FAILED,
    BCJ_PHASE_PAUSED,
    BCJ_PHASE_RUNNING,
    COMPLETION_ALWAYS,
    CONDITION_INVALID_SPEC,
    EFFECT_NO_EXECUTE,
    EFFECT_NO_SCHEDULE,
    EVENT_DEADLINE_EXCEEDED,
    EVENT_FAILED_CREATE,
    EVENT_FAILED_POD_FOUND,
    EVENT_JOB_COMPLETE,
    EVENT_PAUSED,
    EVENT_SUCCESSFUL_CREATE,
    EVENT_SUCCESSFUL_DELETE,
    FAILURE_FAIL_FAST,
    FAILURE_PAUSE,
    JOB_CONDITION_COMPLETE,
    JOB_CONDITION_FAILED,
    LABEL_BROADCASTJOB_CONTROLLER_UID,
    LABEL_BROADCASTJOB_NAME,
    REASON_INVALID_SPEC,
    TAINT_UNSCHEDULABLE,
)
from schemas.job import JobCondition
from schemas.kinds import BROADCAST_JOB
from schemas.kube import JsonObject, Node, Pod, PodPlacementView, Taint
from schemas.messages import (
    VERB_CREATE,
    VERB_DELETE,
    VERB_EVENT,
    VERB_INVALID_SPEC,
    VERB_SELF_DELETE,
    VERB_STATUS,
    Command,
    DeleteOp,
    Expectation,
    RolloutEvent,
)
from schemas.placement import matches_required, untolerated
from services.planner.broadcastjob.validation import defaulted, validate_broadcastjob
from services.planner.kit.builder import Builder, kube_event, short_digest
from services.planner.kit.fielderrors import FieldError
from services.planner.kit.gcpause import gc_paused
from services.planner.kit.intstr import scaled_value
from services.planner.kit.plan import Revisionless
from services.planner.kit.timeutil import format_time, parse_time

__all__ = ["BcjPlan", "eligible", "plan_broadcastjob", "pod_name"]

_UNSCHEDULABLE: Final = Taint(key=TAINT_UNSCHEDULABLE, effect=EFFECT_NO_SCHEDULE)  # what a cordon means


class BcjPlan(msgspec.Struct, Revisionless):
    commands: list[Command]
    events: list[RolloutEvent]
    expectations: list[Expectation]
    status: BroadcastJobStatus
    requeue_after: float | None
    errors: list[FieldError]
    created: list[str] = []  # pods created in this pass (their nodes in `nodes_created`)
    nodes_created: list[str] = []
    deleted: list[str] = []

    @property
    def accepted(self) -> bool:
        return not self.errors


# --- quantities and placement ----------------------------------------------------------------------

_QUANTITY: Final = re.compile(r"([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)")
_SUFFIX: Final = {"": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
                  "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
                  "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
                  "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60)}


def quantity(value: str | int) -> Fraction | None:
    """A Kubernetes resource quantity as an exact number (None: unparsable)."""
    if isinstance(value, int):
        return Fraction(value)
    m = _QUANTITY.fullmatch(value.strip())
    if m is None:
        return None
    number = Fraction(m.group(1))
    if m.group(2):
        return number * Fraction(10) ** int(m.group(2)[1:])
    return number * _SUFFIX[m.group(3) or ""]


def eligible(node: Node, placement: PodPlacementView) -> bool:
    """Whether the BroadcastJob's pod should run on `node` (Kruise's `checkNodeFitness`)."""
    if placement.node_name and placement.node_name != node.metadata.name:
        return False
    if not matches_required(placement, node):
        return False
    if untolerated(node.spec.taints, placement.tolerations, (EFFECT_NO_SCHEDULE, EFFECT_NO_EXECUTE)) is not None:
        return False
    if node.spec.unschedulable and untolerated([_UNSCHEDULABLE], placement.tolerations, (EFFECT_NO_SCHEDULE,)):
        return False
    requests: dict[str, Fraction] = {}
    for c in placement.containers:
        for res, amount in c.resources.requests.items():
            q = quantity(amount)
            if q is not None:
                requests[res] = requests.get(res, Fraction(0)) + q
    for res, want in requests.items():
        have_raw = node.status.allocatable.get(res)
        if have_raw is None:
            if want > 0 and node.status.allocatable:
                return False
            continue
        have = quantity(have_raw)
        if have is not None and want > have:
            return False
    return True


def pod_name(job: str, node: str) -> str:
    """`<job>-<10 hex of the node name>`: one name per node, stable across planner restarts. 40 bits, so
    two of 10,000 nodes share a name with a chance of about 1 in 20,000 (5 hex: 38 % at 1,000 nodes);
    the name is cut to leave the 63 characters a label value allows."""
    return f"{job[:52]}-{hashlib.sha256(node.encode()).hexdigest()[:10]}"


# --- the pass --------------------------------------------------------------------------------------


def _counts(pod: Pod, restart_limit: int, restart_policy: str) -> str:
    """"succeeded", "failed" or "active"."""
    phase = pod.status.phase
    if phase == "Succeeded":
        return "succeeded"
    if phase == "Failed":
        return "failed"
    if restart_policy == "OnFailure" and sum(c.restart_count for c in pod.status.container_statuses) > restart_limit:
        return "failed"
    return "active"


def _condition(conditions: list[JobCondition], type_: str, reason: str, message: str, now: datetime) -> list[JobCondition]:
    ts = format_time(now)
    return [c for c in conditions if c.type != type_] + [
        JobCondition(type=type_, status="True", reason=reason, message=message, last_probe_time=ts,
                     last_transition_time=ts)]


def _finished(job: BroadcastJob) -> bool:
    return any(c.type in (JOB_CONDITION_COMPLETE, JOB_CONDITION_FAILED) and c.status == "True"
               for c in job.status.conditions)


@gc_paused
def plan_broadcastjob(job: BroadcastJob, pods: Sequence[Pod], nodes: Sequence[Node], *, now: datetime,
                      create_limit: int | None = None) -> BcjPlan:
    """One reconcile at `now` over the job, the pods it controls and every Node."""
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    b = Builder.of(BROADCAST_JOB, job, now)
    errors = validate_broadcastjob(job)
    if errors:
        return _invalid(b, job, errors, now)
    spec = defaulted(job.spec)
    status = job.status
    if any(c.type == CONDITION_INVALID_SPEC for c in status.conditions):
        status = msgspec.structs.replace(status, conditions=[c for c in status.conditions
                                                             if c.type != CONDITION_INVALID_SPEC])
    ns_name = f"{job.metadata.namespace}/{job.metadata.name}"

    if _finished(job):
        ttl = spec.completion_policy.ttl_seconds_after_finished
        done = parse_time(status.completion_time)
        if ttl is None or done is None:
            return BcjPlan(commands=[], events=[], expectations=[], status=status, requeue_after=None, errors=[])
        expires = done + timedelta(seconds=ttl)
        if expires > now:
            return BcjPlan(commands=[], events=[], expectations=[], status=status,
                           requeue_after=(expires - now).total_seconds(), errors=[])
        b.command(f"{b.uid}/self-delete", VERB_SELF_DELETE,
                  [DeleteOp(resource=BROADCAST_JOB.api_resource, namespace=b.namespace, name=b.name, uid=b.uid,
                            propagation_policy="Background")])
        b.event("ttl-expired", f"deleted: finished at {status.completion_time}, ttlSecondsAfterFinished {ttl}")
        return BcjPlan(commands=b.commands, events=b.events, expectations=[], status=status, requeue_after=None,
                       errors=[])

    placement = msgspec.convert(spec.template.spec, PodPlacementView)
    restart_policy = placement.restart_policy
    fits = {n.metadata.name for n in nodes if eligible(n, placement)}
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    by_node: dict[str, Pod] = {}
    tally = {"active": 0, "succeeded": 0, "failed": 0}
    deletes: list[Pod] = []
    for pod in live:
        node = pod.spec.node_name
        state = _counts(pod, spec.failure_policy.restart_limit, restart_policy)
        if node and node not in fits and state == "active":
            deletes.append(pod)  # the node stopped fitting
            continue
        tally[state] += 1
        if node:
            by_node.setdefault(node, pod)
    active_pods = [p for p in live if p not in deletes and _counts(p, spec.failure_policy.restart_limit,
                                                                   restart_policy) == "active"]
    desired = len(fits)
    started = status.start_time or format_time(now)
    conditions = list(status.conditions)
    phase = BCJ_PHASE_RUNNING
    completion_time = status.completion_time
    requeue: float | None = None
    created: list[str] = []
    nodes_created: list[str] = []
    always = spec.completion_policy.type == COMPLETION_ALWAYS
    counts = f"{tally['succeeded']} pods succeeded, {tally['failed']} pods failed"

    deadline = spec.completion_policy.active_deadline_seconds
    start_at = parse_time(started) or now
    failed_now = ""
    reason_event = ("", "")
    if always and tally["failed"] > 0 and spec.failure_policy.type == FAILURE_FAIL_FAST:
        failed_now = "failure policy is FailurePolicyTypeFailFast and failed pod is found"
        reason_event = (EVENT_FAILED_POD_FOUND, f"{failed_now}: {counts}")
    elif always and deadline is not None and start_at + timedelta(seconds=deadline) <= now:
        failed_now = f"Job {ns_name} was active longer than specified deadline"
        reason_event = (EVENT_DEADLINE_EXCEEDED, failed_now)
    if failed_now:
        deletes.extend(active_pods)
        conditions = _condition(conditions, JOB_CONDITION_FAILED, "Failed", failed_now, now)
        phase, completion_time = BCJ_PHASE_FAILED, format_time(now)
        b.event("job-failed", failed_now, reason=reason_event[0])
        warn = kube_event(reason_event[0], reason_event[1], warning=True)
        b.command(f"{b.uid}/failed/{job.metadata.resource_version}", VERB_EVENT, [], on_success=warn)
        tally["active"] = 0
    elif spec.paused or (tally["failed"] > 0 and spec.failure_policy.type == FAILURE_PAUSE):
        phase = BCJ_PHASE_PAUSED
        if not spec.paused and status.phase != BCJ_PHASE_PAUSED:
            b.command(f"{b.uid}/paused/{job.metadata.resource_version}", VERB_EVENT, [],
                      on_success=kube_event(EVENT_PAUSED, "job is paused, due to failed pod", warning=True))
    else:
        parallelism = scaled_value(spec.parallelism, desired, True)
        room = max(0, parallelism - tally["active"])
        if create_limit is not None:
            room = min(room, create_limit)
        for node in sorted(fits - set(by_node)):
            if len(created) >= room:
                break
            name = pod_name(job.metadata.name, node)
            b.command(f"{b.uid}/create/{name}/{node}", VERB_CREATE, [b.pod_create(_pod_body(job, spec, name, node))],
                      pod=name, on_success=kube_event(EVENT_SUCCESSFUL_CREATE, f"Created pod: {name}"),
                      on_failure=kube_event(EVENT_FAILED_CREATE, "Error creating", warning=True))
            b.expect(name, "present")
            b.event("pod-created", f"created pod {name} on node {node}", pod=name)
            created.append(name)
            nodes_created.append(node)
        tally["active"] += len(created)
        if always and desired > 0 and tally["active"] == 0 and all(n in by_node for n in fits):
            message = f"Job completed, {counts}"
            conditions = _condition(conditions, JOB_CONDITION_COMPLETE, "Complete", message, now)
            phase, completion_time = BCJ_PHASE_COMPLETED, format_time(now)
            b.command(f"{b.uid}/complete/{job.metadata.resource_version}", VERB_EVENT, [],
                      on_success=kube_event(EVENT_JOB_COMPLETE, f"Job {ns_name} is completed, {counts}"))
            b.event("job-completed", message)
        elif always and deadline is not None:
            requeue = max(1.0, math.ceil((start_at + timedelta(seconds=deadline) - now).total_seconds()))
    for pod in deletes:
        b.command(f"{b.uid}/delete/{pod.metadata.uid}", VERB_DELETE, [b.pod_delete(pod)], pod=pod.metadata.name,
                  pod_uid=pod.metadata.uid,
                  on_success=kube_event(EVENT_SUCCESSFUL_DELETE, f"Delete pod: {pod.metadata.name}"))
        b.expect(pod.metadata.name, "absent")

    new = BroadcastJobStatus(conditions=conditions, start_time=started, completion_time=completion_time,
                             active=tally["active"], succeeded=tally["succeeded"], failed=tally["failed"],
                             desired=desired, phase=phase)
    if msgspec.to_builtins(new) != msgspec.to_builtins(job.status):
        body: JsonObject = msgspec.to_builtins(new)
        for key in ("active", "succeeded", "failed", "desired"):
            body[key] = getattr(new, key)
        b.command(f"{b.uid}/status/{job.metadata.resource_version}/{short_digest(body)}", VERB_STATUS,
                  [b.status_patch(body)])
    ttl = spec.completion_policy.ttl_seconds_after_finished
    if phase in (BCJ_PHASE_COMPLETED, BCJ_PHASE_FAILED) and ttl is not None:
        requeue = float(max(ttl, 0)) or 0.05
    return BcjPlan(commands=b.commands, events=b.events, expectations=b.expectations, status=new,
                   requeue_after=requeue, errors=[], created=created, nodes_created=nodes_created,
                   deleted=[p.metadata.name for p in deletes])


def _pod_body(job: BroadcastJob, spec: Any, name: str, node: str) -> JsonObject:
    template = spec.template
    labels = {**template.metadata.labels, LABEL_BROADCASTJOB_NAME: job.metadata.name,
              LABEL_BROADCASTJOB_CONTROLLER_UID: job.metadata.uid}
    metadata: JsonObject = {
        "name": name, "namespace": job.metadata.namespace, "labels": labels,
        "ownerReferences": [{"apiVersion": job.api_version, "kind": job.kind, "name": job.metadata.name,
                             "uid": job.metadata.uid, "controller": True, "blockOwnerDeletion": True}],
    }
    if template.metadata.annotations:
        metadata["annotations"] = dict(template.metadata.annotations)
    pod_spec = {**template.spec, "nodeName": node}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def _invalid(b: Builder, job: BroadcastJob, errors: list[FieldError], now: datetime) -> BcjPlan:
    """Never run a spec Kruise's webhook would refuse; report it once (an `InvalidSpec` condition, a
    Warning Event, a `rejected` rollout event)."""
    message = "; ".join(str(e) for e in errors)
    existing = next((c for c in job.status.conditions if c.type == CONDITION_INVALID_SPEC), None)
    if existing is not None and existing.message == message:
        return BcjPlan(commands=[], events=[], expectations=[], status=job.status, requeue_after=None, errors=errors)
    conditions = _condition(job.status.conditions, CONDITION_INVALID_SPEC, REASON_INVALID_SPEC, message, now)
    status = msgspec.structs.replace(job.status, conditions=conditions)
    b.reject_invalid(job.metadata.generation, message, errors[0].field, VERB_INVALID_SPEC,
                     [b.status_patch({"conditions": msgspec.to_builtins(conditions)})])
    return BcjPlan(commands=b.commands, events=b.events, expectations=[], status=status, requeue_after=None,
                   errors=errors)
