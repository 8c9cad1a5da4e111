"""An independent invariant checker for CloneSet rollouts, reading only the Kubernetes API.

The chaos soak (`bench/chaos.py`, `tests/e2e/test_chaos_soak.py`) kills kruisebus processes and NATS at
random moments; whether the rollouts stayed correct must be judged by something that shares none of
the pipeline's state. This module watches pods, CloneSets and Events through `services.kube.Kube` (never
NATS, never a planner view) and records every breach of the invariants of docs/architecture.md's
correctness model, each as an *episode* (a condition that starts, has a worst value and ends), so a
breach that lasts two seconds is one violation, not two hundred watch events:

* ``unavailable``: fewer Ready pods (not being deleted) than ``replicas - maxUnavailable``. Counting
  Ready pods rather than "not Ready" pods is what makes surge pods fine: Kruise's update budget is
  ``maxUnavailable + active - replicas`` unavailable pods, which is the same inequality. Armed once the
  CloneSet has had ``replicas`` Ready pods at its current replica count (the first creation and a
  scale-up are not rollouts).
* ``too-few-pods`` / ``too-many-pods``: active pods below ``replicas - maxUnavailable`` (armed as above)
  or above ``replicas + maxSurge`` (lost or duplicated pods).
* ``partition``: more pods on the update revision than ``replicas - partition``, once the template has
  changed since the CloneSet was first seen (at creation every pod is on the only revision there is).
* ``updated-twice``: one pod (uid) started a new container running its revision's image twice while
  carrying that revision's label, or got a second in-place update (a new ``updateTimestamp`` in
  ``apps.kruise.io/inplace-update-state``) to the same revision. A restart into an *intermediate* image
  (v1 -> v2 in flight, then v3) is the kubelet catching up, not a second update, and is not counted.
* ``event-twice``: a success Event for one pod update (in place, recreate) or delete written more times
  than there were pods of that name that it could describe (what `kubectl describe` shows twice).
* ``surge-left``, ``not-converged``: checked when the soak asks for convergence (see
  :func:`convergence_problems`).

Numbers come from the planner's own pure Kruise arithmetic (``calc.max_unavailable_and_surge``, the
partition parser, revision hashing), so the checker and the planner agree on rounding by construction;
what they may disagree on is what happened, which is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import (
    ANNOTATION_INPLACE_STATE,
    CONDITION_INPLACE_UPDATE_READY,
    EVENT_SUCCESSFUL_DELETE,
    EVENT_SUCCESSFUL_UPDATE_INPLACE,
    EVENT_SUCCESSFUL_UPDATE_RECREATE,
    LABEL_LIFECYCLE_STATE,
    LABEL_REVISION_HASH,
)
from schemas.kube import Pod
from schemas.messages import CLONESETS, EVENTS, PODS, Resource
from services.errors import KubeError
from services.kube import Kube
from services.observe import restart_count
from services.planner.cloneset.calc import max_unavailable_and_surge, partition_of, replicas_of
from services.planner.cloneset.revision import build_revision
from services.planner.kit.inplace import read_state
from services.planner.kit.podstate import is_active, is_ready
from services.planner.kit.revision import is_pod_updated

log = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"
TOO_FEW = "too-few-pods"
TOO_MANY = "too-many-pods"
PARTITION = "partition"
UPDATED_TWICE = "updated-twice"
EVENT_TWICE = "event-twice"
SURGE_LEFT = "surge-left"
NOT_CONVERGED = "not-converged"
KINDS = (UNAVAILABLE, TOO_FEW, TOO_MANY, PARTITION, UPDATED_TWICE, EVENT_TWICE, SURGE_LEFT, NOT_CONVERGED)

# a breach that ends and starts again within this many seconds is one episode (it flickers at the limit)
REOPEN_WITHIN = 1.0
_POD = msgspec.json.Decoder(Pod)
_CS = msgspec.json.Decoder(CloneSet)
_POD_IN_MESSAGE = re.compile(r"\bpod (\S+)")
_COUNTED_EVENTS = (EVENT_SUCCESSFUL_UPDATE_INPLACE, EVENT_SUCCESSFUL_UPDATE_RECREATE, EVENT_SUCCESSFUL_DELETE)


# --- the pure rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """What a CloneSet's spec allows, with Kruise's rounding."""

    replicas: int
    max_unavailable: int
    max_surge: int
    partition: int

    @classmethod
    def of(cls, cs: CloneSet) -> Budget:
        replicas = replicas_of(cs)
        max_unavailable, max_surge = max_unavailable_and_surge(cs.spec.update_strategy, replicas)
        return cls(replicas, max_unavailable, max_surge, partition_of(cs))


def update_revision(cs: CloneSet) -> str:
    """The name of the revision of the CloneSet's latest template (what status.updateRevision must say)."""
    return build_revision(cs, 0, cs.status.collision_count or 0).metadata.name


