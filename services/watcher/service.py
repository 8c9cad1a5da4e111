"""The watcher: Kubernetes list+watch -> the compacted state stream (KB_STATE).

It is the only service that reads the API server's watch streams. Each object becomes one message on
`kb.state.<ns>.<owner>.<kind>.<uid>` holding the fields kruisebus uses; the stream keeps one message
per subject, so a planner that starts later replays the current cluster view from NATS instead of
listing the API server. The informer loop is ours (list, watch from the list's resourceVersion, follow
bookmarks, relist on 410) because the client's built-in retry re-uses a stale resourceVersion.

Deletions and routing-key changes (a pod adopted by another owner) publish tombstones, so the view
never holds two live copies of one object.

The watcher also answers the state barrier (`Subjects.state_sync`): a planner that starts, or takes a
partition over, asks whether the stream is current before it plans, and is answered only once every
kind has been listed since this watcher started (or since its last relist) and everything seen so
far is published. A planner that started together with a restarting watcher would otherwise decide on
what the dead watcher last published, which can lack its predecessor's last executed delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
from opentelemetry import context as otel_context

from schemas.cloneset import CloneSet
from schemas.constants import BUS_MAX_PAYLOAD_BYTES, LABEL_REVISION_HASH, MAX_OBJECT_BYTES, REASON_TOO_LARGE
from schemas.kinds import LISTED, Kind
from schemas.kube import ObjectMeta, Pod
from schemas.messages import ENCODER, STATE_DECODER, Resource, RolloutEvent, StateEvent, StateSynced
from schemas.subjects import EVENT_REJECTED, STREAM_STATE, Subjects
from schemas.timefmt import format_micro
from services import metrics
from services.bus import REASON_MALFORMED, UNDECODABLE, Bus
from services.errors import TransientError
from services.kube import Kube, KubeError, KubeGone, KubeNotFound
from services.observe import pod_ready, restart_count
from services.planner.kit.fielderrors import decode_error
from services.planner.kit.sizes import too_large
from services.telemetry import K8S_POD_NAME, KB_REVISION, rollout_context

log = logging.getLogger("kruisebus.watcher")


class _Meta(msgspec.Struct):
    metadata: ObjectMeta


_META = msgspec.json.Decoder(_Meta)


# State publishes of one informer awaiting their acks at once. One at a time, each publish waited a
# NATS round trip (~1-2 ms with its span), which capped the watcher at a few hundred events/s and
# queued a large rollout's events for seconds.
MAX_IN_FLIGHT = 256


@dataclass
class Rollouts:
    """Which CloneSets are rolling out (uid -> update revision), from the CloneSet states published.

    A pod's state, once the pod is on the update revision of a rollout in progress, is published in
    that rollout's trace (docs/observability.md: the restart observed and the readiness regained are spans of it),
    with the pod's readiness and restart count; every other state is a trace of its own.
    """

    updating: dict[str, str] = field(default_factory=dict)

    def observe(self, obj: Any) -> tuple[otel_context.Context | None, dict[str, Any] | None]:
        if isinstance(obj, CloneSet):
            st, uid = obj.status, obj.metadata.uid
            # Kruise moves currentRevision once every pod carries the new revision, before the last ones
            # are ready again: a rollout stays open until they are (but a later scale-out opens none)
            finishing = self.updating.get(uid) == st.update_revision and st.updated_ready_replicas < st.replicas
            if st.update_revision and (st.current_revision != st.update_revision or finishing):
                self.updating[uid] = st.update_revision
            else:
                self.updating.pop(uid, None)
            return None, None
        if not isinstance(obj, Pod):
            return None, None
        ref = obj.metadata.controller_ref()
        revision = self.updating.get(ref.uid) if ref is not None else None
        if ref is None or revision is None or obj.metadata.labels.get(LABEL_REVISION_HASH) != revision:
            return None, None
        attributes = {
            K8S_POD_NAME: obj.metadata.name,
            KB_REVISION: revision,
            "kruisebus.pod.ready": pod_ready(obj),
            "kruisebus.pod.restarts": restart_count(obj),
        }
        return rollout_context(ref.uid, revision), attributes


@dataclass
class Informer:
    """List+watch one kind into the state stream.

    Publishes are pipelined: up to `max_in_flight` await their acks together, but the messages of one
    object are published strictly one after the other, in watch order (each waits for the previous
    one's ack), so the stream's per-subject "latest state" is always the latest the watch saw.
    A publish that fails for good fails the informer (like a failed watch would).
    """

    kind: Kind
    kube: Kube
    bus: Bus
    watch_timeout: int = 300
    max_in_flight: int = MAX_IN_FLIGHT
    known: dict[str, tuple[str, Any]] = field(default_factory=dict)  # uid -> (subject, last object)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    _tails: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # uid -> its last publish
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None
    _failure: BaseException | None = None
    # set with `_failure`: a publish that failed for good ends the watch at once, not at the kind's next
    # event (a CloneSet whose state is lost may have no next event: the planner waits on that very state)
    _failed: asyncio.Event = field(default_factory=asyncio.Event)
    _failures: int = 0  # failed watches or publishes in a row (their retry backoff)
    rollouts: Rollouts | None = None
    # set when KB_STATE was lost: the informer relists, so the new stream holds every object again
    relist_requested: asyncio.Event = field(default_factory=asyncio.Event)
    # awaited before each relist: a workload kind's relist waits for the kinds its pass reads (`run_watcher`)
    before_relist: Callable[[], Awaitable[Any]] | None = None
    served: bool = True  # False while the API server does not serve the kind (nothing to list)
    # set while the stream holds this kind as listed (cleared while a relist runs): the state barrier
    current: asyncio.Event = field(default_factory=asyncio.Event)
    published_seq: int = 0  # the highest KB_STATE sequence a publish of this informer was stored at

    @property
    def resource(self) -> Resource:
        if self.kind.resource is None:
            raise ValueError(f"{self.kind.kind} is not an API resource; nothing to list or watch")
        return self.kind.resource

    def subject_of(self, obj: Any) -> str:
        meta: ObjectMeta = obj.metadata
        return self.bus.subjects.state(meta.namespace or None, self.kind.owner(meta) or None,
                                       self.kind.token, meta.uid)

    async def publish(self, obj: Any, deleted: bool = False) -> None:
        """Queue the object's state (and the tombstone of its old routing key) for publishing.

        Returns once it is queued; `flush()` waits until everything queued is on the stream.
        """
        meta: ObjectMeta = obj.metadata
        subject = self.subject_of(obj)
        previous = self.known.get(meta.uid)
        steps: list[tuple[StateEvent, str]] = []
        if previous is not None and previous[0] != subject:
            # routing key changed (adoption/orphaning): retire the old subject in the same step
            steps.append((self.kind.wrap(previous[1], True), previous[0]))
        steps.append((self.kind.wrap(obj, deleted), subject))
        if deleted:
            self.known.pop(meta.uid, None)
        else:
            self.known[meta.uid] = (subject, obj)
        await self._submit(meta.uid, steps)

    async def _submit(self, uid: str, steps: list[tuple[StateEvent, str]]) -> None:
        self._raise_failure()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        await self._slots.acquire()
        task = asyncio.create_task(self._publish_after(self._tails.get(uid), steps))
        self._tails[uid] = task
        self._inflight.add(task)
        task.add_done_callback(lambda t: self._done(uid, t))

    async def _publish_after(self, previous: asyncio.Task[None] | None, steps: list[tuple[StateEvent, str]]) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is reported by its own task
        for event, subject in steps:
            context, attributes = None, None
            if self.rollouts is not None and not event.deleted:
                context, attributes = self.rollouts.observe(event.object)
            try:
                ack = await self.bus.publish_state(event, subject=subject, context=context, attributes=attributes)
                self.published_seq = max(self.published_seq, ack.seq or 0)
            except nats.errors.MaxPayloadError:
                await self.report_too_large(event, subject)

    async def decode(self, raw: bytes) -> Any:
        """The object, or (when it does not decode into its kind's type) its state subject, or None when
        not even its metadata decodes. An object the API server stored but kruisebus cannot read (a
        `null` where a struct belongs, a number out of range) is reported once per resourceVersion as a
        `rejected` event naming it and the field, and skipped: before, it failed the list (and so every
        relist) of its whole kind, and no object of that kind was published again."""
        try:
            return self.kind.decoder.decode(raw)
        except UNDECODABLE as err:
            subject, event = undecodable_report(self.kind, raw, err, self.bus.subjects)
        log.warning("%s", event.message)
        metrics.REJECTIONS.labels(REASON_MALFORMED).inc()
        try:
            await self.bus.publish_event(event, msg_id=f"undecodable@{event.subject}@{event.revision}")
        except Exception as e:  # best effort: the informer must go on
            log.error("could not report an undecodable %s: %s", self.kind.kind, e)
        return subject

    async def report_too_large(self, event: StateEvent, subject: str) -> None:
        """An object too big for the bus (admitted while no webhook enforced `MAX_OBJECT_BYTES`): its state
        is not published (the stream keeps the last one that fit), a `rejected` rollout event names the
        object, the subject and the field holding the bytes, and the informer goes on with the others."""
        meta = event.object.metadata
        problem = too_large(msgspec.to_builtins(event.object), MAX_OBJECT_BYTES)
        field = problem.field if problem is not None else ""
        message = (f"{self.kind.kind} {meta.namespace + '/' if meta.namespace else ''}{meta.name} is not planned: "
                   f"its state does not fit in a bus message ({BUS_MAX_PAYLOAD_BYTES} bytes)"
                   + (f": {problem}" if problem is not None else ""))
        log.warning("%s", message)
        metrics.REJECTIONS.labels(REASON_TOO_LARGE).inc()
        ev = RolloutEvent(type=EVENT_REJECTED, namespace=meta.namespace, workload=meta.name, message=message,
                          time=format_micro(datetime.now(UTC)), reason=REASON_TOO_LARGE, field=field,
                          subject=subject)
        try:
            await self.bus.publish_event(ev, msg_id=f"too-large@{meta.uid}@{meta.resource_version}")
        except Exception as err:  # the report is best effort; the informer must go on
            log.error("could not report the oversized %s %s: %s", self.kind.kind, meta.name, err)

    def _done(self, uid: str, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._tails.get(uid) is task:
            del self._tails[uid]
        assert self._slots is not None
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
            self._failed.set()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            err, self._failure = self._failure, None
            self._failed.clear()
            raise err

    async def flush(self) -> None:
        """Wait until every queued state is published; raise the first failure."""
        while self._inflight:
            await asyncio.wait(list(self._inflight))
        self._raise_failure()

    async def published(self) -> None:
        """Wait until what is queued now is on the stream (without taking its failure: the informer's own
        loop reports that, and relists)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight))

    def cancel_pending(self) -> None:
        for task in list(self._inflight):
            task.cancel()

    async def relist(self) -> str:
        """List the kind and make the stream say exactly what the list says.

        Everything the stream still holds as live that the list does not have at the same subject is
        tombstoned: objects deleted while no watcher ran (a fresh watcher remembers nothing, so only
        the stream knows them), and old routing keys of objects adopted or orphaned meanwhile. Without
        this a pod deleted during a watcher restart stayed live in the view for good, and the planner
        kept deleting a ghost instead of creating its replacement.
        """
        items, rv = await self.kube.list(self.resource, self.kind.list_namespace,
                                         field_selector=self.kind.field_selector)
        fresh: dict[str, Any] = {}
        kept: set[str] = set()  # subjects of objects that do not decode: their last state stays as it is
        for raw in items:
            obj = await self.decode(raw)
            if isinstance(obj, str):
                kept.add(obj)
            elif obj is not None:
                fresh[obj.metadata.uid] = obj
        metrics.STATE_EVENTS.labels(self.kind.token, "RELIST").inc(len(fresh))
        live_subjects = {self.subject_of(obj) for obj in fresh.values()} | kept
        stale: dict[str, tuple[str, Any]] = {
            subject: (event.object.metadata.uid, event.object)
            for subject, event in (await self.bus.last_per_subject(
                self.bus.subjects.state_of_kind(self.kind.token), STATE_DECODER)).items()
            if not event.deleted and subject not in live_subjects}
        for subject, obj in self.known.values():
            if subject not in live_subjects:
                stale[subject] = (obj.metadata.uid, obj)
        for subject, (uid, obj) in stale.items():
            await self._submit(uid, [(self.kind.wrap(obj, True), subject)])
        self.known = {uid: known for uid, known in self.known.items() if known[0] in live_subjects}
        for obj in fresh.values():
            await self.publish(obj)
        await self.flush()  # "synced" means the listed state is on the stream
        if stale:
            log.info("relist of %s retired %d objects the list no longer has", self.kind.token, len(stale))
        return rv

    async def run(self, drain: asyncio.Event | None = None, drain_timeout: float = 5.0) -> None:
        """Watch until cancelled. If `drain` is set by then (a graceful stop, not a lost lease), the
        states already queued are published first (for at most `drain_timeout` seconds)."""
        try:
            await self._run()
        except asyncio.CancelledError:
            if drain is not None and drain.is_set() and self._inflight:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.flush(), drain_timeout)
            raise
        finally:
            self.cancel_pending()

    async def _run(self) -> None:
        rv: str | None = None
        self._failures = 0
        while True:
            try:
                if rv is None:
                    self.relist_requested.clear()  # one asked for while this relist runs is kept
                    self.current.clear()
                    if self.before_relist is not None:
                        await self.before_relist()
                    rv = await self.relist()
                    self.served = True
                    self.synced.set()
                    self.current.set()
                    log.info("listed %s at resourceVersion %s (%d objects)", self.kind.token, rv,
                             len(self.known))
                rv = await self._watch_until_relist(rv)
                if rv is None:
                    log.info("%s: the state stream was lost; relisting", self.kind.token)
                    await self.flush()
            except KubeGone:
                log.info("%s watch expired at %s; relisting", self.kind.token, rv)
                rv = None
            except KubeNotFound as e:
                # The API server does not serve the kind (its CRD is not installed, a cluster without
                # batch/v1 Jobs): there is nothing to list, which must not hold every other kind's readiness.
                # Listed again now and then, so installing the CRD later is picked up.
                self.served = False
                self.current.set()  # nothing to list is current
                if not self.synced.is_set():
                    log.warning("%s is not served (%s); nothing listed, trying again every %.0fs",
                                self.kind.token, e, UNSERVED_RETRY)
                    self.synced.set()
                rv = None
                await asyncio.sleep(UNSERVED_RETRY * (0.5 + random.random()))
            except (TransientError, nats.errors.Error) as e:
                # a state that could not be published (KB_STATE gone, NATS away for long): the stream may
                # lack it, so relist once NATS takes publishes again
                self._failures += 1
                delay = min(0.2 * 2**self._failures, 10.0) * (0.5 + random.random())
                log.warning("%s: publishing failed (%s); relisting in %.1fs", self.kind.token, e, delay)
                rv = None
                await asyncio.sleep(delay)
            except (KubeError, msgspec.DecodeError, OSError) as e:
                self._failures += 1
                delay = min(0.2 * 2**self._failures, 10.0) * (0.5 + random.random())
                log.warning("%s watch failed (%s); retrying in %.1fs", self.kind.token, e, delay)
                await asyncio.sleep(delay)

    async def _watch_until_relist(self, rv: str) -> str | None:
        """Follow the watch from `rv` until it ends (the resourceVersion reached) or a relist is requested
        (None). A publish that failed for good raises here as soon as it fails."""
        last = rv

        async def follow() -> None:
            nonlocal last
            async for ev in self.kube.watch(self.resource, last, namespace=self.kind.list_namespace,
                                            field_selector=self.kind.field_selector,
                                            timeout_seconds=self.watch_timeout):
                self._failures = 0  # the watch works again: the next failure starts the backoff over
                if ev.type == "BOOKMARK":
                    last = _META.decode(ev.object).metadata.resource_version or last
                    continue
                obj = await self.decode(ev.object)
                if obj is None or isinstance(obj, str):
                    continue  # reported; the stream keeps the object's last state that decoded
                metrics.STATE_EVENTS.labels(self.kind.token, ev.type).inc()
                last = obj.metadata.resource_version or last
                await self.publish(obj, deleted=ev.type == "DELETED")

        watching = asyncio.ensure_future(follow())
        relist = asyncio.ensure_future(self.relist_requested.wait())
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait([watching, relist, failed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (watching, relist, failed):
                if not t.done():
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
        self._raise_failure()
        if watching.done() and not watching.cancelled():
            watching.result()  # a failed watch raises here, as it did inline
            return last
        return None


def undecodable_report(kind: Kind, raw: bytes, err: Exception, subjects: Subjects) -> tuple[str | None, RolloutEvent]:
    """(the object's state subject, None when its metadata does not decode either; the `rejected`
    event about it). `revision` carries the resourceVersion (the report's dedup key)."""
    problem = decode_error(err) if isinstance(err, msgspec.ValidationError) else None
    try:
        meta: ObjectMeta | None = _META.decode(raw).metadata
    except UNDECODABLE:
        meta = None
    name = f"{meta.namespace + '/' if meta and meta.namespace else ''}{meta.name if meta else '?'}"
    message = f"{kind.kind} {name} is not planned: it does not decode: {problem or _cut(str(err))}"
    subject = None
    if meta is not None:
        subject = subjects.state(meta.namespace or None, kind.owner(meta) or None, kind.token, meta.uid)
    event = RolloutEvent(type=EVENT_REJECTED, namespace=meta.namespace if meta else "",
                         workload=meta.name if meta else "", message=message, time=format_micro(datetime.now(UTC)),
                         reason=REASON_MALFORMED, field=problem.field if problem else "", subject=subject or "",
                         revision=meta.resource_version if meta else "")
    return subject, event


def _cut(text: str, limit: int = 512) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


UNSERVED_RETRY = 10.0  # seconds between lists of a kind the API server does not serve


async def run_watcher(kube: Kube, bus: Bus, *, ready: asyncio.Event | None = None,
                      kinds: tuple[Kind, ...] = LISTED, stop: asyncio.Event | None = None) -> None:
    """Run one informer per kind until cancelled, or until `stop` is set (then stop watching, publish
    what is already queued, and return); `ready` is set once every kind has listed.

    A relist of every kind (a watcher start, the state stream lost) publishes the kinds a workload's
    pass reads (pods, nodes, revisions, namespaces, ...) before the workloads: the planner plans a
    workload when its state arrives, and a workload changed while no watcher ran, relisted before
    its pods, was planned on the pod states of before the outage (a pod that had become Ready still
    looked not Ready, so a DaemonSet replaced it for free and spent its budget on another node too)."""
    rollouts = Rollouts()
    informers = [Informer(k, kube, bus, rollouts=rollouts) for k in kinds]
    read = [inf for inf in informers if not inf.kind.workload]

    async def read_kinds_listed() -> None:
        for inf in read:
            await inf.synced.wait()

    for inf in informers:
        if inf.kind.workload:
            inf.before_relist = read_kinds_listed
    draining = asyncio.Event()

    async def signal_ready() -> None:
        for inf in informers:
            await inf.synced.wait()
        log.info("watcher synced")
        if ready is not None:
            ready.set()

    async def stop_gracefully(tasks: list[asyncio.Task[None]]) -> None:
        assert stop is not None
        await stop.wait()
        draining.set()
        for t in tasks:
            t.cancel()

    async def state_lost(base: str, info: object) -> None:
        for inf in read:  # listed again before the workloads are (above); an unserved kind has nothing to list
            if inf.served:
                inf.synced.clear()
        for inf in informers:
            inf.current.clear()  # the new stream holds nothing yet: no barrier answered until it is refilled
            inf.published_seq = 0  # its sequences start over
            inf.relist_requested.set()

    async def answer_sync(_request: object) -> bytes:
        """The state barrier: answered once every kind is listed and what is queued now is published."""
        while True:
            for inf in informers:
                await inf.current.wait()
            for inf in informers:
                await inf.published()
            if all(inf.current.is_set() for inf in informers):  # no relist began meanwhile
                return ENCODER.encode(StateSynced(seq=max(inf.published_seq for inf in informers)))

    guard_stop = stop if stop is not None else asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(inf.run(draining), name=f"informer-{inf.kind.token}") for inf in informers]
        # the watcher owns KB_STATE: lost, it is recreated (with its old config) and refilled by a relist
        tasks.append(tg.create_task(bus.guard_stream(STREAM_STATE, stop=guard_stop, recreate=True,
                                                     on_lost=state_lost)))
        tasks.append(tg.create_task(bus.serve(bus.subjects.state_sync(), answer_sync, stop=guard_stop)))
        ready_task = tg.create_task(signal_ready())
        if stop is not None:
            tasks.append(ready_task)
            tg.create_task(stop_gracefully(tasks))
