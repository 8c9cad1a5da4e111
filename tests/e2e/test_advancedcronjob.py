"""AdvancedCronJobs end to end on the sim, every service a process.

With a BroadcastJob template: `@every` creates BroadcastJob children named after their slot and owned by
the ACJ, Forbid skips a slot while one is active (and says so on the rollout log), the skipped slot runs
once the blocker finished, the successful-jobs history limit deletes the oldest child, and a planner
SIGKILLed between two slots creates neither a duplicate nor a gap. (As in tests/e2e/test_broadcastjob.py
the test finishes those pods itself.)

With a Job template: the children are batch/v1 Jobs run by the embedded cluster's Job controller, whose
pods run to completion on the simulated kubelets (`sim.kruisebus.io/run-seconds` in the template's pod
metadata); they reach `Complete` (or `Failed` with the exit-code annotation), and Forbid, Replace, both
history limits, `paused` and `status.active` / `lastScheduleTime` are checked against real running and
finished Jobs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from schemas.advancedcronjob import AdvancedCronJob, AdvancedCronJobStatus
from schemas.broadcastjob import BroadcastJob
from schemas.constants import ANNOTATION_SCHEDULED_AT
from schemas.job import Job
from schemas.kube import Pod
from schemas.messages import ADVANCED_CRON_JOBS, BROADCAST_JOBS, EVENT_DECODER, JOBS, PODS
from services.kube import Kube
from services.observe import pod_ready, poll
from services.stack import Stack
from sim.nodes import ANNOTATION_EXIT_CODE, ANNOTATION_RUN_SECONDS
from tests.e2e.helpers import NS

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

ACJ: dict[str, Any] = {
    "apiVersion": "apps.kruise.io/v1alpha1", "kind": "AdvancedCronJob", "metadata": {"name": "sweep", "namespace": NS},
    "spec": {"schedule": "@every 8s", "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 1,
             "template": {"broadcastJobTemplate": {"spec": {
                 "completionPolicy": {"type": "Always"},
                 "template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "main", "image": "busybox"}]}}}}}}}


async def children(kube: Kube, uid: str) -> list[BroadcastJob]:
    items, _ = await kube.list(BROADCAST_JOBS, NS)
    out = [msgspec.json.decode(raw, type=BroadcastJob) for raw in items]
    return sorted((j for j in out if (r := j.metadata.controller_ref()) is not None and r.uid == uid),
                  key=lambda j: j.metadata.name)


async def pods_of(kube: Kube, job: str) -> list[Pod]:
    items, _ = await kube.list(PODS, NS, label_selector=f"broadcastjob-name={job}")
    return [msgspec.json.decode(raw, type=Pod) for raw in items]


async def finish_pods_of(kube: Kube, job: str) -> None:
    """Once the job's pod runs on each of the 3 nodes, they all exit 0."""
    pods = await poll(lambda: pods_of(kube, job), lambda ps: len(ps) == 3 and all(pod_ready(p) for p in ps),
                      timeout=30, what=f"the 3 pods of {job} running and ready")
    for p in pods:
        if p.status.phase not in ("Succeeded", "Failed"):
            await kube.patch(PODS, NS, p.metadata.name, {"status": {"phase": "Succeeded"}}, "merge",
                             subresource="status")


async def test_every_forbid_and_history(stack: Stack, kube: Kube) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    acj = msgspec.json.decode(await kube.create(ADVANCED_CRON_JOBS, NS, ACJ), type=AdvancedCronJob)
    uid = acj.metadata.uid
    first = (await poll(lambda: children(kube, uid), lambda cs: len(cs) >= 1, timeout=30,
                        what="the first BroadcastJob child"))[0]
    slot = first.metadata.annotations["apps.kruise.io/scheduled-at"]
    assert first.metadata.name == f"sweep-{int(datetime.fromisoformat(slot.replace('Z', '+00:00')).timestamp())}"
    # the pods of the child run, and stay running: the next slot is skipped (Forbid) and the log says so
    bus = await stack.connect(name="test-acj")
    try:
        skipped = await poll(lambda: bus.read_since(bus.subjects.events_of_type("slot-skipped"), EVENT_DECODER,
                                                    started),
                             lambda evs: any(e.workload == "sweep" for e in evs), timeout=30,
                             what="a slot-skipped rollout event")
        assert first.metadata.name in skipped[0].message
    finally:
        await bus.close()
    assert [c.metadata.name for c in await children(kube, uid)] == [first.metadata.name]
    status = msgspec.json.decode(await kube.get(ADVANCED_CRON_JOBS, NS, "sweep"), type=AdvancedCronJob).status
    assert status.type == "BroadcastJob" and [r.name for r in status.active] == [first.metadata.name]
    assert status.last_schedule_time == slot

    # the blocker finishes: the newest slot runs (late), then its pods finish and the first child, now
    # beyond successfulJobsHistoryLimit 1, is deleted
    await finish_pods_of(kube, first.metadata.name)
    cs = await poll(lambda: children(kube, uid), lambda cs: len(cs) >= 2, timeout=30, what="a second child")
    second = cs[-1]
    assert second.metadata.name != first.metadata.name
    await finish_pods_of(kube, second.metadata.name)
    await poll(lambda: children(kube, uid), lambda cs: first.metadata.name not in [c.metadata.name for c in cs],
               timeout=30, what="the oldest successful child deleted by the history limit")