def template_images(cs: CloneSet) -> dict[str, str]:
    containers = cs.spec.template.spec.get("containers") or []
    return {str(c.get("name", "")): str(c.get("image", "")) for c in containers if isinstance(c, dict)}


def describe_pod(pod: Pod) -> str:
    """One line of what a pod is doing: enough to tell an intermediate restart from a stuck update."""
    gate = pod.status.condition(CONDITION_INPLACE_UPDATE_READY)
    running = ",".join(c.image for c in pod.status.container_statuses) or "-"
    return (f"{pod.metadata.name}(rev={pod.metadata.labels.get(LABEL_REVISION_HASH, '-')}, "
            f"spec={','.join(c.image for c in pod.spec.containers)}, running={running}, "
            f"restarts={restart_count(pod)}, ready={is_ready(pod)}, "
            f"inPlaceUpdateReady={gate.status if gate else '-'}, "
            f"lifecycle={pod.metadata.labels.get(LABEL_LIFECYCLE_STATE, '-')}, "
            f"created={pod.metadata.creation_timestamp or '-'}"
            f"{', deleting' if pod.metadata.deletion_timestamp else ''})")


@dataclass(frozen=True)
class Finding:
    """One rule that does not hold right now: its measured value against its limit."""

    kind: str
    value: int
    limit: int
    detail: str
    key: str = ""  # what the finding is about, for findings re-derived from scratch (Events)


def state_findings(cs: CloneSet, pods: Iterable[Pod], *, armed: bool, partition_armed: bool,
                   revision: str | None = None) -> list[Finding]:
    """The instantaneous rules over one CloneSet's pods (any pods: active or being deleted).

    ``armed``: the CloneSet has had ``replicas`` Ready pods at its current replica count (the lower
    bounds apply); ``partition_armed``: the template changed since the CloneSet was first seen.
    """
    b = Budget.of(cs)
    active = [p for p in pods if is_active(p)]
    ready = [p for p in active if is_ready(p)]
    out: list[Finding] = []
    if armed:
        floor = b.replicas - b.max_unavailable
        if len(ready) < floor:
            not_ready = sorted((p for p in active if not is_ready(p)), key=lambda p: p.metadata.name)
            out.append(Finding(UNAVAILABLE, len(ready), floor,
                               f"{len(ready)} Ready of {len(active)} active pods, need >= {floor} "
                               f"(replicas {b.replicas}, maxUnavailable {b.max_unavailable}); "
                               f"not Ready: {'; '.join(describe_pod(p) for p in not_ready[:8])}"))
        if len(active) < floor:
            out.append(Finding(TOO_FEW, len(active), floor,
                               f"{len(active)} active pods, need >= {floor}"))
    ceiling = b.replicas + b.max_surge
    if len(active) > ceiling:
        revs: dict[str, int] = defaultdict(int)
        for p in active:
            revs[p.metadata.labels.get(LABEL_REVISION_HASH, "")] += 1
        youngest = sorted(active, key=lambda p: p.metadata.creation_timestamp or "")[ceiling - len(active) - 1:]
        out.append(Finding(TOO_MANY, len(active), ceiling,
                           f"{len(active)} active pods, at most {ceiling} (replicas {b.replicas}, maxSurge "
                           f"{b.max_surge}); by revision: {dict(sorted(revs.items()))}; youngest: "
                           f"{'; '.join(describe_pod(p) for p in youngest)}"))
    if partition_armed and cs.spec.update_strategy.partition is not None:
        rev = revision or update_revision(cs)
        updated = sum(1 for p in active if is_pod_updated(p, rev))
        limit = b.replicas - b.partition
        if updated > limit:
            out.append(Finding(PARTITION, updated, limit,
                               f"{updated} pods on {rev}, at most {limit} (replicas {b.replicas}, "
                               f"partition {b.partition})"))
    return out


