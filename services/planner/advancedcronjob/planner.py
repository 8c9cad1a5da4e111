"""The AdvancedCronJob's entry in the registry of workload planners, and its `kruisebus plan` preview.

The preview answers what a user asks of a schedule: when it runs next (UTC and the schedule's zone),
what this pass does now (create which child, skip a slot, replace active children, delete which
history) and when the planner looks again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import msgspec

from schemas.advancedcronjob import AdvancedCronJob
from schemas.broadcastjob import BroadcastJob
from schemas.job import Job
from schemas.kinds import ADVANCED_CRON_JOB, BROADCAST_JOB, JOB, Kind
from schemas.kube import Pod
from schemas.messages import Command, CreateOp, DeleteOp
from services.planner.advancedcronjob.plan import AcjPlan, Child, plan_advancedcronjob
from services.planner.advancedcronjob.schedule import ScheduleError, effective_schedule, parse, schedule_zone
from services.planner.kit.cron import GoTime
from services.planner.kit.gates import FeatureGates
from services.planner.kit.timeutil import format_time
from services.planner.kit.workload import Shared

PREVIEW_RUNS = 5


class AdvancedCronJobPlanner:
    kind: Kind = ADVANCED_CRON_JOB
    owned: tuple[Kind, ...] = (JOB, BROADCAST_JOB)
    shared: tuple[Shared, ...] = ()

    def __init__(self, local: tzinfo = UTC) -> None:
        self.local = local  # the zone of schedules without one (Kruise's image runs in UTC)

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> AcjPlan:
        assert isinstance(obj, AdvancedCronJob)
        children: list[Child] = [*owned.get(JOB.token, ()), *owned.get(BROADCAST_JOB.token, ())]
        return plan_advancedcronjob(obj, children, now=now, previous=previous, local=self.local)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, AdvancedCronJob)
        uid = obj.metadata.uid
        children = [o for o in objects if isinstance(o, Job | BroadcastJob)
                    and (not uid or ((ref := o.metadata.controller_ref()) is not None and ref.uid == uid))]
        children.sort(key=lambda c: c.metadata.name)
        plan = plan_advancedcronjob(obj, children, now=now, local=self.local)
        return (1 if plan.errors else 0), preview_document(obj, plan, now, self.local)


def _times(at: GoTime, zone: tzinfo | None) -> dict[str, str]:
    out = {"utc": format_time(at.utc())}
    if zone is not None:
        out["zone"] = at.in_(zone).rfc3339()
    return out


def preview_document(acj: AdvancedCronJob, plan: AcjPlan, now: datetime, local: tzinfo) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": "AdvancedCronJob", "namespace": acj.metadata.namespace,
                           "name": acj.metadata.name, "now": format_time(now)}
    if plan.errors:
        doc["valid"] = False
        doc["errors"] = [{"field": e.field, "message": str(e)} for e in plan.errors]
        return doc
    doc["valid"] = True
    doc["schedule"] = effective_schedule(acj.spec.schedule, acj.spec.time_zone)
    try:
        sched = parse(acj)
    except ScheduleError as e:
        doc["scheduleError"] = e.message
        sched = None
    zone = schedule_zone(sched, local) if sched is not None else None
    doc["timeZone"] = str(getattr(zone, "key", zone)) if zone is not None else None
    runs: list[dict[str, str]] = []
    if sched is not None:
        t: GoTime | None = GoTime.of(now, local)
        for _ in range(PREVIEW_RUNS):
            t = sched.next(t) if t is not None else None
            if t is None:
                break
            runs.append(_times(t, zone))
    doc["nextRuns"] = runs
    status_doc = msgspec.to_builtins(plan.status)
    doc["status"] = status_doc
    doc["thisPass"] = {
        "create": plan.created or None,
        "slot": _times(plan.slots.missed, zone) if plan.slots is not None and plan.slots.missed else None,
        "droppedMissedSlots": max(0, plan.slots.missed_count - 1) if plan.slots is not None else 0,
        "skip": plan.skipped or None,
        "delete": plan.deleted,
    }
    doc["commands"] = [_command(c) for c in plan.commands]
    doc["events"] = [{"type": e.type, "message": e.message} for e in plan.events]
    if plan.requeue_after is not None:
        doc["looksAgain"] = {"after_seconds": round(plan.requeue_after, 3),
                             "at": format_time(now + timedelta(seconds=plan.requeue_after))}
    else:
        doc["looksAgain"] = None
    return doc


def _command(cmd: Command) -> dict[str, Any]:
    ops: list[str] = []
    for op in cmd.ops:
        if isinstance(op, CreateOp):
            ops.append(f"create {op.resource.plural}/{(op.body.get('metadata') or {}).get('name', '')}")
        elif isinstance(op, DeleteOp):
            ops.append(f"delete {op.resource.plural}/{op.name}")
        else:
            ops.append(f"patch {op.resource.plural}/{op.name}" + (f"/{op.subresource}" if op.subresource else ""))
    out: dict[str, Any] = {"id": cmd.id, "verb": cmd.verb, "ops": ops}
    if cmd.on_success is not None:
        out["event"] = f"{cmd.on_success.type} {cmd.on_success.reason}: {cmd.on_success.message}"
    return out


PLANNER = AdvancedCronJobPlanner()