async def test_a_planner_killed_between_two_slots_creates_no_duplicate_and_no_gap(stack: Stack, kube: Kube) -> None:
    """SIGKILL of the planner right after a child was created: the restarted planner recomputes the schedule from
    the children (no timer is lost), creates each later slot exactly once, and `@every` keeps its cadence."""
    body = {**ACJ, "metadata": {"name": "steady", "namespace": NS},
            "spec": {**ACJ["spec"], "schedule": "@every 6s", "concurrencyPolicy": "Allow",
                     "template": {"broadcastJobTemplate": {"spec": {
                         **ACJ["spec"]["template"]["broadcastJobTemplate"]["spec"],
                         "completionPolicy": {"type": "Never"}}}}}}
    acj = msgspec.json.decode(await kube.create(ADVANCED_CRON_JOBS, NS, body), type=AdvancedCronJob)
    uid = acj.metadata.uid
    await poll(lambda: children(kube, uid), lambda cs: len(cs) >= 1, timeout=30, what="the first child")
    await stack.kill("planner")
    await stack.start_service("planner")
    cs = await poll(lambda: children(kube, uid), lambda cs: len(cs) >= 4, timeout=60, what="three more children")
    slots = [datetime.fromisoformat(c.metadata.annotations["apps.kruise.io/scheduled-at"].replace("Z", "+00:00"))
             for c in cs]
    assert len(set(slots)) == len(slots)  # each slot once
    gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)]
    # @every counts from the last slot: every gap is the period, except that a restart longer than it drops
    # the older missed slots (only the newest runs, as on Kruise): then one gap is a multiple of it
    assert all(g > 0 and g % 6 == 0 for g in gaps) and sum(g > 6 for g in gaps) <= 1, gaps
    for c in cs:  # and each child has at most one pod per node
        nodes = [p.spec.node_name for p in await pods_of(kube, c.metadata.name)]
        assert len(nodes) == len(set(nodes)), (c.metadata.name, nodes)


# --- Job children: batch/v1 Jobs run by the sim's Job controller, their containers run to completion ---

def job_acj(name: str, schedule: str, run_seconds: float, **spec: Any) -> dict[str, Any]:
    """An ACJ whose jobTemplate's pods run `run_seconds` and exit 0 on the simulated kubelets."""
    pod = {"metadata": {"annotations": {ANNOTATION_RUN_SECONDS: str(run_seconds)}},
           "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "AdvancedCronJob",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"schedule": schedule, **spec,
                     "template": {"jobTemplate": {"metadata": {"labels": {"report": name}},
                                                  "spec": {"backoffLimit": 0, "template": pod}}}}}


async def jobs_of(kube: Kube, uid: str) -> list[Job]:
    items, _ = await kube.list(JOBS, NS)
    out = [msgspec.json.decode(raw, type=Job) for raw in items]
    return sorted((j for j in out if (r := j.metadata.controller_ref()) is not None and r.uid == uid),
                  key=lambda j: j.metadata.name)


async def job_pods(kube: Kube, job: str) -> list[Pod]:
    items, _ = await kube.list(PODS, NS, label_selector=f"job-name={job}")
    return [msgspec.json.decode(raw, type=Pod) for raw in items]


async def acj_status(kube: Kube, name: str) -> AdvancedCronJobStatus:
    return msgspec.json.decode(await kube.get(ADVANCED_CRON_JOBS, NS, name), type=AdvancedCronJob).status


def complete(job: Job) -> bool:
    return any(c.type == "Complete" and c.status == "True" for c in job.status.conditions)


def slot_of(job: Job) -> datetime:
    return datetime.fromisoformat(job.metadata.annotations[ANNOTATION_SCHEDULED_AT].replace("Z", "+00:00"))


async def create_acj(kube: Kube, body: dict[str, Any]) -> str:
    return msgspec.json.decode(await kube.create(ADVANCED_CRON_JOBS, NS, body), type=AdvancedCronJob).metadata.uid


