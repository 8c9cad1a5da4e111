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
* PodProbeMarker and ImagePullJob have no instantaneous rule: once settled, every probed pod carries
  exactly the markers of its current outcome (:func:`marker_problems`) and every pull job has finished
  on every node (:func:`pull_job_problems`), both convergence conditions of the soak; ``pulled-twice``:
  a node downloaded a job's image more than once (:func:`repeated_pulls`, from the kubelets' record).

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
from collections.abc import Callable, Collection, Iterable, Mapping
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
    PROBE_SUCCEEDED,
)
from schemas.daemonset import DaemonSet, RollingUpdateDaemonSet
from schemas.imagepulljob import ImagePullJob
from schemas.kube import JsonObject, Node, Pod
from schemas.messages import CLONESETS, DAEMONSETS, EVENTS, NODES, PODS, SIDECARSETS, Resource
from schemas.podprobemarker import PodProbeMarker
from schemas.sidecarset import SidecarSet
from services.errors import KubeError
from services.kube import Kube
from services.observe import restart_count
from services.planner.cloneset.calc import max_unavailable_and_surge, partition_of, replicas_of
from services.planner.cloneset.revision import build_revision
from services.planner.daemonset.plan import max_numbers
from services.planner.kit.inplace import read_state
from services.planner.kit.podstate import is_active, is_ready
from services.planner.kit.revision import is_pod_updated
from services.planner.sidecarset.plan import max_unavailable_of
from services.planner.sidecarset.podfacts import is_matched

log = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"
TOO_FEW = "too-few-pods"
TOO_MANY = "too-many-pods"
PARTITION = "partition"
UPDATED_TWICE = "updated-twice"
EVENT_TWICE = "event-twice"
SURGE_LEFT = "surge-left"
NOT_CONVERGED = "not-converged"
PULLED_TWICE = "pulled-twice"
KINDS = (UNAVAILABLE, TOO_FEW, TOO_MANY, PARTITION, UPDATED_TWICE, EVENT_TWICE, SURGE_LEFT, NOT_CONVERGED,
         PULLED_TWICE)

