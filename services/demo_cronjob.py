"""The demo's AdvancedCronJob step: a schedule read in Asia/Shanghai creates a Job that runs to completion.

The seed's cron feature is time zones. This step applies an AdvancedCronJob with `timeZone: Asia/Shanghai`
and a per-minute calendar schedule (`@every` would have no zone at all: it counts real time), previews its
next runs in UTC and in Shanghai with the computation `kruisebus plan ACJ.yaml --now T` uses (T = the
object's creation, where its first slot is counted from), then follows the batch/v1 Job it creates until
the embedded cluster's Job controller marks it Complete (its container runs `RUN_SECONDS` on a simulated
kubelet). It checks that the Job is the first predicted run and that the AdvancedCronJob's
`status.lastScheduleTime` names the newest Job's slot.

The first slot is up to a minute away, so the demo starts this step first and lets it wait while the other
steps run (`start_cronjob_step`, then `run_cronjob_step` at the end): it adds only the Job's own seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from rich.progress import Progress

from schemas.advancedcronjob import AdvancedCronJob
from schemas.constants import ANNOTATION_SCHEDULED_AT
from schemas.job import Job
from schemas.messages import ADVANCED_CRON_JOBS, JOBS
from services.kube import Kube
from services.observe import poll
from services.planner.advancedcronjob.planner import PLANNER
from services.planner.kit.gates import DEFAULT_GATES
from sim.nodes import ANNOTATION_RUN_SECONDS

NAME = "shanghai-tick"
SCHEDULE = "* * * * *"
ZONE = "Asia/Shanghai"
RUN_SECONDS = 2


@dataclass
class CronJobReport:
    next_runs: list[dict[str, str]]  # {"utc": ..., "zone": ...}, as `kruisebus plan` prints them
    job: str
    slot_utc: str
    slot_zone: str
    completed: str  # the Job's status.completionTime
    ran_seconds: float  # startTime to completionTime
    succeeded: int


def acj_body(namespace: str) -> dict[str, Any]:
    pod = {"metadata": {"annotations": {ANNOTATION_RUN_SECONDS: str(RUN_SECONDS)}},
           "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "tick", "image": "busybox:1.36", "command": ["date"]}]}}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "AdvancedCronJob",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {"schedule": SCHEDULE, "timeZone": ZONE, "concurrencyPolicy": "Forbid",
                     "template": {"jobTemplate": {"spec": {"backoffLimit": 0, "template": pod}}}}}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _complete(job: Job) -> bool:
    return any(c.type == "Complete" and c.status == "True" for c in job.status.conditions)


@dataclass
class Started:
    acj: AdvancedCronJob
    next_runs: list[dict[str, str]]


async def start_cronjob_step(kube: Kube, *, namespace: str = "default") -> Started:
    """Apply the AdvancedCronJob and preview its next runs from its creation time."""
    acj = msgspec.json.decode(await kube.create(ADVANCED_CRON_JOBS, namespace, acj_body(namespace)),
                              type=AdvancedCronJob)
    created = acj.metadata.creation_timestamp
    assert created is not None
    _, doc = PLANNER.preview(acj, [], now=_at(created), gates=DEFAULT_GATES, create_limit=None)
    runs: list[dict[str, str]] = doc["nextRuns"]
    if doc.get("timeZone") != ZONE or not runs or any("zone" not in r for r in runs):
        raise AssertionError(f"AdvancedCronJob {NAME}: the preview reads {doc.get('timeZone')!r}, runs {runs}")
    return Started(acj=acj, next_runs=runs)


async def run_cronjob_step(kube: Kube, progress: Progress, started: Started, *, namespace: str = "default",
                           timeout: float = 90.0) -> CronJobReport:
    """Follow the first Job until it is Complete, check it against the preview, then pause the schedule."""
    acj, runs = started.acj, started.next_runs
    task = progress.add_task(f"AdvancedCronJob '{SCHEDULE}' in {ZONE}: the Job of {runs[0]['zone']} runs "
                             "to completion", total=3)

    async def jobs() -> list[Job]:
        items, _ = await kube.list(JOBS, namespace)
        out = [msgspec.json.decode(raw, type=Job) for raw in items]
        return sorted((j for j in out if (r := j.metadata.controller_ref()) is not None
                       and r.uid == acj.metadata.uid), key=lambda j: j.metadata.name)

    def show(js: list[Job]) -> None:  # created, running, complete
        first = js[0] if js else None
        progress.update(task, completed=0 if first is None else 3 if _complete(first)
                        else 2 if first.status.active else 1)

    js = await poll(jobs, lambda js: bool(js) and _complete(js[0]), timeout=timeout, on_sample=show,
                    what=f"the first Job of {NAME} Complete")
    job = js[0]
    slot = job.metadata.annotations.get(ANNOTATION_SCHEDULED_AT, "")
    if slot != runs[0]["utc"]:
        raise AssertionError(f"Job {job.metadata.name} ran for slot {slot}, the first predicted run was {runs[0]}")
    start, done = job.status.start_time, job.status.completion_time
    assert start is not None and done is not None
    # stop it here (the demo shows one run; another minute may have begun meanwhile), then the status must
    # name the newest Job's slot, as Kruise derives lastScheduleTime from the children
    await kube.patch(ADVANCED_CRON_JOBS, namespace, NAME, {"spec": {"paused": True}}, "merge")

    async def status_and_newest() -> tuple[str | None, str]:
        acj_now = msgspec.json.decode(await kube.get(ADVANCED_CRON_JOBS, namespace, NAME), type=AdvancedCronJob)
        newest = (await jobs())[-1].metadata.annotations.get(ANNOTATION_SCHEDULED_AT, "")
        return acj_now.status.last_schedule_time, newest

    await poll(status_and_newest, lambda pair: pair[0] == pair[1], timeout=20,
               what=f"AdvancedCronJob {NAME}: status.lastScheduleTime the newest Job's slot")
    return CronJobReport(next_runs=runs, job=job.metadata.name, slot_utc=slot, slot_zone=runs[0]["zone"],
                         completed=done, ran_seconds=(_at(done) - _at(start)).total_seconds(),
                         succeeded=job.status.succeeded)


__all__ = ["NAME", "SCHEDULE", "ZONE", "CronJobReport", "Started", "run_cronjob_step", "start_cronjob_step"]