def convergence_problems(cs: CloneSet, pods: Iterable[Pod]) -> list[str]:
    """Why the CloneSet has not converged ([] when it has).

    Converged: the controller saw the latest spec (observedGeneration), status.updateRevision is the
    latest template's revision, exactly ``replicas`` pods exist (none being deleted, no surge left), all
    Ready, at least ``replicas - partition`` of them on the update revision running its images (more
is the ``partition`` rule's business: at creation all are), and every
    status count agrees with the pods.
    """
    b = Budget.of(cs)
    st = cs.status
    pods = list(pods)
    problems: list[str] = []
    if st.observed_generation != cs.metadata.generation:
        problems.append(f"observedGeneration {st.observed_generation} != generation {cs.metadata.generation}")
    rev = update_revision(cs)
    if st.update_revision != rev:
        problems.append(f"status.updateRevision {st.update_revision or '-'} != {rev}")
    deleting = [p.metadata.name for p in pods if not is_active(p)]
    if deleting:
        problems.append(f"{len(deleting)} pods being deleted: {', '.join(sorted(deleting)[:5])}")
    active = [p for p in pods if is_active(p)]
    if len(active) != b.replicas:
        problems.append(f"{len(active)} active pods != replicas {b.replicas}")
    ready = [p for p in active if is_ready(p)]
    if len(ready) != len(active):
        problems.append(f"{len(active) - len(ready)} pods not Ready")
    images = template_images(cs)
    updated = [p for p in active if is_pod_updated(p, rev)]
    want_updated = b.replicas - b.partition  # at least: at creation every pod is on the only revision
    if len(updated) < want_updated:
        problems.append(f"{len(updated)} pods on {rev}, want {want_updated}")
    stale = [p.metadata.name for p in updated
             if {c.name: c.image for c in p.spec.containers} != images
             or any(c.image != images.get(c.name) for c in p.status.container_statuses)]
    if stale:
        problems.append(f"pods on {rev} not running its images: {', '.join(sorted(stale)[:5])}")
    counts = {"replicas": (st.replicas, len(active)), "readyReplicas": (st.ready_replicas, len(ready)),
              "availableReplicas": (st.available_replicas, len(ready)),
              "updatedReplicas": (st.updated_replicas, len(updated)),
              "updatedReadyReplicas": (st.updated_ready_replicas, sum(1 for p in updated if is_ready(p)))}
    for name, (said, seen) in counts.items():
        if said != seen:
            problems.append(f"status.{name} {said} but {seen} pods")
    return problems


# --- per-pod history and Events ----------------------------------------------------------------------


@dataclass
class _PodHistory:
    name: str
    # revision label -> container name -> container ids started on that revision's image
    started: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    # revision -> in-place update timestamps seen in the inplace-update-state annotation
    inplace: dict[str, set[str]] = field(default_factory=dict)
    deleted: bool = False


def updated_twice(history: _PodHistory, pod: Pod) -> str | None:
    """Fold one observation of a pod into its history; a description if it was just updated twice."""
    label = pod.metadata.labels.get(LABEL_REVISION_HASH, "")
    spec_images = {c.name: c.image for c in pod.spec.containers}
    problem = None
    per_rev = history.started.setdefault(label, {})
    for c in pod.status.container_statuses:
        if not c.container_id or spec_images.get(c.name) != c.image:
            continue  # not started yet, or an intermediate image: not this revision's update
        ids = per_rev.setdefault(c.name, set())
        if c.container_id not in ids:
            ids.add(c.container_id)
            if len(ids) > 1:
                problem = (f"pod {pod.metadata.name} ({pod.metadata.uid}) container {c.name} started "
                           f"{len(ids)} times on {c.image} under revision {label} (restartCount "
                           f"{c.restart_count})")
    state = read_state(pod) if ANNOTATION_INPLACE_STATE in pod.metadata.annotations else None
    if state is not None and state.revision and state.update_timestamp:
        stamps = history.inplace.setdefault(state.revision, set())
        if state.update_timestamp not in stamps:
            stamps.add(state.update_timestamp)
            if len(stamps) > 1:
                problem = (f"pod {pod.metadata.name} ({pod.metadata.uid}) updated in place to "
                           f"{state.revision} {len(stamps)} times: {sorted(stamps)}")
    return problem