async def test_every_creates_jobs_that_run_to_completion_and_history_keeps_the_newest(stack: Stack,
                                                                                       kube: Kube) -> None:
    await check_jobs_run_to_completion(kube, "report")


@pytest.mark.real
async def test_jobs_run_to_completion_on_a_real_control_plane(real_stack: Stack, real_kube: Kube) -> None:
    """The same on kube-apiserver 1.20: the children are run by the real Job controller (on `sim nodes`
    kubelets), deleted with their pods by the real garbage collector."""
    try:
        await check_jobs_run_to_completion(real_kube, "report-real")
    finally:
        await real_kube.delete(ADVANCED_CRON_JOBS, NS, "report-real")


async def check_jobs_run_to_completion(kube: Kube, name: str) -> None:
    uid = await create_acj(kube, job_acj(name, "@every 3s", 0.5, successfulJobsHistoryLimit=2))
    jobs = await poll(lambda: jobs_of(kube, uid), lambda js: any(complete(j) for j in js), timeout=30,
                      what="a child Job Complete")
    first = jobs[0]
    assert first.metadata.name == f"{name}-{int(slot_of(first).timestamp())}"
    assert first.metadata.labels["report"] == name
    ref = first.metadata.controller_ref()
    assert ref is not None and (ref.kind, ref.api_version) == ("AdvancedCronJob", "apps.kruise.io/v1beta1")
    done = next(j for j in jobs if complete(j))
    assert done.status.succeeded == 1 and done.status.completion_time is not None
    [pod] = await job_pods(kube, done.metadata.name)
    assert pod.status.phase == "Succeeded"
    # the history limit 2: the oldest finished Job (and, propagated in the background, its pod) is deleted
    # once a third one has completed, and the newest two stay
    jobs = await poll(lambda: jobs_of(kube, uid),
                      lambda js: first.metadata.name not in [j.metadata.name for j in js]
                      and sum(complete(j) for j in js) == 2, timeout=40,
                      what="the oldest successful Job deleted by successfulJobsHistoryLimit 2")
    assert all(slot_of(j) > slot_of(first) for j in jobs)
    await poll(lambda: job_pods(kube, first.metadata.name), lambda ps: not ps, timeout=20,
               what=f"the pod of the deleted {first.metadata.name} garbage-collected")
    # status as Kruise derives it: lastScheduleTime the newest child's slot, active the unfinished children
    def consistent(pair: tuple[AdvancedCronJobStatus, list[Job]]) -> bool:
        st, js = pair
        return bool(js) and st.last_schedule_time == js[-1].metadata.annotations[ANNOTATION_SCHEDULED_AT] \
            and [r.name for r in st.active] == [j.metadata.name for j in js if not complete(j)]

    async def both() -> tuple[AdvancedCronJobStatus, list[Job]]:
        return await acj_status(kube, name), await jobs_of(kube, uid)

    st, _ = await poll(both, consistent, timeout=20, what="status.active and lastScheduleTime from the Jobs")
    assert st.type == "Job"
    assert all((r.kind, r.api_version) == ("Job", "batch/v1") for r in st.active)


async def test_forbid_skips_slots_while_the_job_runs(stack: Stack, kube: Kube) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    uid = await create_acj(kube, job_acj("forbid", "@every 3s", 8, concurrencyPolicy="Forbid"))
    [first] = await poll(lambda: jobs_of(kube, uid), lambda js: len(js) >= 1, timeout=30, what="the first Job")
    bus = await stack.connect(name="test-acj-forbid")
    try:
        skipped = await poll(lambda: bus.read_since(bus.subjects.events_of_type("slot-skipped"), EVENT_DECODER,
                                                    started),
                             lambda evs: any(e.workload == "forbid" for e in evs), timeout=30,
                             what="a slot-skipped rollout event")
    finally:
        await bus.close()
    assert first.metadata.name in skipped[0].message
    jobs = await jobs_of(kube, uid)
    assert [j.metadata.name for j in jobs] == [first.metadata.name] and not complete(jobs[0])
    st = await acj_status(kube, "forbid")
    assert [(r.kind, r.name) for r in st.active] == [("Job", first.metadata.name)]
    assert st.last_schedule_time == first.metadata.annotations[ANNOTATION_SCHEDULED_AT]
    # the Job completes after its 8 s: only then does the next (newest missed) slot run
    jobs = await poll(lambda: jobs_of(kube, uid), lambda js: len(js) >= 2, timeout=30, what="a second Job")
    first_now = next(j for j in jobs if j.metadata.name == first.metadata.name)
    assert complete(first_now)
    assert first_now.status.completion_time is not None
    second = jobs[-1]
    assert second.metadata.creation_timestamp is not None
    assert second.metadata.creation_timestamp >= first_now.status.completion_time
    assert (slot_of(second) - slot_of(first)).total_seconds() >= 6  # slots skipped while it ran


