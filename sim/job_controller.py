"""The Job controller of kube-controller-manager 1.20 (`pkg/controller/job/job_controller.go`), in-process.

The embedded cluster has no controller-manager, yet kruisebus's cron-style workloads create batch/v1 Jobs
and wait for them to finish: this runs their pods the way the real controller does, so what a workload
concludes from a Job on the sim also holds on Kubernetes (the `[real]` conformance cases check that).
It works on the store directly (the store is its always-fresh cache, so it needs no expectations):

- pods from the template (`job_api.template_pod`: `<job>-xxxxx`, the template's labels with
  `controller-uid`/`job-name`, a controller reference), as many as `parallelism` allows and the remaining
  `completions` need; surplus active pods deleted (not-ready, unscheduled and pending ones first);
- `status.active/succeeded/failed`, `startTime`, `completionTime`, conditions `Complete` and `Failed`
  (`BackoffLimitExceeded`: a new failure once the retries exceed `backoffLimit`, or, for
  restartPolicy OnFailure, the containers' restarts reaching it; `DeadlineExceeded`: active
  longer than `activeDeadlineSeconds`); a failed Job's active pods are deleted;
- 1.20's work-queue timing: a failed pod is looked at after the back-off (`backoff` * 2^(n-1), capped at
  `max_backoff`, n = the retries so far), a sync that saw a new failure is retried after the back-off,
  more successes reset it; every other change is handled at once;
- Events `SuccessfulCreate`, `SuccessfulDelete`, `Completed`, and the failure reason (Warning).

Not done (1.20 does it): adopting orphan pods that match the selector, releasing pods that no longer match.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from sim.errors import ApiError
from sim.events import event_body
from sim.store import Store, WatchEvent, now_iso

log = logging.getLogger("sim.jobs")

DEFAULT_BACKOFF = 10.0  # DefaultJobBackOff
MAX_BACKOFF = 360.0  # MaxJobBackOff

REASON_BACKOFF = "BackoffLimitExceeded"
MESSAGE_BACKOFF = "Job has reached the specified backoff limit"
REASON_DEADLINE = "DeadlineExceeded"
MESSAGE_DEADLINE = "Job was active longer than specified deadline"

TERMINAL = ("Succeeded", "Failed")


def _finished(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _ts(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _condition(type_: str, reason: str = "", message: str = "") -> dict[str, Any]:
    t = now_iso()
    c: dict[str, Any] = {"type": type_, "status": "True", "lastProbeTime": t, "lastTransitionTime": t}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _controller_uid(pod: dict[str, Any]) -> str | None:
    for r in pod["metadata"].get("ownerReferences") or []:
        if r.get("controller") and r.get("kind") == "Job" and r.get("apiVersion") == "batch/v1":
            return str(r.get("uid"))
    return None


def _deletion_rank(pod: dict[str, Any]) -> tuple[int, int, int]:
    """controller.ActivePods order: unscheduled < scheduled, pending < running, not ready < ready."""
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        1 if status.get("phase") == "Running" else 0,
        1 if ready else 0,
    )


class JobController:
    """Watches Jobs and their pods in `store`; `start()` / `stop()` run it on the current loop."""

    def __init__(
        self,
        store: Store,
        *,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        events: bool = True,
    ) -> None:
        self.store = store
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.events = events
        self.jobs = store.rt("jobs", "batch")
        self.pods = store.rt("pods")
        self.requeues: dict[tuple[str, str], int] = {}  # the work queue's NumRequeues per Job
        self._due: dict[tuple[str, str], float] = {}  # waiting keys -> monotonic time they are due
        self._ready: dict[tuple[str, str], None] = {}  # keys to sync now, in order
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._watch(self.jobs, self._on_job)),
            asyncio.ensure_future(self._watch(self.pods, self._on_pod)),
            asyncio.ensure_future(self._worker()),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _watch(self, rt: Any, handle: Any) -> None:
        w = self.store.watch(rt)
        try:
            while not w.closed:
                for ev in await w.next_batch():
                    try:
                        handle(ev)
                    except Exception:
                        log.exception("job controller: %s event", rt.plural)
        finally:
            w.close()

    # ---------------------------------------------------------------- the queue

    def enqueue(self, key: tuple[str, str], delay: float = 0.0) -> None:
        """workqueue AddAfter: no delay adds the key now (a waiting entry stays, as in client-go's
        delaying queue); a delay puts it in the waiting set, where the earliest wanted time wins."""
        if delay <= 0:
            self._ready[key] = None
        else:
            due = time.monotonic() + delay
            if key not in self._due or self._due[key] > due:
                self._due[key] = due
        self._wake.set()

    def _backoff_for(self, key: tuple[str, str]) -> float:
        """getBackoff: 0 before the first retry, then backoff * 2^(retries-1), capped."""
        n = self.requeues.get(key, 0)
        if n <= 0:
            return 0.0
        return float(min(self.backoff * 2 ** (n - 1), self.max_backoff))

    async def _worker(self) -> None:
        while True:
            now = time.monotonic()
            for key in sorted((k for k, t in self._due.items() if t <= now), key=lambda k: self._due[k]):
                del self._due[key]
                self._ready[key] = None
            while self._ready:
                key = next(iter(self._ready))
                del self._ready[key]
                try:
                    self.sync(key)
                except Exception:
                    log.exception("job controller: sync %s/%s", *key)
            self._wake.clear()
            nxt = min(self._due.values(), default=None)
            timeout = None if nxt is None else max(nxt - time.monotonic(), 0.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    # ---------------------------------------------------------------- event handlers

    def _on_job(self, ev: WatchEvent) -> None:
        meta = ev.obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if ev.type == "DELETED":
            self.requeues.pop(key, None)
            return
        self.enqueue(key)
        ads = (ev.obj.get("spec") or {}).get("activeDeadlineSeconds")
        start = _ts((ev.obj.get("status") or {}).get("startTime"))
        old_ads = ((ev.old or {}).get("spec") or {}).get("activeDeadlineSeconds")
        if ev.type == "MODIFIED" and ads is not None and ads != old_ads and start is not None:
            self.enqueue(key, start + ads - time.time())

    def _on_pod(self, ev: WatchEvent) -> None:
        uid = _controller_uid(ev.obj)
        if uid is None:
            return
        job = self.store.get_by_uid(uid)
        if job is None or job.get("kind") != "Job":
            return
        key = (job["metadata"].get("namespace", ""), job["metadata"]["name"])
        failed = ev.type == "MODIFIED" and (ev.obj.get("status") or {}).get("phase") == "Failed"
        self.enqueue(key, self._backoff_for(key) if failed else 0.0)

    # ---------------------------------------------------------------- syncJob

    def _pods_of(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        uid = job["metadata"]["uid"]
        return [p for p in self.store.dependents(uid) if p.get("kind") == "Pod" and _controller_uid(p) == uid]

    def sync(self, key: tuple[str, str]) -> None:
        ns, name = key
        job = self.store.try_get(self.jobs, ns, name)
        if job is None or _finished(job):
            self.requeues.pop(key, None)
            return
        spec = job.get("spec") or {}
        old_status = job.get("status") or {}
        status = dict(old_status)
        conditions = list(status.get("conditions") or [])
        previous_retry = self.requeues.get(key, 0)
        pods = self._pods_of(job)
        active_pods = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") not in TERMINAL
            and not p["metadata"].get("deletionTimestamp")
        ]
        active = len(active_pods)
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Failed")
        parallelism = int(spec.get("parallelism") or 0)
        backoff_limit = int(spec.get("backoffLimit") or 0)
        ads = spec.get("activeDeadlineSeconds")
        if not status.get("startTime"):
            status["startTime"] = now_iso()
            if ads is not None:
                self.enqueue(key, float(ads))
        new_failure = failed > int(old_status.get("failed") or 0)
        # a new failure only counts when active differs from parallelism: otherwise the previous pass's
        # status write failed and this failure was already seen
        exceeds = new_failure and active != parallelism and previous_retry + 1 > backoff_limit
        forget = int(old_status.get("succeeded") or 0) < succeeded
        reason = message = ""
        if exceeds or self._past_backoff_limit_on_failure(job, pods):
            reason, message = REASON_BACKOFF, MESSAGE_BACKOFF
        elif (
            ads is not None and (start := _ts(status["startTime"])) is not None and time.time() - start >= ads
        ):
            reason, message = REASON_DEADLINE, MESSAGE_DEADLINE
        if reason:
            for p in active_pods:
                self._delete_pod(job, p)
            failed += active
            active = 0
            conditions.append(_condition("Failed", reason, message))
            self._event(job, "Warning", reason, message)
        else:
            if not job["metadata"].get("deletionTimestamp"):
                active = self._manage(job, active_pods, succeeded)
            completions = spec.get("completions")
            if completions is None:
                complete = succeeded > 0 and active == 0
            else:
                complete = succeeded >= int(completions)
                if complete and active > 0:
                    self._event(
                        job,
                        "Warning",
                        "TooManyActivePods",
                        "Too many active pods running after completion count reached",
                    )
                if succeeded > int(completions):
                    self._event(
                        job,
                        "Warning",
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached",
                    )
            if complete:
                conditions.append(_condition("Complete"))
                status["completionTime"] = now_iso()
                self._event(job, "Normal", "Completed", "Job completed")
        if (
            int(old_status.get("active") or 0) != active
            or int(old_status.get("succeeded") or 0) != succeeded
            or int(old_status.get("failed") or 0) != failed
            or len(old_status.get("conditions") or []) != len(conditions)
        ):  # (as 1.20: a new startTime alone is not written)
            for k, v in (("active", active), ("succeeded", succeeded), ("failed", failed)):
                if v:
                    status[k] = v
                else:
                    status.pop(k, None)
            if conditions:
                status["conditions"] = conditions
            body = dict(job, status=status)
            try:
                updated = self.store.update(self.jobs, ns, name, body, subresource="status")
            except ApiError as e:
                log.debug("job %s/%s status: %s", ns, name, e)
                self._rate_limited(key)
                return
            if new_failure and not _finished(updated):
                self._rate_limited(key)  # "failed pod(s) detected": retried after the back-off
                return
            forget = True
        if forget:
            self.requeues.pop(key, None)

    def _rate_limited(self, key: tuple[str, str]) -> None:
        """AddRateLimited: after backoff * 2^retries (capped), one more retry counted."""
        n = self.requeues.get(key, 0)
        self.requeues[key] = n + 1
        self.enqueue(key, min(self.backoff * 2**n, self.max_backoff))

    @staticmethod
    def _past_backoff_limit_on_failure(job: dict[str, Any], pods: list[dict[str, Any]]) -> bool:
        spec = job.get("spec") or {}
        if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
            return False
        restarts = 0
        for p in pods:
            st = p.get("status") or {}
            if st.get("phase") in ("Running", "Pending"):
                for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
                    restarts += int(cs.get("restartCount") or 0)
        limit = int(spec.get("backoffLimit") or 0)
        return restarts > 0 if limit == 0 else restarts >= limit

    def _manage(self, job: dict[str, Any], active_pods: list[dict[str, Any]], succeeded: int) -> int:
        """manageJob: returns the active count after the creations/deletions."""
        spec = job.get("spec") or {}
        active = len(active_pods)
        parallelism = int(spec.get("parallelism") or 0)
        if active > parallelism:
            surplus = sorted(active_pods, key=lambda p: (_deletion_rank(p), p["metadata"]["name"]))[
                : active - parallelism
            ]
            for p in surplus:
                self._delete_pod(job, p)
            return active - len(surplus)
        if active == parallelism:
            return active
        completions = spec.get("completions")
        if completions is None:
            want = active if succeeded > 0 else parallelism
        else:
            want = min(int(completions) - succeeded, parallelism)
        for _ in range(max(want - active, 0)):
            if not self._create_pod(job):
                break
            active += 1
        return active

    # ---------------------------------------------------------------- writes

    def _create_pod(self, job: dict[str, Any]) -> bool:
        from sim.job_api import template_pod

        ns = job["metadata"].get("namespace", "")
        try:
            pod = self.store.create(self.pods, ns, template_pod(job), owned=True)
        except ApiError as e:
            log.debug("job %s/%s: create pod: %s", ns, job["metadata"]["name"], e)
            self._event(job, "Warning", "FailedCreate", f"Error creating: {e.message}")
            return False
        self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        return True

    def _delete_pod(self, job: dict[str, Any], pod: dict[str, Any]) -> None:
        pmeta = pod["metadata"]
        try:
            self.store.delete(
                self.pods, pmeta.get("namespace", ""), pmeta["name"], preconditions={"uid": pmeta["uid"]}
            )
        except ApiError as e:
            if e.code != 404:
                log.debug("job %s: delete pod %s: %s", job["metadata"]["name"], pmeta["name"], e)
            return
        self._event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pmeta['name']}")

    def _event(self, job: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if not self.events:
            return
        ev = event_body(job, kind="Job", api_version="batch/v1", type_=type_, reason=reason, message=message,
                        component="job-controller")
        try:
            self.store.create(self.store.rt("events"), job["metadata"].get("namespace", ""), ev, owned=True)
        except ApiError:
            pass
