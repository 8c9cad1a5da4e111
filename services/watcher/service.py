"""The watcher: Kubernetes list+watch -> the compacted state stream (KB_STATE).

It is the only service that reads the API server's watch streams. Each object becomes one message on
`kb.state.<ns>.<owner>.<kind>.<uid>` holding the fields kruisebus uses; the stream keeps one message
per subject, so a planner that starts later replays the current cluster view from NATS instead of
listing the API server. The informer loop is ours (list, watch from the list's resourceVersion, follow
bookmarks, relist on 410) because the client's built-in retry re-uses a stale resourceVersion.

Deletions and routing-key changes (a pod adopted by another owner) publish tombstones, so the view
never holds two live copies of one object.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from opentelemetry import context as otel_context

from schemas.cloneset import CloneSet
from schemas.constants import LABEL_REVISION_HASH
from schemas.kube import ControllerRevision, Node, ObjectMeta, PersistentVolumeClaim, Pod
from schemas.messages import (
    CLONESETS,
    CONTROLLER_REVISIONS,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    CloneSetState,
    NodeState,
    PodState,
    PvcState,
    Resource,
    RevisionState,
    StateEvent,
)
from schemas.subjects import KIND_CLONESET, KIND_NODE, KIND_POD, KIND_PVC, KIND_REVISION
from services.bus import Bus
from services.kube import Kube, KubeError, KubeGone
from services.observe import pod_ready, restart_count
from services.telemetry import K8S_POD_NAME, KB_REVISION, rollout_context

log = logging.getLogger("kruisebus.watcher")


class _Meta(msgspec.Struct):
    metadata: ObjectMeta


_META = msgspec.json.Decoder(_Meta)


@dataclass(frozen=True)
class Kind:
    name: str
    resource: Resource
    decoder: msgspec.json.Decoder[Any]
    wrap: Callable[[Any, bool], StateEvent]
    owned: bool  # routed by controller owner uid (else by own uid, or none for cluster-scoped)


KINDS: tuple[Kind, ...] = (
    Kind(KIND_CLONESET, CLONESETS, msgspec.json.Decoder(CloneSet),
         lambda o, d: CloneSetState(object=o, deleted=d), owned=False),
    Kind(KIND_POD, PODS, msgspec.json.Decoder(Pod), lambda o, d: PodState(object=o, deleted=d), owned=True),
    Kind(KIND_REVISION, CONTROLLER_REVISIONS, msgspec.json.Decoder(ControllerRevision),
         lambda o, d: RevisionState(object=o, deleted=d), owned=True),
    Kind(KIND_NODE, NODES, msgspec.json.Decoder(Node), lambda o, d: NodeState(object=o, deleted=d), owned=False),
    Kind(KIND_PVC, PERSISTENT_VOLUME_CLAIMS, msgspec.json.Decoder(PersistentVolumeClaim),
         lambda o, d: PvcState(object=o, deleted=d), owned=True),
)


def routing_owner(kind: Kind, meta: ObjectMeta) -> str:
    """The <owner> token: the controlling workload's uid (a workload's own uid for itself)."""
    if kind.owned:
        ref = meta.controller_ref()
        return ref.uid if ref else ""
    if kind.resource.namespaced:
        return meta.uid
    return ""


# State publishes of one informer awaiting their acks at once. One at a time, each publish waited a
# NATS round trip (~1-2 ms with its span), which capped the watcher at a few hundred events/s and
# queued a large rollout's events for seconds.
MAX_IN_FLIGHT = 256


@dataclass
class Rollouts:
    """Which CloneSets are rolling out (uid -> update revision), from the CloneSet states published.

    A pod's state, once the pod is on the update revision of a rollout in progress, is published in
    that rollout's trace (DESIGN §6: the restart observed and the readiness regained are spans of it),
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
    rollouts: Rollouts | None = None

    def subject_of(self, obj: Any) -> str:
        meta: ObjectMeta = obj.metadata
        return self.bus.subjects.state(meta.namespace or None, routing_owner(self.kind, meta) or None,
                                       self.kind.name, meta.uid)

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
            await self.bus.publish_state(event, subject=subject, context=context, attributes=attributes)

    def _done(self, uid: str, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._tails.get(uid) is task:
            del self._tails[uid]
        assert self._slots is not None
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            err, self._failure = self._failure, None
            raise err

    async def flush(self) -> None:
        """Wait until every queued state is published; raise the first failure."""
        while self._inflight:
            await asyncio.wait(list(self._inflight))
        self._raise_failure()

    def cancel_pending(self) -> None:
        for task in list(self._inflight):
            task.cancel()

    async def relist(self) -> str:
        items, rv = await self.kube.list(self.kind.resource)
        fresh: dict[str, Any] = {}
        for raw in items:
            obj = self.kind.decoder.decode(raw)
            fresh[obj.metadata.uid] = obj
        for uid in list(self.known.keys() - fresh.keys()):
            await self.publish(self.known[uid][1], deleted=True)
        for obj in fresh.values():
            await self.publish(obj)
        await self.flush()  # "synced" means the listed state is on the stream
        return rv

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.cancel_pending()

    async def _run(self) -> None:
        rv: str | None = None
        failures = 0
        while True:
            try:
                if rv is None:
                    rv = await self.relist()
                    self.synced.set()
                    log.info("listed %s at resourceVersion %s (%d objects)", self.kind.name, rv,
                             len(self.known))
                async for ev in self.kube.watch(self.kind.resource, rv, timeout_seconds=self.watch_timeout):
                    failures = 0
                    if ev.type == "BOOKMARK":
                        rv = _META.decode(ev.object).metadata.resource_version or rv
                        continue
                    obj = self.kind.decoder.decode(ev.object)
                    rv = obj.metadata.resource_version or rv
                    await self.publish(obj, deleted=ev.type == "DELETED")
            except KubeGone:
                log.info("%s watch expired at %s; relisting", self.kind.name, rv)
                rv = None
            except (KubeError, msgspec.DecodeError, OSError) as e:
                failures += 1
                delay = min(0.2 * 2**failures, 10.0) * (0.5 + random.random())
                log.warning("%s watch failed (%s); retrying in %.1fs", self.kind.name, e, delay)
                await asyncio.sleep(delay)


async def run_watcher(kube: Kube, bus: Bus, *, ready: asyncio.Event | None = None,
                      kinds: tuple[Kind, ...] = KINDS) -> None:
    """Run one informer per kind until cancelled; `ready` is set once every kind has listed."""
    rollouts = Rollouts()
    informers = [Informer(k, kube, bus, rollouts=rollouts) for k in kinds]

    async def signal_ready() -> None:
        for inf in informers:
            await inf.synced.wait()
        log.info("watcher synced")
        if ready is not None:
            ready.set()

    async with asyncio.TaskGroup() as tg:
        for inf in informers:
            tg.create_task(inf.run(), name=f"informer-{inf.kind.name}")
        tg.create_task(signal_ready())