async def test_replace_deletes_the_running_job_and_creates_the_next(stack: Stack, kube: Kube) -> None:
    uid = await create_acj(kube, job_acj("replace", "@every 4s", 300, concurrencyPolicy="Replace"))
    [first] = await poll(lambda: jobs_of(kube, uid), lambda js: len(js) >= 1, timeout=30, what="the first Job")
    await poll(lambda: job_pods(kube, first.metadata.name), lambda ps: len(ps) == 1 and pod_ready(ps[0]),
               timeout=20, what=f"the pod of {first.metadata.name} running")
    jobs = await poll(lambda: jobs_of(kube, uid),
                      lambda js: bool(js) and first.metadata.name not in [j.metadata.name for j in js],
                      timeout=30, what=f"{first.metadata.name} replaced")
    assert slot_of(jobs[-1]) > slot_of(first) and not complete(jobs[-1])
    # the running pod went with its Job (propagation Background), not orphaned
    await poll(lambda: job_pods(kube, first.metadata.name), lambda ps: not ps, timeout=20,
               what=f"the pod of the replaced {first.metadata.name} deleted")
    st = await poll(lambda: acj_status(kube, "replace"), lambda s: len(s.active) == 1
                    and s.active[0].name != first.metadata.name, timeout=20, what="status.active the new Job")
    assert st.active[0].name in [j.metadata.name for j in await jobs_of(kube, uid)]


async def test_paused_creates_nothing_but_still_cleans_history(stack: Stack, kube: Kube) -> None:
    uid = await create_acj(kube, job_acj("paused", "@every 2s", 0.2))
    await poll(lambda: jobs_of(kube, uid), lambda js: any(complete(j) for j in js), timeout=30,
               what="a Job Complete")
    # pause, and drop the history limit to 0 in the same write: the planner's pass over the paused spec
    # deletes the finished Jobs (history is cleaned while paused), which shows it has seen the pause
    await kube.patch(ADVANCED_CRON_JOBS, NS, "paused", {"spec": {"paused": True, "successfulJobsHistoryLimit": 0}},
                     "merge")
    left = await poll(lambda: jobs_of(kube, uid), lambda js: not any(complete(j) for j in js), timeout=20,
                      what="the finished Jobs deleted while paused")
    # a clock: an unpaused twin on the same schedule; while it creates 3 Jobs the paused one creates none
    clock = await create_acj(kube, job_acj("clock", "@every 2s", 0.2))
    await poll(lambda: jobs_of(kube, clock), lambda js: len(js) >= 3, timeout=30, what="3 Jobs of the unpaused twin")
    names = [j.metadata.name for j in left]
    assert [j.metadata.name for j in await jobs_of(kube, uid) if j.metadata.name not in names] == []
    # resumed: it runs again (the newest missed slot only)
    await kube.patch(ADVANCED_CRON_JOBS, NS, "paused", {"spec": {"paused": False}}, "merge")
    await poll(lambda: jobs_of(kube, uid), lambda js: any(j.metadata.name not in names for j in js), timeout=20,
               what="a Job after the ACJ is resumed")


async def test_failed_jobs_history_limit_keeps_the_newest_failed_job(stack: Stack, kube: Kube) -> None:
    body = job_acj("flaky", "@every 3s", 0.3, failedJobsHistoryLimit=1)
    body["spec"]["template"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"][ANNOTATION_EXIT_CODE] = "1"
    uid = await create_acj(kube, body)

    def failed(job: Job) -> bool:
        return any(c.type == "Failed" and c.status == "True" for c in job.status.conditions)

    jobs = await poll(lambda: jobs_of(kube, uid), lambda js: any(failed(j) for j in js), timeout=30,
                      what="a child Job Failed")
    first = next(j for j in jobs if failed(j))
    assert [c.reason for c in first.status.conditions if c.type == "Failed"] == ["BackoffLimitExceeded"]
    assert first.status.failed == 1 and first.status.succeeded == 0
    # a failed Job is finished too: it is not active, and the next slot's failure deletes it (limit 1)
    jobs = await poll(lambda: jobs_of(kube, uid),
                      lambda js: first.metadata.name not in [j.metadata.name for j in js]
                      and sum(failed(j) for j in js) == 1, timeout=30,
                      what="the older failed Job deleted by failedJobsHistoryLimit 1")
    assert all(slot_of(j) > slot_of(first) for j in jobs)
