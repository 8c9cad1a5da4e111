"""``plan_advancedcronjob``: one Kruise AdvancedCronJob reconcile (`pkg/controller/advancedcronjob/advancedcronjob_{job,broadcastjob}_controller.go`) as a pure function.

Input: the AdvancedCronJob, the children it controls (Jobs for `jobTemplate`, BroadcastJobs for
`broadcastJobTemplate`), the spec the planner last accepted, an injected `now` and the zone schedules
without a zone run in. Output: commands (status write, history and Replace deletes, the child create),
rollout events, and `requeue_after` = seconds until the next slot (the planner's timer).

Kruise's order: status (type, active, lastScheduleTime rebuilt from the children), history cleanup,
paused, schedule, concurrency, create. Where Kruise only logs and stops, kruisebus tells the user as
well (a status condition, a Warning Event and a rollout event):

* `ScheduleFailed` / `TooManyMissedStartTimes`: more than 100 missed slots (or an unsatisfiable
  schedule); Kruise stops scheduling the object until the spec changes, and so does kruisebus;
* `DeletedChildRerun` / `NewestChildDeleted`: the newest child disappeared (TTL, a history limit of 0,
  a manual delete), so its slot is the newest missed slot again and is run again under the same name,
  as Kruise does (`startingDeadlineSeconds` shorter than the child's lifetime avoids it).

Commands need no expectations: a child's name is its slot (`<acj>-<unix seconds>`), so deciding the
same slot twice creates it once (AlreadyExists), and deletes carry the child's uid.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

import msgspec

from schemas.advancedcronjob import AdvancedCronJob, AdvancedCronJobStatus, Condition
from schemas.broadcastjob import BroadcastJob
from schemas.constants import (
    ACJ_OWNER_API_VERSION,
    ANNOTATION_SCHEDULED_AT,
    CONCURRENCY_FORBID,
    CONCURRENCY_REPLACE,
    CONDITION_DELETED_CHILD_RERUN,
    CONDITION_INVALID_SPEC,
    CONDITION_SCHEDULE_FAILED,
    DEFAULT_CONCURRENCY_POLICY,
    EVENT_FAILED_CREATE,
    EVENT_FAILED_DELETE,
    JOB_CONDITION_COMPLETE,
    JOB_CONDITION_FAILED,
    KIND_ADVANCED_CRON_JOB,
    REASON_INVALID_SPEC,
    REASON_NEWEST_CHILD_DELETED,
    REASON_UNPARSABLE_SCHEDULE,
    TEMPLATE_KIND_BROADCAST_JOB,
    TEMPLATE_KIND_JOB,
)
from schemas.job import Job, JobCondition
from schemas.kinds import ADVANCED_CRON_JOB, BROADCAST_JOB, JOB, Kind
from schemas.kube import JsonObject, ObjectReference
from schemas.messages import (
    VERB_CHILD_CREATE,
    VERB_CHILD_DELETE,
    VERB_EVENT,
    VERB_INVALID_SPEC,
    VERB_STATUS,
    ApiOp,
    Command,
    CreateOp,
    DeleteOp,
    Expectation,
    OwnerCurrent,
    RolloutEvent,
)
from services.planner.advancedcronjob.schedule import ScheduleError, Slots, next_schedule
from services.planner.advancedcronjob.validation import validate_advancedcronjob
from services.planner.kit.builder import Builder, kube_event, short_digest
from services.planner.kit.conditions import get_condition, set_condition
from services.planner.kit.cron import GoTime, parse_rfc3339
from services.planner.kit.fielderrors import FieldError
from services.planner.kit.plan import Revisionless
from services.planner.kit.timeutil import format_time

__all__ = ["AcjPlan", "Child", "child_name", "plan_advancedcronjob"]

_JSON = msgspec.json.Decoder()
_JSON_ENCODER = msgspec.json.Encoder()

Child = Job | BroadcastJob


class AcjPlan(msgspec.Struct, Revisionless):
    """One pass: writes in order, log entries, the status after the pass, and when to look again."""

    commands: list[Command]
    events: list[RolloutEvent]
    status: AdvancedCronJobStatus
    requeue_after: float | None
    errors: list[FieldError]
    slots: Slots | None = None  # what the schedule said (None: not evaluated: invalid, paused, error)
    created: str = ""  # the child created in this pass
    deleted: list[str] = []  # children deleted in this pass (Replace first, then history)
    skipped: str = ""  # why the due slot was not run ("" when none was due or it ran)
    expectations: list[Expectation] = []

    @property
    def accepted(self) -> bool:
        return not self.errors


def child_name(acj_name: str, slot: GoTime) -> str:
    """`<acj>-<slot as Unix seconds>` (Kruise's `getJobName`; Kubernetes CronJob uses minutes)."""
    return f"{acj_name}-{slot.unix}"


def template_kind(acj: AdvancedCronJob) -> str:
    return TEMPLATE_KIND_JOB if acj.spec.template.job_template is not None else TEMPLATE_KIND_BROADCAST_JOB


def _finished(conditions: Sequence[JobCondition]) -> str:
    """"Complete", "Failed" or "" (active): a Complete or Failed condition with status True."""
    for c in conditions:
        if c.type in (JOB_CONDITION_COMPLETE, JOB_CONDITION_FAILED) and c.status == "True":
            return c.type
    return ""


def _ref(child: Child, kind: Kind) -> ObjectReference:
    meta = child.metadata
    api_version = "batch/v1" if kind is JOB else ACJ_OWNER_API_VERSION
    return ObjectReference(api_version=api_version, kind=kind.kind, namespace=meta.namespace, name=meta.name,
                           uid=meta.uid, resource_version=meta.resource_version)


def _status_json(status: AdvancedCronJobStatus) -> JsonObject:
    """The whole status (a full Update in Kruise): absent fields are cleared with null."""
    body: JsonObject = msgspec.to_builtins(status)
    for key in ("active", "lastScheduleTime", "conditions"):
        body.setdefault(key, None)
    return body


def _start_key(child: Child) -> str:
    return child.status.start_time or ""  # a missing startTime sorts first (oldest)


def plan_advancedcronjob(acj: AdvancedCronJob, children: Sequence[Child], *, now: datetime,
                         previous: AdvancedCronJob | None = None, local: tzinfo = UTC) -> AcjPlan:
    """One reconcile at `now` (aware; naive is UTC). `children`: the objects the AdvancedCronJob
    controls, in name order (those of another kind than its template's are ignored, as Kruise lists
    only that kind); `local` is the zone of schedules without one (the controller's zone)."""
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    b = Builder.of(ADVANCED_CRON_JOB, acj, now)
    errors = validate_advancedcronjob(acj, previous)
    if errors:
        return _invalid_spec(b, acj, errors, now)
    kind_name = template_kind(acj)
    kind = JOB if kind_name == TEMPLATE_KIND_JOB else BROADCAST_JOB

    # status: active children and the newest slot among all of them (finished ones included)
    active: list[Child] = []
    succeeded: list[Child] = []
    failed: list[Child] = []
    newest: GoTime | None = None
    newest_text: str | None = None
    for child in children:
        if child.kind != kind.kind:
            continue
        state = _finished(child.status.conditions)
        pool = succeeded if state == JOB_CONDITION_COMPLETE else failed if state == JOB_CONDITION_FAILED else active
        pool.append(child)
        text = child.metadata.annotations.get(ANNOTATION_SCHEDULED_AT)
        at = parse_rfc3339(text, local) if text else None
        if at is not None and (newest is None or at.after(newest)):
            newest, newest_text = at, text
    conditions = [c for c in acj.status.conditions if c.type != CONDITION_INVALID_SPEC]

    # history: failed, then successful, oldest startTime first; also while paused
    history: list[tuple[Child, str]] = []
    for pool, limit, what in ((failed, acj.spec.failed_jobs_history_limit, "failed"),
                              (succeeded, acj.spec.successful_jobs_history_limit, "successful")):
        if limit is None or len(pool) <= limit:
            continue
        for child in sorted(pool, key=_start_key)[: len(pool) - limit]:
            history.append((child, f"deleted {what} {kind.kind} {child.metadata.name}: beyond "
                                   f"{what}JobsHistoryLimit {limit}"))

    slots: Slots | None = None
    requeue: float | None = None
    skipped = ""
    warnings: list[Command] = []
    replaced: list[Child] = []
    created = ""
    if acj.spec.paused:
        skipped = "paused"
    else:
        try:
            slots = next_schedule(acj, now=now, last_schedule=newest_text, local=local)
        except ScheduleError as e:
            conditions = _schedule_failed(b, warnings, conditions, e, now)
        else:
            conditions = [c for c in conditions if c.type != CONDITION_SCHEDULE_FAILED]
            if slots.next is not None:
                requeue = max(0.0, (slots.next.utc() - now).total_seconds())
    if slots is not None and slots.missed is not None:
        slot = slots.missed
        name = child_name(acj.metadata.name, slot)
        policy = acj.spec.concurrency_policy or DEFAULT_CONCURRENCY_POLICY
        if policy == CONCURRENCY_FORBID and active:
            skipped = (f"concurrency policy Forbid: {len(active)} active "
                       f"({', '.join(c.metadata.name for c in active)}); slot {slot.rfc3339()} not run")
            b.event("slot-skipped", skipped, reason=CONCURRENCY_FORBID, data={"slot": slot.rfc3339()})
        else:
            if policy == CONCURRENCY_REPLACE:
                replaced = list(active)
            if _already_ran(acj, slot, local) or _rerun_named(conditions, name):
                conditions = _rerun(b, warnings, conditions, name, slot, now)
            else:
                conditions = [c for c in conditions if c.type != CONDITION_DELETED_CHILD_RERUN]
            created = name

    status = AdvancedCronJobStatus(type=kind_name, active=[_ref(c, kind) for c in active],
                                   last_schedule_time=format_time(newest.utc()) if newest is not None else None,
                                   conditions=conditions)
    # Kruise's order: status, history, (paused, schedule, concurrency), Replace deletes, create
    if msgspec.to_builtins(status) != msgspec.to_builtins(acj.status):
        body = _status_json(status)
        b.command(f"{b.uid}/status/{acj.metadata.resource_version}/{short_digest(body)}", VERB_STATUS,
                  [b.status_patch(body)])
    for child, message in history:
        _delete(b, kind, child, "history", message)
    b.commands.extend(warnings)
    if created:
        assert slots is not None and slots.missed is not None
        _create(b, acj, kind, slots.missed, slots, replaced)
    deleted = [c.metadata.name for c, _ in history] + [c.metadata.name for c in replaced]
    return AcjPlan(commands=b.commands, events=b.events, status=status, requeue_after=requeue, errors=[],
                   slots=slots, created=created, deleted=deleted, skipped=skipped)


def _rerun_named(conditions: list[Condition], name: str) -> bool:
    cond = get_condition(conditions, CONDITION_DELETED_CHILD_RERUN)
    return cond is not None and cond.message.startswith(name + " ")


def _already_ran(acj: AdvancedCronJob, slot: GoTime, local: tzinfo) -> bool:
    """The slot is not after the lastScheduleTime the status recorded: its child existed and is gone."""
    text = acj.status.last_schedule_time
    recorded = parse_rfc3339(text, local) if text else None
    return recorded is not None and not slot.after(recorded)


def _delete(b: Builder, kind: Kind, child: Child, why: str, message: str) -> None:
    meta = child.metadata
    b.command(f"{b.uid}/child-delete/{meta.uid or meta.name}", VERB_CHILD_DELETE,
              [_delete_op(kind, child, b.namespace)],
              on_failure=kube_event(EVENT_FAILED_DELETE, f"Error deleting {kind.kind} {meta.name}", warning=True))
    b.event("child-deleted", message, reason=why, data={"child": meta.name})


def _delete_op(kind: Kind, child: Child, namespace: str) -> DeleteOp:
    meta = child.metadata
    return DeleteOp(resource=kind.api_resource, namespace=meta.namespace or namespace, name=meta.name, uid=meta.uid,
                    propagation_policy="Background")


def _create(b: Builder, acj: AdvancedCronJob, kind: Kind, slot: GoTime, slots: Slots,
            replaced: list[Child]) -> str:
    """Replace's deletes and the create are one command: its operations run in order and a failed
    delete (other than NotFound) stops it before the create, as in Kruise."""
    name = child_name(acj.metadata.name, slot)
    body = child_body(acj, kind, slot)
    ref = b.ref
    op = CreateOp(resource=kind.api_resource, namespace=b.namespace, body=body,
                  owner=OwnerCurrent(resource=ref.resource, name=ref.name, uid=ref.uid, generation=b.generation))
    ops: list[ApiOp] = [_delete_op(kind, c, b.namespace) for c in replaced]
    for c in replaced:
        b.event("child-deleted", f"deleted active {kind.kind} {c.metadata.name}: concurrency policy Replace",
                reason=CONCURRENCY_REPLACE, data={"child": c.metadata.name})
    # Kruise only logs a refused child ("Unable to create Job for AdvancedCronJob"); kruisebus files it as a
    # Warning on the AdvancedCronJob (a BroadcastJob child refused for its restartPolicy or its name length)
    b.command(f"{b.uid}/child-create/{name}/{acj.metadata.resource_version}", VERB_CHILD_CREATE, [*ops, op],
              on_failure=kube_event(EVENT_FAILED_CREATE, f"Error creating {kind.kind} {name}", warning=True))
    dropped = slots.missed_count - 1
    message = f"created {kind.kind} {name} for slot {slot.rfc3339()}"
    if dropped:
        message += f" ({dropped} older missed slot{'s' if dropped > 1 else ''} not run, as Kruise does)"
    b.event("child-created", message, data={"child": name, "slot": slot.rfc3339(), "dropped": dropped})
    return name


def child_body(acj: AdvancedCronJob, kind: Kind, slot: GoTime) -> JsonObject:
    """The child object: template labels and annotations plus `apps.kruise.io/scheduled-at`, the
    template spec unchanged, one controller owner reference (`apps.kruise.io/v1beta1`)."""
    t = acj.spec.template
    spec: Any
    if kind is JOB:
        assert t.job_template is not None
        meta, spec = t.job_template.metadata, _JSON.decode(_JSON_ENCODER.encode(t.job_template.spec))  # a deep copy
    else:
        assert t.broadcast_job_template is not None
        meta, spec = t.broadcast_job_template.metadata, msgspec.to_builtins(t.broadcast_job_template.spec)
    annotations = {**meta.annotations, ANNOTATION_SCHEDULED_AT: slot.rfc3339()}
    metadata: JsonObject = {
        "name": child_name(acj.metadata.name, slot),
        "namespace": acj.metadata.namespace,
        "annotations": annotations,
        "ownerReferences": [{"apiVersion": ACJ_OWNER_API_VERSION, "kind": KIND_ADVANCED_CRON_JOB,
                             "name": acj.metadata.name, "uid": acj.metadata.uid, "controller": True,
                             "blockOwnerDeletion": True}],
    }
    if meta.labels:
        metadata["labels"] = dict(meta.labels)
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": metadata, "spec": spec}


def _schedule_failed(b: Builder, warnings: list[Command], conditions: list[Condition], e: ScheduleError,
                     now: datetime) -> list[Condition]:
    """Kruise logs "Unable to figure out CronJob schedule" and never requeues; say it where users look."""
    hint = ""
    if e.reason != REASON_UNPARSABLE_SCHEDULE:
        hint = " (kruisebus, like Kruise, creates nothing for this AdvancedCronJob until the spec changes)"
    message = e.message + hint
    old = get_condition(conditions, CONDITION_SCHEDULE_FAILED)
    if old is not None and old.status == "True" and old.reason == e.reason and old.message == message:
        return conditions
    cond = Condition(type=CONDITION_SCHEDULE_FAILED, status="True", reason=e.reason, message=message)
    conditions = set_condition([c for c in conditions if c.type != CONDITION_SCHEDULE_FAILED], cond, now)
    b.event("schedule-failed", message, reason=e.reason, field="spec.schedule")
    warnings.append(Command(id=f"{b.uid}/schedule-failed/{b.generation}/{short_digest(message)}",
                            verb=VERB_EVENT, workload=b.ref, on_success=kube_event(e.reason, message, warning=True)))
    return conditions


def _rerun(b: Builder, warnings: list[Command], conditions: list[Condition], name: str, slot: GoTime,
           now: datetime) -> list[Condition]:
    message = (f"{name} (slot {slot.rfc3339()}) was deleted and is created again: its slot is the newest "
               "missed slot again, as on Kruise; set startingDeadlineSeconds shorter than a child's "
               "lifetime to avoid re-runs")
    old = get_condition(conditions, CONDITION_DELETED_CHILD_RERUN)
    if old is not None and old.message == message:
        return conditions  # told already (this pass repeats one whose create is not observed yet)
    cond = Condition(type=CONDITION_DELETED_CHILD_RERUN, status="True", reason=REASON_NEWEST_CHILD_DELETED,
                     message=message)
    conditions = set_condition([c for c in conditions if c.type != CONDITION_DELETED_CHILD_RERUN], cond, now)
    b.event("slot-rerun", message, reason=REASON_NEWEST_CHILD_DELETED, data={"child": name, "slot": slot.rfc3339()})
    warnings.append(Command(id=f"{b.uid}/slot-rerun/{name}/{b.resource_version}", verb=VERB_EVENT, workload=b.ref,
                            on_success=kube_event(REASON_NEWEST_CHILD_DELETED, message, warning=True)))
    return conditions


def _invalid_spec(b: Builder, acj: AdvancedCronJob, errors: list[FieldError], now: datetime) -> AcjPlan:
    """Never act on a spec Kruise's webhook would refuse; report it once."""
    message = "; ".join(str(e) for e in errors)
    existing = get_condition(acj.status.conditions, CONDITION_INVALID_SPEC)
    if existing is not None and existing.status == "True" and existing.message == message:
        return AcjPlan(commands=[], events=[], status=acj.status, requeue_after=None, errors=errors)
    ts = format_time(now)
    cond = Condition(type=CONDITION_INVALID_SPEC, status="True", reason=REASON_INVALID_SPEC, message=message,
                     last_transition_time=ts, last_update_time=ts)
    conditions = [c for c in acj.status.conditions if c.type != CONDITION_INVALID_SPEC] + [cond]
    status = msgspec.structs.replace(acj.status, conditions=conditions)
    b.reject_invalid(acj.metadata.generation, message, errors[0].field, VERB_INVALID_SPEC,
                     [b.status_patch(_status_json(status))])
    return AcjPlan(commands=b.commands, events=b.events, status=status, requeue_after=None, errors=errors)
