"""``plan_cloneset``: one Kruise CloneSet reconcile pass (`pkg/controller/cloneset/cloneset_controller.go`) as a pure function.

Input: a consistent view (CloneSet, its pods active and inactive, its ControllerRevisions), an injected
``now`` and the feature gates. Output: a :class:`Plan` — ordered executor commands carrying their own
preconditions, rollout-log events, the expectations the service must observe before planning this
CloneSet again, the status after the pass, and when to look again.

The pass, in Kruise's order:

0. Validation (kruisebus has no webhook): an invalid spec is never acted on; it is reported once on the
   CloneSet (``InvalidSpec`` condition + Warning Event) and on the rollout log (``rejected``).
1. Revisions (`getActiveRevisions`). A revision that must be created or renumbered is written *alone* in this pass (with
   the status): no pod may reference a revision the API server has not stored yet. The next pass runs
   once the revision is observed.
2. Scale (the scale step); if it wrote anything the pass ends (one kind of mutation per pass, Kruise's rule).
3. Otherwise update (the update step), which starts with the per-pod refresh.
4. Status (Kruise's status rules/Kruise's conditions), written only when Kruise would write it; ``podsToDelete`` truncation (in a pass
   without a status write, because both writes are guarded by the CloneSet's resourceVersion);
   history truncation.
5. Requeue: the earliest of grace remainders, the in-place grace just started, the progress deadline,
   and the moment the next ready pod becomes available under minReadySeconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import msgspec

from schemas.cloneset import CloneSet, CloneSetCondition, CloneSetStatus
from schemas.constants import (
    CONDITION_FAILED_UPDATE,
    CONDITION_INVALID_SPEC,
    CONDITION_PROGRESSING,
    REASON_INVALID_SPEC,
    REASON_PROGRESS_DEADLINE_EXCEEDED,
)
from schemas.kinds import CLONESET
from schemas.kube import ControllerRevision, JsonObject
from schemas.messages import (
    VERB_INVALID_SPEC,
    VERB_PODS_TO_DELETE_TRUNCATE,
    VERB_REVISION_BUMP,
    VERB_REVISION_CREATE,
    VERB_REVISION_DELETE,
    VERB_STATUS,
    Expectation,
)
from schemas.traceids import rollout_trace_hex
from services.planner.cloneset.calc import PodInfo, classify, mark_updated
from services.planner.cloneset.conditions import progressing
from services.planner.cloneset.context import Ctx
from services.planner.cloneset.pvcs import release_orphans
from services.planner.cloneset.revision import owned_revisions, select_revisions
from services.planner.cloneset.scale import scale_step
from services.planner.cloneset.status import compute_status, needs_write, status_json
from services.planner.cloneset.update import update_step
from services.planner.cloneset.validation import validate_cloneset
from services.planner.cloneset.view import CloneSetView, Plan
from services.planner.imagepulljob import predownload
from services.planner.kit.builder import Builder, short_digest
from services.planner.kit.conditions import get_condition, set_condition
from services.planner.kit.fielderrors import FieldError
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.gcpause import gc_paused
from services.planner.kit.podstate import available_in
from services.planner.kit.timeutil import format_time

__all__ = ["CloneSetView", "Expectation", "FieldError", "Plan", "plan_cloneset"]

_REV_ENCODER = msgspec.json.Encoder()


@gc_paused
def plan_cloneset(
    view: CloneSetView,
    *,
    now: datetime,
    gates: FeatureGates = DEFAULT_GATES,
    create_limit: int | None = None,
) -> Plan:
    """One reconcile pass over ``view`` at time ``now`` (UTC-aware; naive is taken as UTC).

    ``create_limit`` caps the pod creations of this pass: the planner service's slow start (Kruise
    creates in batches of 1, 2, 4, ... and stops after a batch with a failure). ``None`` plans every
    creation the pass needs, which is what one Kruise reconcile attempts when all of them succeed.
    """
    return _plan(view, now=now, gates=gates, create_limit=create_limit)


def _plan(view: CloneSetView, *, now: datetime, gates: FeatureGates, create_limit: int | None) -> Plan:
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    cs = view.cloneset
    # pods only matter to validation for podsToDelete (skip building its name index otherwise)
    pods_for_validation = view.pods if cs.spec.scale_strategy.pods_to_delete else []
    errors = validate_cloneset(cs, old=view.previous, pods=pods_for_validation, gates=gates)
    if errors:
        return _invalid_spec(cs, errors, now)

    infos, representatives = classify(cs, view.pods, now)
    # history truncation only needs the set of revision labels in use: one pod per label suffices
    sel = select_revisions(cs, view.revisions, representatives)
    update_name = sel.update.metadata.name
    tally = mark_updated(infos, update_name, cs, now)
    b = Builder.of(CLONESET, cs, now, trace_id=rollout_trace_hex(cs.metadata.uid, update_name))
    history = [r for r in owned_revisions(cs, view.revisions) if r.metadata.name != update_name]
    history.append(sel.update)
    ctx = Ctx(
        cs=cs,
        now=now,
        gates=gates,
        b=b,
        infos=infos,
        all_pods=list(view.pods),
        revisions=history,
        update_rev=sel.update,
        current_rev=sel.current,
        tally=tally,
        create_limit=create_limit,
        pvcs=list(view.pvcs),
    )

    conditions = [c for c in cs.status.conditions if c.type != CONDITION_INVALID_SPEC]
    was_invalid = len(conditions) != len(cs.status.conditions)
    if cs.metadata.deletion_timestamp is None:
        release_orphans(ctx)  # Kruise does this first in every reconcile, whatever else the pass does
    if sel.create is not None or sel.bump is not None:
        _revision_commands(b, sel.create, sel.bump, view.revisions)
    elif cs.metadata.deletion_timestamp is None:
        if not scale_step(ctx):
            outcome = update_step(ctx)
            if outcome.error:
                cond = CloneSetCondition(type=CONDITION_FAILED_UPDATE, status="True", message=outcome.error)
                conditions = set_condition(conditions, cond, now)
                b.event("update-failed", outcome.error, reason=CONDITION_FAILED_UPDATE)

    status = compute_status(
        cs,
        infos,
        update_revision=update_name,
        current_revision=sel.current.metadata.name,
        collision_count=sel.collision_count,
        conditions=conditions,
        hist=tally.hist,
    )
    conditions, deadline_delay = progressing(cs, status, now)
    status = msgspec.structs.replace(status, conditions=conditions)
    b.delay(deadline_delay)
    _progress_events(b, cs, status)

    wrote_status = needs_write(cs.status, status) or was_invalid
    if wrote_status:
        body = status_json(status)
        b.command(
            f"{b.uid}/status/{cs.metadata.resource_version}/{short_digest(body)}",
            VERB_STATUS,
            [b.status_patch(body)],
            revision=update_name,
        )
        old = cs.status
        if (
            old.current_revision
            and old.current_revision != status.current_revision
            and status.current_revision == status.update_revision
        ):
            b.event("rollout-completed", f"all pods are on revision {update_name}", revision=update_name)

    if predownload.enabled(gates) and sel.create is None and sel.bump is None and cs.metadata.deletion_timestamp is None:
        # image pre-download (gate PreDownloadImageForInPlaceUpdate, off by default): jobs for the nodes of
        # the pods not yet updated, deleted once the revisions are consistent
        pre = predownload.predownload_commands(
            cs, sel.current, sel.update, (ctx.template(sel.current), ctx.template(sel.update)),
            view.image_pull_jobs, gates, now,
            in_place_possible=ctx.in_place and ctx.inplace_spec(sel.current, sel.update) is not None)
        for cmd in pre.commands:
            cmd.rollout_trace_id = b.trace_id
        b.commands.extend(pre.commands)
        b.events.extend(pre.events)
    if not wrote_status:
        _truncate_pods_to_delete(b, cs, infos)
    for name in sel.delete:
        rev = next((r for r in view.revisions if r.metadata.name == name), None)
        b.command(
            f"{b.uid}/revision-delete/{rev.metadata.uid if rev else name}",
            VERB_REVISION_DELETE,
            [b.revision_delete(name, rev.metadata.uid if rev else "")],
            revision=name,
        )

    min_ready = cs.spec.min_ready_seconds or 0
    if min_ready > 0 and status.available_replicas != status.ready_replicas:
        waits = [w.total_seconds() for i in infos if (w := available_in(i.pod, min_ready, now)) is not None]
        if waits:
            b.delay(float(max(1, math.ceil(min(waits)))))
    requeue = min(b.delays) if b.delays else None
    return Plan(
        commands=b.commands,
        events=b.events,
        expectations=b.expectations,
        status=status,
        requeue_after=requeue,
        current_revision=status.current_revision,
        update_revision=status.update_revision,
    )


def _revision_commands(
    b: Builder,
    create: ControllerRevision | None,
    bump: ControllerRevision | None,
    observed: list[ControllerRevision],
) -> None:
    if create is not None:
        body: JsonObject = msgspec.to_builtins(create)
        body["apiVersion"] = create.api_version  # omitted by omit_defaults, required by the API server
        body["kind"] = create.kind
        b.command(
            f"{b.uid}/revision-create/{create.metadata.name}",
            VERB_REVISION_CREATE,
            [b.revision_create(body)],
            revision=create.metadata.name,
        )
    if bump is not None:
        old = next((r for r in observed if r.metadata.name == bump.metadata.name), None)
        ops: list[JsonObject] = []
        if old is not None:
            if old.metadata.uid:
                ops.append({"op": "test", "path": "/metadata/uid", "value": old.metadata.uid})
            ops.append({"op": "test", "path": "/revision", "value": old.revision})
        ops.append({"op": "replace", "path": "/revision", "value": bump.revision})
        if old is None or old.metadata.annotations != bump.metadata.annotations:
            ops.append(
                {"op": "add", "path": "/metadata/annotations", "value": dict(bump.metadata.annotations)}
            )
        b.command(
            f"{b.uid}/revision-bump/{bump.metadata.name}/{bump.revision}",
            VERB_REVISION_BUMP,
            [b.revision_patch(bump.metadata.name, ops)],
            revision=bump.metadata.name,
        )


def _truncate_pods_to_delete(b: Builder, cs: CloneSet, infos: list[PodInfo]) -> None:
    names = cs.spec.scale_strategy.pods_to_delete
    if not names:
        return
    existing = {i.name for i in infos}
    kept = [n for n in names if n in existing]
    if len(kept) == len(names):
        return
    b.command(
        f"{b.uid}/podstodelete-truncate/{cs.metadata.resource_version}/{short_digest(kept)}",
        VERB_PODS_TO_DELETE_TRUNCATE,
        [b.spec_patch({"scaleStrategy": {"podsToDelete": kept}})],
    )


def _progress_events(b: Builder, cs: CloneSet, status: CloneSetStatus) -> None:
    new = get_condition(status.conditions, CONDITION_PROGRESSING)
    old = get_condition(cs.status.conditions, CONDITION_PROGRESSING)
    if (
        new is not None
        and new.reason == REASON_PROGRESS_DEADLINE_EXCEEDED
        and (old is None or old.reason != new.reason)
    ):
        b.event("progress-deadline-exceeded", new.message, reason=new.reason)


def _invalid_spec(cs: CloneSet, errors: list[FieldError], now: datetime) -> Plan:
    """Report an invalid spec once; never act on it (no webhook in kruisebus)."""
    message = "; ".join(str(e) for e in errors)
    b = Builder.of(CLONESET, cs, now)
    existing = get_condition(cs.status.conditions, CONDITION_INVALID_SPEC)
    ts = format_time(now)
    cond = CloneSetCondition(
        type=CONDITION_INVALID_SPEC,
        status="True",
        reason=REASON_INVALID_SPEC,
        message=message,
        last_transition_time=existing.last_transition_time
        if existing is not None and existing.status == "True" and existing.last_transition_time
        else ts,
        last_update_time=ts,
    )
    unchanged = existing is not None and existing.status == "True" and existing.message == message
    if unchanged:
        return Plan(
            commands=[],
            events=[],
            expectations=[],
            status=cs.status,
            requeue_after=None,
            errors=errors,
            current_revision=cs.status.current_revision,
            update_revision=cs.status.update_revision,
        )
    conditions = [c for c in cs.status.conditions if c.type != CONDITION_INVALID_SPEC] + [cond]
    status = msgspec.structs.replace(cs.status, conditions=conditions)
    b.reject_invalid(cs.metadata.generation, message, errors[0].field, VERB_INVALID_SPEC,
                     [b.status_patch(status_json(status))])
    return Plan(
        commands=b.commands,
        events=b.events,
        expectations=[],
        status=status,
        requeue_after=None,
        errors=errors,
        current_revision=status.current_revision,
        update_revision=status.update_revision,
    )