# a breach that ends and starts again within this many seconds is one episode (it flickers at the limit)
REOPEN_WITHIN = 1.0
_POD = msgspec.json.Decoder(Pod)
_CS = msgspec.json.Decoder(CloneSet)
_DS = msgspec.json.Decoder(DaemonSet)
_SS = msgspec.json.Decoder(SidecarSet)
_NODE = msgspec.json.Decoder(Node)
Workload = CloneSet | DaemonSet | SidecarSet
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
    """One line of what a pod is doing: enough to tell an intermediate restart from a stuck update; its
    resourceVersion, to hold it against the version a planner decision names (`Command.data`)."""
    gate = pod.status.condition(CONDITION_INPLACE_UPDATE_READY)
    running = ",".join(c.image for c in pod.status.container_statuses) or "-"
    return (f"{pod.metadata.name}(rv={pod.metadata.resource_version or '-'}, "
            f"rev={pod.metadata.labels.get(LABEL_REVISION_HASH, '-')}, "
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


# --- the other workload kinds: DaemonSet and SidecarSet ----------------------------------------------


def _images(spec: JsonObject) -> dict[str, str]:
    containers = spec.get("containers") or []
    return {str(c.get("name", "")): str(c.get("image", "")) for c in containers if isinstance(c, dict)}


def runs_images(pod: Pod, images: dict[str, str]) -> bool:
    """The pod's spec has ``images`` for those containers and its running containers run them."""
    spec = {c.name: c.image for c in pod.spec.containers}
    running = {c.name: c.image for c in pod.status.container_statuses}
    return all(spec.get(n) == i and running.get(n) == i for n, i in images.items())


def _ds_budget(ds: DaemonSet, nodes: int) -> tuple[int, int, int]:
    """(maxUnavailable, maxSurge, partition) with Kruise's rounding over ``nodes`` eligible nodes."""
    ru = ds.spec.update_strategy.rolling_update or RollingUpdateDaemonSet()
    max_unavailable, max_surge = max_numbers(ru, nodes)
    return max_unavailable, max_surge, int(ru.partition or 0)


def resource_version(rv: str) -> int | None:
    """A resourceVersion as a number, where it is one (the sim's and etcd's are; the API calls them
    opaque, so anything else orders nothing)."""
    return int(rv) if rv.isdigit() else None


def _per_node(pods: Iterable[Pod]) -> dict[str, list[Pod]]:
    out: dict[str, list[Pod]] = defaultdict(list)
    for p in pods:
        if is_active(p) and p.spec.node_name:
            out[p.spec.node_name].append(p)
    return out


def _ready_nodes(by_node: dict[str, list[Pod]]) -> set[str]:
    return {n for n, ps in by_node.items() if any(is_ready(p) for p in ps)}


def overtaken_nodes(pods: Iterable[Pod], nodes: Collection[str]) -> set[str]:
    """The nodes whose pods are all not Ready when the template changes: those pods are now old and
    unavailable, and Kruise (as Kubernetes' DaemonSet controller) replaces such a pod without charging
    it to maxUnavailable, so an update that overtakes another may take one more node down per such
    node. A node without a pod is not one: Kruise counts it as unavailable."""
    by_node = _per_node(pods)
    return (set(by_node) & set(nodes)) - _ready_nodes(by_node)


def old_and_unready(pod: Pod, template: dict[str, str]) -> bool:
    """A DaemonSet pod Kruise replaces without charging it to maxUnavailable: not on the latest
    template's images, and not Ready (Kubernetes' `allowedReplacementPods`)."""
    return not is_ready(pod) and {c.name: c.image for c in pod.spec.containers} != template


def daemonset_findings(ds: DaemonSet, pods: Iterable[Pod], nodes: Collection[str], *, armed: bool,
                       partition_armed: bool, overtaken: set[str] | None = None) -> list[Finding]:
    """The instantaneous rules over one DaemonSet's pods on ``nodes`` (every node is eligible: the soak's
    DaemonSet has no node selector). A pod counts as updated when it runs the latest template's images.

    A node whose pods are all old and not Ready (:func:`old_and_unready`) does not count against
    maxUnavailable: Kruise replaces such a pod for free. Nor do nodes in ``overtaken`` (a node leaves it
    once it has a Ready pod again): nodes whose pods were not Ready at a template change, or whose old,
    not Ready pod was deleted (:meth:`DaemonSetRules.observe`). That is Kruise's count while the old pod
    is there, and a little looser once it is deleted (Kruise then counts the empty node again, but the
    pass that deleted it may already have spent the budget on another node)."""
    max_unavailable, max_surge, partition = _ds_budget(ds, len(nodes))
    by_node = _per_node(pods)
    ready = _ready_nodes(by_node)
    out: list[Finding] = []
    if overtaken:
        overtaken -= ready
    if armed:
        template = _images(ds.spec.template.spec)
        free = {n for n, ps in by_node.items() if all(old_and_unready(p, template) for p in ps)}
        down = sorted(n for n in nodes if n not in ready and n not in (overtaken or ()) and n not in free)
        if len(down) > max_unavailable:
            out.append(Finding(UNAVAILABLE, len(down), max_unavailable,
                               f"{len(down)} of {len(nodes)} nodes without a Ready pod, at most {max_unavailable}: "
                               f"{', '.join(down[:8])}; their pods: "
                               f"{'; '.join(describe_pod(p) for n in down[:8] for p in by_node.get(n, ()))}"))
    crowded = {n: ps for n, ps in by_node.items() if len(ps) > 1 + max_surge}
    if crowded:
        worst = max(len(ps) for ps in crowded.values())
        out.append(Finding(TOO_MANY, worst, 1 + max_surge,
                           f"nodes with more than {1 + max_surge} pods: "
                           f"{'; '.join(f'{n}: ' + ', '.join(describe_pod(p) for p in ps) for n, ps in sorted(crowded.items()))}"))
    if partition_armed and partition:
        images = _images(ds.spec.template.spec)
        updated = sorted(p.metadata.name for ps in by_node.values() for p in ps
                         if {c.name: c.image for c in p.spec.containers} == images)
        limit = max(len(nodes) - partition, 0)
        if len(updated) > limit:
            out.append(Finding(PARTITION, len(updated), limit,
                               f"{len(updated)} pods on {images}, at most {limit} ({len(nodes)} nodes, partition "
                               f"{partition}): {', '.join(updated)}"))
    return out


def daemonset_convergence(ds: DaemonSet, pods: Iterable[Pod], nodes: Collection[str]) -> list[str]:
    """Why the DaemonSet has not converged: one Ready pod per node, ``nodes - partition`` of them (at
    least) running the latest images, and every status count agreeing with the pods."""
    _, _, partition = _ds_budget(ds, len(nodes))
    pods = list(pods)
    st = ds.status
    problems: list[str] = []
    if st.observed_generation != ds.metadata.generation:
        problems.append(f"observedGeneration {st.observed_generation} != generation {ds.metadata.generation}")
    deleting = sorted(p.metadata.name for p in pods if not is_active(p))
    if deleting:
        problems.append(f"{len(deleting)} pods being deleted: {', '.join(deleting[:5])}")
    by_node = _per_node(pods)
    wrong = sorted(n for n in nodes if len(by_node.get(n, ())) != 1)
    if wrong:
        problems.append(f"nodes without exactly one pod: {', '.join(f'{n} ({len(by_node.get(n, ()))})' for n in wrong)}")
    active = [p for ps in by_node.values() for p in ps]
    ready = [p for p in active if is_ready(p)]
    if len(ready) != len(active):
        problems.append(f"{len(active) - len(ready)} pods not Ready")
    images = _images(ds.spec.template.spec)
    updated = [p for p in active if {c.name: c.image for c in p.spec.containers} == images]
    want = max(len(nodes) - partition, 0)
    if len(updated) < want:
        problems.append(f"{len(updated)} pods on {images}, want {want} (partition {partition})")
    stale = sorted(p.metadata.name for p in updated if not runs_images(p, images))
    if stale:
        problems.append(f"pods not running {images}: {', '.join(stale[:5])}")
    counts = {"desiredNumberScheduled": (st.desired_number_scheduled, len(nodes)),
              "currentNumberScheduled": (st.current_number_scheduled, len(by_node)),
              "numberReady": (st.number_ready, len(ready)), "numberAvailable": (st.number_available, len(ready)),
              "numberUnavailable": (st.number_unavailable, len(nodes) - len(ready)),
              "updatedNumberScheduled": (st.updated_number_scheduled, len(updated))}
    for name, (said, seen) in counts.items():
        if said != seen:
            problems.append(f"status.{name} {said} but {seen} seen")
    return problems


def sidecar_images(ss: SidecarSet) -> dict[str, str]:
    return _images({"containers": ss.spec.containers})


def sidecarset_findings(ss: SidecarSet, pods: Iterable[Pod], charged: Collection[str]) -> list[Finding]:
    """Upgrades charged to maxUnavailable within it: ``charged`` are the uids of pods whose latest sidecar
    upgrade began while they were Ready and that have not been Ready on the new image since. Kruise
    upgrades a pod that is not Ready outside the budget, so only these count; and only pods on the
    SidecarSet's latest sidecar images, as Kruise's budget counts only *updated* pods: a pod whose
    upgrade to an older version was overtaken by a newer one (its spec still on the older images) is
    in progress, neither a candidate nor charged, until it is upgraded to the latest."""
    pods = list(pods)
    limit = max_unavailable_of(ss.spec.update_strategy, len(pods))
    latest = sidecar_images(ss)

    def updated(p: Pod) -> bool:
        spec = {c.name: c.image for c in p.spec.containers}
        return all(spec.get(name) == image for name, image in latest.items())

    down = sorted((p for p in pods if p.metadata.uid in charged and updated(p)), key=lambda p: p.metadata.name)
    if len(down) <= limit:
        return []
    return [Finding(UNAVAILABLE, len(down), limit,
                    f"{len(down)} of {len(pods)} matched pods upgraded from Ready and not Ready on the new sidecar "
                    f"since, at most {limit} (maxUnavailable): {'; '.join(describe_pod(p) for p in down[:8])}")]


def charge_upgrade(ss: SidecarSet, pod: Pod, seen: dict[str, tuple[str, ...]], charged: set[str]) -> None:
    """Fold one observation of a matched pod into the SidecarSet's budget bookkeeping (see
    :func:`sidecarset_findings`): a sidecar image change seen on a Ready pod charges it, one on a pod
    that is not Ready is free, and Ready on the new image releases it."""
    names = sorted(sidecar_images(ss))
    spec = {c.name: c.image for c in pod.spec.containers}
    images = tuple(spec.get(n, "") for n in names)
    uid = pod.metadata.uid
    before = seen.get(uid)
    seen[uid] = images
    if before is not None and before != images:
        if is_ready(pod):
            charged.add(uid)
        else:
            charged.discard(uid)
    elif uid in charged and is_ready(pod) and runs_images(pod, dict(zip(names, images, strict=True))):
        charged.discard(uid)


def sidecarset_convergence(ss: SidecarSet, pods: Iterable[Pod]) -> list[str]:
    """Why the SidecarSet has not converged: every matched pod Ready and running the sidecar images,
    and matched/updated/ready/updatedReady all equal to the matched pods."""
    pods = list(pods)
    st = ss.status
    problems: list[str] = []
    if st.observed_generation != ss.metadata.generation:
        problems.append(f"observedGeneration {st.observed_generation} != generation {ss.metadata.generation}")
    images = sidecar_images(ss)
    stale = sorted(p.metadata.name for p in pods if not runs_images(p, images))
    if stale:
        problems.append(f"matched pods not running {images}: {', '.join(stale[:5])}")
    not_ready = sorted(p.metadata.name for p in pods if not is_ready(p))
    if not_ready:
        problems.append(f"matched pods not Ready: {', '.join(not_ready[:5])}")
    for name, said in (("matchedPods", st.matched_pods), ("updatedPods", st.updated_pods),
                       ("readyPods", st.ready_pods), ("updatedReadyPods", st.updated_ready_pods)):
        if said != len(pods):
            problems.append(f"status.{name} {said} but {len(pods)} matched pods")
    return problems


# --- kinds without a pod budget: PodProbeMarker and ImagePullJob --------------------------------------------
#
# Neither has an instantaneous rule: a marker lags its probe by design, and a pull job is only judged
# when it is done. Both are convergence conditions the soak adds to its settle (bench/chaos.py), with
# what only the soak knows (the probe outcome it set on the runtime, the kubelets' record of pulls).


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe on one pod answers now (the soak set it on the sim's runtime): ``state`` is
    Succeeded or Failed, ``message`` what the probe printed (exec: stdout on success, stderr on failure)."""

    state: str
    message: str


def marker_problems(ppm: PodProbeMarker, pods: Iterable[Pod],
                    outcomes: Mapping[str, Mapping[str, ProbeOutcome]]) -> list[str]:
    """Why the marker's pods do not show their probes' current outcomes ([] when every one does).

    ``pods``: the pods the marker selects; ``outcomes``: pod name -> probe name -> its outcome (a pod
    or probe without one is not judged: nobody decided what it answers; a pod with one that is not
    among the active ``pods`` is a problem, so a selector that matches nothing is no pass). For each probe with an
    outcome: the labels and annotations of the markerPolicy for that state carry its values; every key
    only the *other* policies set is absent (a stale marker of the previous outcome); the
    podConditionType condition is True for Succeeded, False otherwise, with the outcome's message.
    """
    pods = [p for p in pods if is_active(p)]
    problems = [f"pod {name} has a probe outcome but the marker selects no such active pod"
                for name in sorted(set(outcomes) - {p.metadata.name for p in pods})]
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        want = outcomes.get(pod.metadata.name)
        if not want:
            continue
        meta = pod.metadata
        for probe in ppm.spec.probes:
            outcome = want.get(probe.name)
            if outcome is None:
                continue
            where = f"pod {meta.name} probe {probe.name} ({outcome.state} {outcome.message!r})"
            matched = [m for m in probe.marker_policy if m.state == outcome.state]
            others = [m for m in probe.marker_policy if m.state != outcome.state]
            for what, have, wanted, other_keys in (
                    ("labels", meta.labels, {k: v for m in matched for k, v in m.labels.items()},
                     {k for m in others for k in m.labels}),
                    ("annotations", meta.annotations, {k: v for m in matched for k, v in m.annotations.items()},
                     {k for m in others for k in m.annotations})):
                wrong = {k: have.get(k) for k, v in wanted.items() if have.get(k) != v}
                if wrong:
                    problems.append(f"{where}: {what} {wrong}, want {wanted}")
                stale = sorted(k for k in other_keys - set(wanted) if k in have)
                if stale:
                    problems.append(f"{where}: stale {what} of the other state: {stale}")
            if probe.pod_condition_type:
                cond = pod.status.condition(probe.pod_condition_type)
                status = "True" if outcome.state == PROBE_SUCCEEDED else "False"
                if cond is None or cond.status != status or cond.message != outcome.message:
                    seen = f"{cond.status} {cond.message!r}" if cond else "missing"
                    problems.append(f"{where}: condition {probe.pod_condition_type} {seen}, "
                                    f"want {status} {outcome.message!r}")
    return problems


def pull_job_problems(job: ImagePullJob, targets: int) -> list[str]:
    """Why an Always ImagePullJob over ``targets`` nodes has not finished as docs/prepull.md defines
    ([] when it has): status.completionTime set, desired the number of targets, every one succeeded
    (succeeded == desired, none failed or active; the soak's images all exist)."""
    st = job.status
    problems: list[str] = []
    if st.completion_time is None:
        problems.append(f"not finished ({st.message or 'no status'})")
    if st.desired != targets:
        problems.append(f"status.desired {st.desired}, want {targets} (every node)")
    if st.succeeded != st.desired or st.failed or st.failed_nodes or st.active:
        problems.append(f"succeeded {st.succeeded} of desired {st.desired}, failed {st.failed} "
                        f"{st.failed_nodes}, active {st.active}")
    return problems


def repeated_pulls(pull_log: Mapping[str, Iterable[str]], images: Collection[str]) -> list[Finding]:
    """Downloads of one job image on one node more than once, from the kubelets' record (node -> the
    images it downloaded, in order; a failed attempt downloads nothing and is not in it).

    A restart explains none: a kubelet keeps what it downloaded and a pull it is asked for again while
    downloading joins the one in progress, so a killed agent's repeated pull costs no second download.
    """
    out = []
    for node, pulled in sorted(pull_log.items()):
        counts: dict[str, int] = defaultdict(int)
        for image in pulled:
            counts[image] += 1
        for image, n in sorted(counts.items()):
            if image in images and n > 1:
                out.append(Finding(PULLED_TWICE, n, 1, f"node {node} downloaded {image} {n} times",
                                   key=f"{node} {image}"))
    return out


# --- one interface per kind ------------------------------------------------------------------------------


class Rules:
    """What the checker needs of one workload kind: its decoder, its pods, its rules, its convergence.

    ``owns_pods``: the kind's pods carry it as controller owner (otherwise :meth:`select` picks them).
    ``template_key`` changes when a rollout starts (the partition rule is armed after the first);
    the lower-bound rules are armed once :meth:`full` held at the current :meth:`size`.
    """

    resource: Resource
    owns_pods = True

    def decode(self, raw: bytes) -> Workload:
        raise NotImplementedError

    def select(self, obj: Workload, pods: Iterable[Pod]) -> list[Pod]:
        uid = obj.metadata.uid
        return [p for p in pods if (ref := p.metadata.controller_ref()) is not None and ref.uid == uid]

    def template_key(self, obj: Workload) -> str:
        raise NotImplementedError

    def size(self, obj: Workload, nodes: Collection[str]) -> int:
        return len(nodes)

    def full(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> bool:
        raise NotImplementedError

    def findings(self, st: _State, pods: list[Pod], nodes: Collection[str], *, armed: bool) -> list[Finding]:
        """The instantaneous rules (``armed``: the lower bounds apply)."""
        raise NotImplementedError

    def observe(self, st: _State, pod: Pod) -> None:
        """Fold one observation of one of its pods into the workload's memory (most kinds keep none)."""

    def template_changed(self, st: _State, pods: list[Pod], nodes: Collection[str]) -> None:
        """Note what the pods were when ``st``'s template changed (``pods``: before the change)."""

    def convergence(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> list[str]:
        raise NotImplementedError

    def settled(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> list[Finding]:
        """Findings that only count once converged (left-over pods)."""
        return []


class CloneSetRules(Rules):
    resource = CLONESETS

    def decode(self, raw: bytes) -> CloneSet:
        return _CS.decode(raw)

    def template_key(self, obj: Workload) -> str:
        assert isinstance(obj, CloneSet)
        return update_revision(obj)

    def size(self, obj: Workload, nodes: Collection[str]) -> int:
        assert isinstance(obj, CloneSet)
        return replicas_of(obj)

    def full(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> bool:
        return sum(1 for p in pods if is_active(p) and is_ready(p)) >= self.size(obj, nodes)

    def findings(self, st: _State, pods: list[Pod], nodes: Collection[str], *, armed: bool) -> list[Finding]:
        assert isinstance(st.obj, CloneSet)
        return state_findings(st.obj, pods, armed=armed, partition_armed=st.key != st.first_key, revision=st.key)

    def convergence(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> list[str]:
        assert isinstance(obj, CloneSet)
        return convergence_problems(obj, pods)

    def settled(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> list[Finding]:
        active = sum(1 for p in pods if is_active(p))
        want = self.size(obj, nodes)
        return [Finding(SURGE_LEFT, active, want, f"{active} pods for {want} replicas after settle")] \
            if active > want else []


class DaemonSetRules(Rules):
    resource = DAEMONSETS

    def decode(self, raw: bytes) -> DaemonSet:
        return _DS.decode(raw)

    def template_key(self, obj: Workload) -> str:
        assert isinstance(obj, DaemonSet)
        return repr(sorted(_images(obj.spec.template.spec).items()))

    def full(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> bool:
        return bool(nodes) and set(nodes) <= _ready_nodes(_per_node(pods))

    def findings(self, st: _State, pods: list[Pod], nodes: Collection[str], *, armed: bool) -> list[Finding]:
        assert isinstance(st.obj, DaemonSet)
        return daemonset_findings(st.obj, pods, nodes, armed=armed, partition_armed=st.key != st.first_key,
                                  overtaken=st.overtaken)

    def template_changed(self, st: _State, pods: list[Pod], nodes: Collection[str]) -> None:
        st.overtaken |= overtaken_nodes(pods, nodes)

    def observe(self, st: _State, pod: Pod) -> None:
        """A pod version older than the template change (by resourceVersion) that is not Ready: the pod
        was there, not Ready, at the change, though its watch event came after the DaemonSet's (two
        watches keep no order between them; the soak saw a pod created 66 ms before the change arrive
        after it). Its node is overtaken like those seen at the change."""
        rv = resource_version(pod.metadata.resource_version)
        if (st.changed_rv is not None and rv is not None and rv < st.changed_rv and pod.spec.node_name
                and is_active(pod) and not is_ready(pod)):
            st.overtaken.add(pod.spec.node_name)
        # an old, not Ready pod being deleted was replaced for free (a pod the planner created on the
        # previous template just before a change, then took for old): its node stays free until Ready
        assert isinstance(st.obj, DaemonSet)
        if (pod.metadata.deletion_timestamp is not None and pod.spec.node_name
                and old_and_unready(pod, _images(st.obj.spec.template.spec))):
            st.overtaken.add(pod.spec.node_name)

    def convergence(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> list[str]:
        assert isinstance(obj, DaemonSet)
        return daemonset_convergence(obj, pods, nodes)

    def settled(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> list[Finding]:
        crowded = {n: len(ps) for n, ps in _per_node(pods).items() if len(ps) > 1}
        return [Finding(SURGE_LEFT, max(crowded.values()), 1, f"nodes with more than one pod after settle: {crowded}")] \
            if crowded else []


class SidecarSetRules(Rules):
    resource = SIDECARSETS
    owns_pods = False

    def decode(self, raw: bytes) -> SidecarSet:
        return _SS.decode(raw)

    def select(self, obj: Workload, pods: Iterable[Pod]) -> list[Pod]:
        assert isinstance(obj, SidecarSet)
        return [p for p in pods if is_matched(obj, p)]

    def template_key(self, obj: Workload) -> str:
        assert isinstance(obj, SidecarSet)
        return repr(sorted(sidecar_images(obj).items()))

    def size(self, obj: Workload, nodes: Collection[str]) -> int:
        return 0

    def full(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> bool:
        return bool(pods) and all(is_ready(p) for p in pods)

    def findings(self, st: _State, pods: list[Pod], nodes: Collection[str], *, armed: bool) -> list[Finding]:
        assert isinstance(st.obj, SidecarSet)
        return sidecarset_findings(st.obj, pods, st.charged)

    def observe(self, st: _State, pod: Pod) -> None:
        assert isinstance(st.obj, SidecarSet)
        charge_upgrade(st.obj, pod, st.seen_images, st.charged)

    def convergence(self, obj: Workload, pods: list[Pod], nodes: Collection[str]) -> list[str]:
        assert isinstance(obj, SidecarSet)
        return sidecarset_convergence(obj, pods)


RULES: dict[str, Rules] = {r.resource.plural: r for r in (CloneSetRules(), DaemonSetRules(), SidecarSetRules())}


# --- the stateful checker ------------------------------------------------------------------------------


@dataclass
class Violation:
    kind: str
    workload: str  # plural/namespace/name ("clonesets/default/web"), a SidecarSet "sidecarsets/log"
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
        return f"[{self.kind}] {self.workload} at t={self.started:.2f}s ({span}): {self.detail}"


def workload_name(rules: Rules, obj: Workload) -> str:
    meta = obj.metadata
    return "/".join(x for x in (rules.resource.plural, meta.namespace, meta.name) if x)


@dataclass
class _State:
    rules: Rules
    obj: Workload
    first_key: str
    key: str  # of the latest template (computed once per object change, not per pod event)
    armed_size: int | None = None  # size at which the workload was seen full
    members: set[str] = field(default_factory=set)  # uids of the pods it selects (kinds that own none)
    seen_images: dict[str, tuple[str, ...]] = field(default_factory=dict)  # pod uid -> its sidecar images
    charged: set[str] = field(default_factory=set)  # pod uids whose upgrade counts against maxUnavailable
    overtaken: set[str] = field(default_factory=set)  # DaemonSet nodes down at a template change (free)
    changed_rv: int | None = None  # the workload's resourceVersion at its latest template change
    open: dict[str, Violation] = field(default_factory=dict)
    closed: dict[str, Violation] = field(default_factory=dict)  # the last ended episode per kind

    @property
    def name(self) -> str:
        return workload_name(self.rules, self.obj)


class Checker:
    """Folds API observations (pods, nodes, workloads, Events) into violations; no I/O (see :class:`ApiChecker`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 on_violation: Callable[[Violation], object] | None = None) -> None:
        self.clock = clock
        self.on_violation = on_violation
        self.t0 = clock()
        self.pods: dict[str, Pod] = {}  # uid -> latest (including pods being deleted)
        self.nodes: set[str] = set()  # the cluster's nodes (a DaemonSet's eligible nodes)
        self.by_owner: dict[str, set[str]] = defaultdict(set)  # workload uid -> pod uids
        self.workloads: dict[str, _State] = {}  # uid -> state
        self.history: dict[str, _PodHistory] = {}
        self.uids_by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.deleted_by_name: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.events: dict[str, KubeEventView] = {}  # Event uid -> Event
        self.violations: list[Violation] = []
        self.reported_events: dict[str, int] = {}  # Finding.key -> excess Events already reported
        self.reported_pulls: dict[str, int] = {}  # "node image" -> excess downloads already reported

    def now(self) -> float:
        return self.clock() - self.t0

    def record(self, kind: str, workload: str, detail: str, worst: int = 0, limit: int = 0,
               ended: bool = True) -> Violation:
        t = self.now()
        v = Violation(kind, workload, t, detail, worst, limit, t if ended else None)
        self.violations.append(v)
        log.warning("violation %s", v.describe())
        if self.on_violation is not None:
            self.on_violation(v)
        return v

    # --- observations

    def cloneset(self, cs: CloneSet, deleted: bool = False) -> None:
        self.workload(RULES[CLONESETS.plural], cs, deleted)

    def workload(self, rules: Rules, obj: Workload, deleted: bool = False) -> None:
        uid = obj.metadata.uid
        if deleted:
            gone = self.workloads.pop(uid, None)
            if gone is not None:
                self._close_all(gone)
            return
        st = self.workloads.get(uid)
        if st is None:
            key = rules.template_key(obj)
            st = self.workloads[uid] = _State(rules, obj, key, key)
        else:
            if rules.size(obj, self.nodes) != rules.size(st.obj, self.nodes):
                st.armed_size = None  # a scale is not a rollout: re-arm at the new count
            key = rules.template_key(obj)
            if key != st.key:
                rules.template_changed(st, self.pods_of(st), self.nodes)
                st.changed_rv = resource_version(obj.metadata.resource_version)
            st.obj = obj
            st.key = key
        if not rules.owns_pods:
            st.members = {p.metadata.uid for p in rules.select(obj, self.pods.values())}
        self._evaluate(st)

    def node(self, name: str, deleted: bool = False) -> None:
        if deleted:
            self.nodes.discard(name)
        else:
            self.nodes.add(name)

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
            # a pod without a revision label (a SidecarSet's own pods) restarts containers on sidecar upgrades
            problem = updated_twice(hist, pod) if LABEL_REVISION_HASH in meta.labels else None
            if problem is not None:
                owner = f"{meta.namespace}/{ref.name}" if ref else meta.namespace
                self.record(UPDATED_TWICE, owner, problem, ended=True)
        if ref is not None:
            if deleted:
                self.by_owner[ref.uid].discard(meta.uid)
            else:
                self.by_owner[ref.uid].add(meta.uid)
            st = self.workloads.get(ref.uid)
            if st is not None:
                # a pod deleted without a graceful phase is seen going as one with a deletionTimestamp
                st.rules.observe(st, pod if not deleted or meta.deletion_timestamp else msgspec.structs.replace(
                    pod, metadata=msgspec.structs.replace(meta, deletion_timestamp="deleted")))
                self._evaluate(st)
        for other in self.workloads.values():
            if other.rules.owns_pods:
                continue
            was = meta.uid in other.members
            if not deleted and other.rules.select(other.obj, [pod]):
                other.members.add(meta.uid)
                other.rules.observe(other, pod)
            elif was:
                other.members.discard(meta.uid)
                other.charged.discard(meta.uid)
            else:
                continue  # neither selected nor was: nothing of this workload changed
            self._evaluate(other)

    def event(self, raw: bytes) -> None:
        ev = _EVENT.decode(raw)
        if ev.reason in _COUNTED_EVENTS:
            self.events[ev.metadata.uid or ev.metadata.name] = ev

    # --- rules

    def owned(self, uid: str) -> list[Pod]:
        return [self.pods[u] for u in self.by_owner.get(uid, ()) if u in self.pods]

    def pods_of(self, st: _State) -> list[Pod]:
        if st.rules.owns_pods:
            return self.owned(st.obj.metadata.uid)
        return [self.pods[u] for u in st.members if u in self.pods]

    def _evaluate(self, st: _State) -> None:
        pods = self.pods_of(st)
        size = st.rules.size(st.obj, self.nodes)
        if st.armed_size != size and st.rules.full(st.obj, pods, self.nodes):
            st.armed_size = size
        findings = st.rules.findings(st, pods, self.nodes, armed=st.armed_size == size)
        name = st.name
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

    def _close_all(self, st: _State) -> None:
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
        """Workload (plural/namespace/name) -> why it has not converged, for every workload seen."""
        return {st.name: st.rules.convergence(st.obj, self.pods_of(st), self.nodes) for st in self.workloads.values()}

    def converged(self) -> bool:
        return all(not p for p in self.convergence().values())

    def check_settled(self) -> list[Violation]:
        """At a converged moment: surge pods left behind and duplicate Events."""
        out = [self.record(f.kind, st.name, f.detail, f.value, f.limit)
               for st in self.workloads.values() for f in st.rules.settled(st.obj, self.pods_of(st), self.nodes)]
        return out + self.check_events()

    def check_pulls(self, pull_log: Mapping[str, Iterable[str]], images: Collection[str]) -> list[Violation]:
        """Record repeated downloads of job images (:func:`repeated_pulls`) not reported yet."""
        out = []
        for f in repeated_pulls(pull_log, images):
            if f.value - f.limit > self.reported_pulls.get(f.key, 0):
                self.reported_pulls[f.key] = f.value - f.limit
                out.append(self.record(f.kind, f"nodes/{f.key.split()[0]}", f.detail, f.value, f.limit))
        return out

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
        for res in WATCHED:
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
        if res is NODES:
            node = _NODE.decode(raw)
            self.checker.node(node.metadata.name, deleted)
            return node.metadata.resource_version
        rules = RULES.get(res.plural)
        if rules is not None:
            obj = rules.decode(raw)
            self.checker.workload(rules, obj, deleted)
            return obj.metadata.resource_version
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
                    if len(self._synced) == len(WATCHED):
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


WATCHED = (NODES, *(r.resource for r in RULES.values()), PODS, EVENTS)


class _BookmarkMeta(msgspec.Struct):
    resourceVersion: str = ""  # noqa: N815 - wire name


class _Bookmark(msgspec.Struct):
    metadata: _BookmarkMeta = msgspec.field(default_factory=_BookmarkMeta)
