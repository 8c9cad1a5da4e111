"""The planner service: the compacted state stream in, commands out.

It rebuilds its view of every CloneSet (the workload, its pods, its revisions) by replaying KB_STATE
from the start and following it live; nothing is read from the API server. Planning is
level-triggered: any change to a workload or to something it owns marks the workload dirty, and a
periodic resync marks everything dirty, so a skipped event can delay a decision but never lose it.

Between a decision and its observed effect the workload is not re-planned (Kruise's expectations):
the pure planner returns what it expects to see (a pod present, gone, or relabelled); until the
watcher reports that, or the expectation times out, or the executor rejects a command of this
workload as stale, a second pass could only repeat or contradict the first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from opentelemetry import trace

from schemas.cloneset import CloneSet
from schemas.kube import ControllerRevision, PersistentVolumeClaim, Pod
from schemas.messages import (
    EVENT_DECODER,
    STATE_DECODER,
    CloneSetState,
    Command,
    NodeState,
    PodState,
    PvcState,
    RevisionState,
    RolloutEvent,
    StateEvent,
)
from schemas.subjects import EVENT_REJECTED
from services.bus import Bus
from services.planner.cloneset.commands import VERB_CREATE, VERB_REVISION_CREATE
from services.planner.cloneset.expectations import expectation_met
from services.planner.cloneset.gates import DEFAULT_GATES, FeatureGates
from services.planner.cloneset.plan import CloneSetView, Expectation, plan_cloneset
from services.planner.cloneset.view import compact_pod
from services.telemetry import (
    K8S_NAMESPACE,
    KB_REVISION,
    KB_WORKLOAD,
    KB_WORKLOAD_UID,
    rollout_context,
    rollout_trace_id,
    start_rollout_root_span,
)

log = logging.getLogger("kruisebus.planner")


@dataclass
class Workload:
    uid: str
    cloneset: CloneSet | None = None
    pods: dict[str, Pod] = field(default_factory=dict)
    revisions: dict[str, ControllerRevision] = field(default_factory=dict)
    pvcs: dict[str, PersistentVolumeClaim] = field(default_factory=dict)  # claims it owns, by uid
    previous: CloneSet | None = None
    expectations: list[tuple[Expectation, float]] = field(default_factory=list)
    rolling: str = ""  # the update revision of a rollout in progress (for its root span)
    # ControllerRevisions this planner asked to create and has not observed yet: name -> deadline.
    # The pure planner's expectations are about pods; without this, every pass until the watcher
    # reports the new revision re-sent `revision-create` (dropped as a duplicate) plus a status write,
    # and each status write's echo triggered another such pass (~1 s at the start of a 1,000-pod rollout).
    revisions_expected: dict[str, float] = field(default_factory=dict)

    by_name: dict[str, Pod] = field(default_factory=dict)  # the same pods by name (for expectations)
    # Slow start (Kruise's 1, 2, 4, ... creation batches; one batch per pass): the pods the last pass
    # created and the limit it had. The next pass doubles the limit if all of them appeared.
    created: list[str] = field(default_factory=list)
    create_limit: int = 1

    def next_create_limit(self) -> int:
        """1 for a new scale-out or after a batch with a failure (a pod that never appeared: its create
        was rejected or its expectation expired); twice the last limit after a batch that all landed."""
        if self.created and all(name in self.by_name for name in self.created):
            return 2 * self.create_limit
        return 1

    def record_creates(self, limit: int, created: list[str]) -> None:
        self.created = created
        self.create_limit = limit

    def set_pod(self, pod: Pod) -> None:
        old = self.pods.get(pod.metadata.uid)
        if old is not None and old.metadata.name != pod.metadata.name:
            self._unname(old)
        self.pods[pod.metadata.uid] = pod
        self.by_name[pod.metadata.name] = pod

    def drop_pod(self, uid: str) -> None:
        old = self.pods.pop(uid, None)
        if old is not None:
            self._unname(old)

    def _unname(self, pod: Pod) -> None:
        if (current := self.by_name.get(pod.metadata.name)) is not None and current.metadata.uid == pod.metadata.uid:
            del self.by_name[pod.metadata.name]
            # another live pod of the same name (a re-created one) takes the name back
            for other in self.pods.values():
                if other.metadata.name == pod.metadata.name and other.metadata.uid != pod.metadata.uid:
                    self.by_name[pod.metadata.name] = other
                    break

    def pending(self, now: float) -> bool:
        """Drop met or expired expectations; True while any remains."""
        if self.revisions_expected:
            seen = {r.metadata.name for r in self.revisions.values()}
            self.revisions_expected = {n: d for n, d in self.revisions_expected.items() if d > now and n not in seen}
            if self.revisions_expected:
                return True
        if not self.expectations:
            return False
        by_name = self.by_name
        self.expectations = [(e, deadline) for e, deadline in self.expectations
                             if deadline > now and not expectation_met(e, by_name)]
        return bool(self.expectations)


RETRY_SEP = "@retry"  # a re-sent rejected command's msg id: `<command id>@retry<n>`
COMMAND_MEMORY = 300.0  # seconds the planner remembers sent and rejected command ids (> duplicate window)
RETRY_BACKOFF = 1.0  # seconds before a rejected decision is re-sent on an unchanged view; doubles per rejection
RETRY_BACKOFF_MAX = 60.0
PUBLISH_WINDOW = 256  # publishes of one planning pass awaiting their acks at once


async def _gather_bounded(coros: list[Coroutine[Any, Any, Any]], window: int = PUBLISH_WINDOW) -> None:
    """Run `coros` (publishes) in order with at most `window` in flight; raise the first failure.

    Every publish carries a deterministic message id, so when one fails and the pass is retried the
    ones that did land are dropped by the duplicate window.
    """
    for start in range(0, len(coros), window):
        results = await asyncio.gather(*coros[start:start + window], return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                for c in coros[start + window:]:
                    c.close()
                raise r


class Planner:
    def __init__(self, bus: Bus, *, gates: FeatureGates = DEFAULT_GATES, resync_seconds: float = 30.0,
                 expectation_timeout: float = 30.0,
                 tracer_provider: trace.TracerProvider | None = None) -> None:
        self.bus = bus
        self.tracer_provider = tracer_provider
        self.gates = gates
        self.resync_seconds = resync_seconds
        self.expectation_timeout = expectation_timeout
        self.workloads: dict[str, Workload] = {}
        self.by_name: dict[tuple[str, str], str] = {}  # (namespace, name) -> uid
        self.dirty: set[str] = set()
        self.wakeup = asyncio.Event()
        self.replayed = asyncio.Event()
        self.plans = 0
        # Rejected commands. A command id is its dedup id, so re-sending a rejected decision under the
        # same id would be dropped by the duplicate window and its expectation would hold the workload
        # until it timed out (an `update-in-place` id has no resourceVersion in it: one stale rejection
        # stalled that pod's batch for the whole window). id -> (rejections, monotonic time)
        self.rejected: dict[str, tuple[int, float]] = {}
        # id -> (resourceVersion of the object it was decided on, monotonic time), to tell a re-plan on
        # the very view that was rejected as stale (wait for fresher state) from one on a newer view.
        self.sent: dict[str, tuple[str, float]] = {}

    # --- view maintenance ------------------------------------------------------------------------
    def workload(self, uid: str) -> Workload:
        wl = self.workloads.get(uid)
        if wl is None:
            wl = self.workloads[uid] = Workload(uid)
        return wl

    def mark(self, uids: Iterable[str]) -> None:
        self.dirty.update(uids)
        self.wakeup.set()

    async def on_state(self, event: StateEvent, msg: Msg | None = None) -> None:
        if isinstance(event, CloneSetState):
            cs = event.object
            uid = cs.metadata.uid
            if event.deleted:
                self.workloads.pop(uid, None)
                self.by_name.pop((cs.metadata.namespace, cs.metadata.name), None)
                return
            self.workload(uid).cloneset = cs
            self.by_name[(cs.metadata.namespace, cs.metadata.name)] = uid
            self.mark([uid])
        elif isinstance(event, PodState | RevisionState | PvcState):
            obj = event.object
            ref = obj.metadata.controller_ref()
            if ref is None:
                return  # orphans are not adopted yet
            wl = self.workload(ref.uid)
            if isinstance(event, PodState):
                if event.deleted:
                    wl.drop_pod(obj.metadata.uid)
                else:
                    wl.set_pod(compact_pod(event.object))  # ~1.9 KB instead of ~5.6 KB a pod
            elif isinstance(event, PvcState):
                if event.deleted:
                    wl.pvcs.pop(obj.metadata.uid, None)
                else:
                    wl.pvcs[obj.metadata.uid] = event.object
            elif event.deleted:
                wl.revisions.pop(obj.metadata.uid, None)
            else:
                wl.revisions[obj.metadata.uid] = event.object
            self.mark([ref.uid])
        elif isinstance(event, NodeState):
            pass  # nodes matter to pre-download and probes, not to this planner yet

    async def on_event(self, event: RolloutEvent, msg: Msg | None = None) -> None:
        """A rejected command means our expectations for that workload will never be met."""
        if event.type != EVENT_REJECTED:
            return
        if event.command_id:
            cid = event.command_id.split(RETRY_SEP, 1)[0]
            count = self.rejected.get(cid, (0, 0.0))[0]
            self.rejected[cid] = (count + 1, time.monotonic())
        uid = self.by_name.get((event.namespace, event.workload))
        if uid and uid in self.workloads:
            self.workloads[uid].expectations.clear()
            self.workloads[uid].revisions_expected.clear()
            self.mark([uid])

    # --- planning --------------------------------------------------------------------------------
    async def plan_one(self, wl: Workload) -> float | None:
        assert wl.cloneset is not None
        cs = wl.cloneset
        # Pods in name order: ties in Kruise's orderings then break the same way here, in a restarted
        # planner and in `kruisebus plan`, whatever order the state stream delivered them in.
        view = CloneSetView(cloneset=cs, pods=sorted(wl.pods.values(), key=lambda p: p.metadata.name),
                            revisions=list(wl.revisions.values()), previous=wl.previous,
                            pvcs=sorted(wl.pvcs.values(), key=lambda c: c.metadata.name))
        started = time.time_ns()
        limit = wl.next_create_limit()
        plan = plan_cloneset(view, now=datetime.now(UTC), gates=self.gates, create_limit=limit)
        if not plan.errors:
            wl.previous = cs
        update_revision = plan.status.update_revision
        context = rollout_context(wl.uid, update_revision) if update_revision else None
        trace_id = f"{rollout_trace_id(wl.uid, update_revision):032x}" if update_revision else ""
        sends, held_back, retry_in = self.sendable(wl, plan.commands)
        wl.record_creates(limit, [cmd.pod for cmd, _ in sends if cmd.verb == VERB_CREATE and cmd.pod])
        deadline = time.monotonic() + self.expectation_timeout
        wl.expectations.extend((e, deadline) for e in plan.expectations if e.pod not in held_back)
        wl.revisions_expected.update((cmd.revision, deadline) for cmd, _ in sends
                                     if cmd.verb == VERB_REVISION_CREATE and cmd.revision)
        attributes: dict[str, str | int] = {
            K8S_NAMESPACE: cs.metadata.namespace, KB_WORKLOAD: cs.metadata.name, KB_WORKLOAD_UID: wl.uid,
            KB_REVISION: update_revision, "kruisebus.commands": len(plan.commands),
            "kruisebus.verbs": ",".join(sorted({c.verb for c in plan.commands})),
        }
        span = self.bus.tracer.start_span(f"plan {cs.metadata.namespace}/{cs.metadata.name}", context=context,
                                          attributes=attributes, start_time=started)
        with trace.use_span(span, end_on_exit=True):
            for cmd, _ in sends:
                cmd.rollout_trace_id = trace_id
            # Pipelined: the commands go out in plan order and their acks are awaited together (one
            # round trip for the pass instead of one per command; a 1,000-pod pass took ~2 s serially).
            await _gather_bounded([self.bus.publish_command(cmd, msg_id=msg_id) for cmd, msg_id in sends])
            await _gather_bounded([
                self.bus.publish_event(ev, msg_id=f"{wl.uid}:{ev.type}:{ev.command_id}:{ev.message}"[:250])
                for ev in plan.events])
        self.close_rollout(wl, plan.status.current_revision, update_revision)
        self.plans += 1  # counted once everything it decided is on the bus
        if retry_in is not None:
            return retry_in if plan.requeue_after is None else min(plan.requeue_after, retry_in)
        return plan.requeue_after

    def sendable(
        self, wl: Workload, commands: list[Command]
    ) -> tuple[list[tuple[Command, str | None]], set[str], float | None]:
        """The commands to publish, each with its msg id (None: the command id); the pods whose
        commands are held back; and when the first held-back command may be retried (seconds).

        A command that was rejected before is re-sent as `<id>@retry<n>` (past the duplicate window).
        If it was decided again on the same view of its object as the rejected one, that view may be
        stale, so it is held back (with its pod's expectations) until fresher state marks the workload
        dirty again, or until its backoff (1 s, doubling per rejection, at most 60 s) has passed: a
        create refused by a quota or an admission webhook has no newer view to wait for, and Kruise
        retries a failed reconcile with the same kind of backoff.
        """
        now = time.monotonic()
        out: list[tuple[Command, str | None]] = []
        held: set[str] = set()
        retry_in: float | None = None
        for cmd in commands:
            if cmd.pod:
                pod = wl.by_name.get(cmd.pod)
                version = pod.metadata.resource_version if pod is not None else ""
            else:
                version = wl.cloneset.metadata.resource_version if wl.cloneset is not None else ""
            msg_id = None
            rejected = self.rejected.get(cmd.id)
            if rejected is not None:
                count, when = rejected
                sent = self.sent.get(cmd.id)
                wait = when + min(RETRY_BACKOFF * 2 ** (count - 1), RETRY_BACKOFF_MAX) - now
                if sent is not None and sent[0] == version and wait > 0:
                    if cmd.pod:
                        held.add(cmd.pod)
                    retry_in = wait if retry_in is None else min(retry_in, wait)
                    continue
                msg_id = f"{cmd.id}{RETRY_SEP}{count}"
            self.sent[cmd.id] = (version, now)
            out.append((cmd, msg_id))
        return out, held, retry_in

    def forget(self, now: float) -> None:
        """Drop what is remembered about commands older than the duplicate window (with margin)."""
        for memo in (self.rejected, self.sent):
            for cid in [k for k, (_, t) in memo.items() if now - t > COMMAND_MEMORY]:
                del memo[cid]

    def close_rollout(self, wl: Workload, current: str, update: str) -> None:
        """Emit the rollout's root span once it completes, so its trace has a root in Tempo.

        It starts when the update revision was created (from the ControllerRevision, so it survives
        a planner restart) and ends when every pod is on it.
        """
        if not update:
            return
        if current != update:
            wl.rolling = update
            return
        if wl.rolling != update:
            return
        wl.rolling = ""
        rev = next((r for r in wl.revisions.values() if r.metadata.name == update), None)
        start = None
        if rev is not None and rev.metadata.creation_timestamp:
            start = int(datetime.fromisoformat(rev.metadata.creation_timestamp.replace("Z", "+00:00"))
                        .timestamp() * 1e9)
        assert wl.cloneset is not None
        root = start_rollout_root_span(
            wl.uid, update, name=f"rollout {wl.cloneset.metadata.namespace}/{wl.cloneset.metadata.name}",
            attributes={K8S_NAMESPACE: wl.cloneset.metadata.namespace, KB_WORKLOAD: wl.cloneset.metadata.name},
            start_time=start, tracer_provider=self.tracer_provider)
        root.end()

    async def run_loop(self) -> None:
        await self.replayed.wait()
        loop = asyncio.get_running_loop()
        self.mark(self.workloads)
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            batch, self.dirty = self.dirty, set()
            now = time.monotonic()
            for uid in batch:
                wl = self.workloads.get(uid)
                if wl is None or wl.cloneset is None:
                    continue
                if wl.pending(now):
                    # re-check when the earliest expectation expires
                    earliest = min([d for _, d in wl.expectations] + list(wl.revisions_expected.values()))
                    loop.call_later(max(0.05, earliest - now), self.mark, [uid])
                    continue
                try:
                    requeue = await self.plan_one(wl)
                except Exception:  # a planner bug must not stop every other workload
                    log.exception("planning %s failed", uid)
                    requeue = 5.0
                if requeue is not None:
                    loop.call_later(max(0.05, requeue), self.mark, [uid])

    async def resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            self.forget(time.monotonic())
            self.mark(self.workloads)


async def run_planner(bus: Bus, *, gates: FeatureGates = DEFAULT_GATES, stop: asyncio.Event,
                      planner: Planner | None = None) -> None:
    planner = planner or Planner(bus, gates=gates)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(bus.watch(bus.subjects.state_all(), decoder=STATE_DECODER, handler=planner.on_state,
                                 replayed=planner.replayed, stop=stop))
        tg.create_task(bus.watch(bus.subjects.events_of_type(EVENT_REJECTED), decoder=EVENT_DECODER,
                                 handler=planner.on_event, stop=stop, deliver_policy=DeliverPolicy.NEW))
        loop_task = tg.create_task(planner.run_loop())
        resync_task = tg.create_task(planner.resync())
        await stop.wait()
        loop_task.cancel()
        resync_task.cancel()