class _EventRef(msgspec.Struct):
    uid: str = ""
    name: str = ""
    namespace: str = ""


class _EventMeta(msgspec.Struct):
    name: str = ""
    uid: str = ""


class KubeEventView(msgspec.Struct):
    """The fields of a core/v1 Event the checker reads."""

    metadata: _EventMeta = msgspec.field(default_factory=_EventMeta)
    involvedObject: _EventRef = msgspec.field(default_factory=_EventRef)  # noqa: N815 - wire name
    reason: str = ""
    message: str = ""
    count: int = 1


_EVENT = msgspec.json.Decoder(KubeEventView)


def duplicate_events(events: Iterable[KubeEventView], uids_by_name: dict[tuple[str, str], set[str]],
                     deleted_by_name: dict[tuple[str, str], set[str]]) -> list[Finding]:
    """Success Events written more often than the pods they describe allow.

    One pod (uid) is updated at most once per revision and deleted at most once, so the same
    message for pod ``X`` may appear at most as many times as there were pods named ``X`` (for
    deletes: pods named ``X`` that were actually deleted). Pod names are recycled by the planner's
    deterministic instance ids, which is why this counts uids rather than expecting one Event.
    Keys of the maps are (namespace, pod name).
    """
    seen: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for ev in events:
        if ev.reason in _COUNTED_EVENTS:
            seen[(ev.involvedObject.namespace, ev.involvedObject.name, ev.reason, ev.message)] += max(ev.count, 1)
    out = []
    for (ns, workload, reason, message), n in sorted(seen.items()):
        m = _POD_IN_MESSAGE.search(message)
        if m is None:
            continue
        key = (ns, m.group(1))
        if reason == EVENT_SUCCESSFUL_DELETE:
            allowed = len(deleted_by_name.get(key, ()))
        else:  # an update Event names a pod that existed; at least one update of it is fine
            allowed = max(len(uids_by_name.get(key, ())), 1)
        if n > allowed:
            out.append(Finding(EVENT_TWICE, n, allowed,
                               f"{ns}/{workload}: {reason} {n}x '{message}' for {allowed} such pod(s)",
                               key=f"{ns}/{workload} {reason} {message}"))
    return out


# --- the stateful checker ------------------------------------------------------------------------------


@dataclass
class Violation:
    kind: str
    cloneset: str  # namespace/name
    started: float  # checker clock
    detail: str
    worst: int = 0
    limit: int = 0
    ended: float | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def describe(self) -> str:
        span = f"{self.duration:.2f}s" if self.duration is not None else "open"
        return f"[{self.kind}] {self.cloneset} at t={self.started:.2f}s ({span}): {self.detail}"


@dataclass
class _CsState:
    cs: CloneSet
    first_revision: str
    revision: str  # of the latest template (hashing it once per CloneSet change, not per pod event)
    armed_replicas: int | None = None  # replica count at which `replicas` Ready pods were seen
    open: dict[str, Violation] = field(default_factory=dict)
    closed: dict[str, Violation] = field(default_factory=dict)  # the last ended episode per kind


class Checker:
    """Folds API observations (pods, CloneSets, Events) into violations; no I/O (see :class:`ApiChecker`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 on_violation: Callable[[Violation], object] | None = None) -> None:
        self.clock = clock
        self.on_violation = on_violation
        self.t0 = clock()
        self.pods: dict[str, Pod] = {}  # uid -> latest (including pods being deleted)
        self.by_owner: dict[str, set[str]] = defaultdict(set)  # CloneSet uid -> pod uids
        self.clonesets: dict[str, _CsState] = {}  # uid -> state
        self.history: dict[str, _PodHistory] = {}
        self.uids_by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.deleted_by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.events: dict[str, KubeEventView] = {}  # Event uid -> Event
        self.violations: list[Violation] = []
        self.reported_events: dict[str, int] = {}  # Finding.key -> excess Events already reported

    def now(self) -> float:
        return self.clock() - self.t0

    def record(self, kind: str, cloneset: str, detail: str, worst: int = 0, limit: int = 0,
               ended: bool = True) -> Violation:
        t = self.now()
        v = Violation(kind, cloneset, t, detail, worst, limit, t if ended else None)
        self.violations.append(v)
        log.warning("violation %s", v.describe())
        if self.on_violation is not None:
            self.on_violation(v)
        return v

    # --- observations

    def cloneset(self, cs: CloneSet, deleted: bool = False) -> None:
        uid = cs.metadata.uid
        if deleted:
            st = self.clonesets.pop(uid, None)
            if st is not None:
                self._close_all(st)
            return
        st = self.clonesets.get(uid)
        if st is None:
            rev = update_revision(cs)
            st = self.clonesets[uid] = _CsState(cs, rev, rev)
        else:
            if replicas_of(cs) != replicas_of(st.cs):
                st.armed_replicas = None  # a scale is not a rollout: re-arm at the new count
            st.cs = cs
            st.revision = update_revision(cs)
        self._evaluate(st)

    def pod(self, pod: Pod, deleted: bool = False) -> None:
        meta = pod.metadata
        ref = meta.controller_ref()
        key = (meta.namespace, meta.name)
        self.uids_by_name[key].add(meta.uid)
        hist = self.history.get(meta.uid)
        if hist is None:
            hist = self.history[meta.uid] = _PodHistory(meta.name)
        if (deleted or meta.deletion_timestamp is not None) and not hist.deleted:
            hist.deleted = True
            self.deleted_by_name[key].add(meta.uid)
        if deleted:
            self.pods.pop(meta.uid, None)
        else:
            self.pods[meta.uid] = pod
            problem = updated_twice(hist, pod)
            if problem is not None:
                cs_name = f"{meta.namespace}/{ref.name}" if ref else meta.namespace
                self.record(UPDATED_TWICE, cs_name, problem, ended=True)
        if ref is None:
            return
        if deleted:
            self.by_owner[ref.uid].discard(meta.uid)
        else:
            self.by_owner[ref.uid].add(meta.uid)
        st = self.clonesets.get(ref.uid)
        if st is not None:
            self._evaluate(st)

    def event(self, raw: bytes) -> None:
        ev = _EVENT.decode(raw)
        if ev.reason in _COUNTED_EVENTS:
            self.events[ev.metadata.uid or ev.metadata.name] = ev

    # --- rules

    def owned(self, cs_uid: str) -> list[Pod]:
        return [self.pods[u] for u in self.by_owner.get(cs_uid, ()) if u in self.pods]

    def _evaluate(self, st: _CsState) -> None:
        cs = st.cs
        pods = self.owned(cs.metadata.uid)
        replicas = replicas_of(cs)
        if st.armed_replicas != replicas and sum(1 for p in pods if is_active(p) and is_ready(p)) >= replicas:
            st.armed_replicas = replicas
        findings = state_findings(cs, pods, armed=st.armed_replicas == replicas,
                                  partition_armed=st.revision != st.first_revision, revision=st.revision)
        name = f"{cs.metadata.namespace}/{cs.metadata.name}"
        now = self.now()
        current = {f.kind: f for f in findings}
        for kind in [k for k in st.open if k not in current]:
            st.closed[kind] = st.open.pop(kind)
            st.closed[kind].ended = now
        for kind, f in current.items():
            episode = st.open.get(kind)
            if episode is None and (last := st.closed.get(kind)) is not None and last.ended is not None \
                    and now - last.ended < REOPEN_WITHIN:
                episode = st.open[kind] = last  # the same breach flickering at its limit
                last.ended = None
            if episode is None:
                st.open[kind] = self.record(kind, name, f.detail, f.value, f.limit, ended=False)
            elif abs(f.value - f.limit) > abs(episode.worst - episode.limit):
                episode.worst, episode.detail = f.value, f.detail

    def _close_all(self, st: _CsState) -> None:
        for v in st.open.values():
            v.ended = self.now()
        st.open.clear()

    def check_events(self) -> list[Violation]:
        """Record Event duplicates not reported yet (call once the system has settled)."""
        out = []
        for f in duplicate_events(self.events.values(), self.uids_by_name, self.deleted_by_name):
            # a recycled name keeps adding legitimate Events: only a larger excess is a new violation
            if f.value - f.limit > self.reported_events.get(f.key, 0):
                self.reported_events[f.key] = f.value - f.limit
                out.append(self.record(EVENT_TWICE, f.detail.split(":", 1)[0], f.detail, f.value, f.limit))
        return out

    def convergence(self) -> dict[str, list[str]]:
        """CloneSet (namespace/name) -> why it has not converged, for every CloneSet seen."""
        return {f"{st.cs.metadata.namespace}/{st.cs.metadata.name}": convergence_problems(
            st.cs, self.owned(uid)) for uid, st in self.clonesets.items()}

    def converged(self) -> bool:
        return all(not p for p in self.convergence().values())

    def check_settled(self) -> list[Violation]:
        """At a converged moment: surge pods left behind and duplicate Events."""
        out = []
        for st in self.clonesets.values():
            active = [p for p in self.owned(st.cs.metadata.uid) if is_active(p)]
            if len(active) > replicas_of(st.cs):
                out.append(self.record(SURGE_LEFT, f"{st.cs.metadata.namespace}/{st.cs.metadata.name}",
                                       f"{len(active)} pods for {replicas_of(st.cs)} replicas after settle",
                                       len(active), replicas_of(st.cs)))
        return out + self.check_events()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for v in self.violations:
            out[v.kind] = out.get(v.kind, 0) + 1
        return out


# --- the API side ----------------------------------------------------------------------------------------


class ApiChecker:
    """Runs a :class:`Checker` on list+watch of pods, CloneSets and Events (all namespaces).

    Each resource is listed, then watched from the list's resourceVersion; a watch that ends is
    resumed from the last resourceVersion seen (bookmarks included) and a 410 or broken stream
    relists, replaying the current state into the checker (objects gone meanwhile are dropped).
    Pods are one watch, so the checker sees pod states in the API server's order: every pod
    evaluation is of a state the cluster really had.
    """

    def __init__(self, kube: Kube, checker: Checker | None = None) -> None:
        self.kube = kube
        self.checker = checker or Checker()
        self.synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._synced: set[str] = set()

    async def start(self, timeout: float = 30.0) -> ApiChecker:
        for res in (CLONESETS, PODS, EVENTS):
            self._tasks.append(asyncio.create_task(self._run(res), name=f"chaoscheck-{res.plural}"))
        await asyncio.wait_for(self.synced.wait(), timeout)
        return self

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()

    def _apply(self, res: Resource, raw: bytes, deleted: bool) -> str:
        """Feed one object to the checker; its resourceVersion."""
        if res is PODS:
            pod = _POD.decode(raw)
            self.checker.pod(pod, deleted)
            return pod.metadata.resource_version
        if res is CLONESETS:
            cs = _CS.decode(raw)
            self.checker.cloneset(cs, deleted)
            return cs.metadata.resource_version
        if not deleted:
            self.checker.event(raw)
        return msgspec.json.decode(raw, type=_Bookmark).metadata.resourceVersion

    async def _relist(self, res: Resource) -> str:
        items, rv = await self.kube.list(res)
        if res is PODS:
            fresh = {p.metadata.uid: p for p in map(_POD.decode, items)}
            for uid, pod in list(self.checker.pods.items()):
                if uid not in fresh:
                    self.checker.pod(pod, deleted=True)
            for pod in fresh.values():
                self.checker.pod(pod)
        else:
            for raw in items:
                self._apply(res, raw, False)
        return rv

    async def _run(self, res: Resource) -> None:
        rv = ""
        while True:
            try:
                if not rv:
                    rv = await self._relist(res)
                    self._synced.add(res.plural)
                    if len(self._synced) == 3:
                        self.synced.set()
                async for ev in self.kube.watch(res, rv, timeout_seconds=60):
                    if ev.type == "BOOKMARK":
                        rv = msgspec.json.decode(ev.object, type=_Bookmark).metadata.resourceVersion or rv
                        continue
                    rv = self._apply(res, ev.object, ev.type == "DELETED") or rv
            except asyncio.CancelledError:
                raise
            except (KubeError, OSError) as e:  # 410, broken stream, an injected fault: relist
                log.info("chaoscheck %s watch: %s; relisting", res.plural, e)
                rv = ""
                await asyncio.sleep(0.1)  # fault backoff before the relist, not a wait for a condition


class _BookmarkMeta(msgspec.Struct):
    resourceVersion: str = ""  # noqa: N815 - wire name


class _Bookmark(msgspec.Struct):
    metadata: _BookmarkMeta = msgspec.field(default_factory=_BookmarkMeta)
