"""The planner service: the compacted state stream in, commands out.

A generic engine over the registry of workload planners (`services.planner.workloads`). It rebuilds
its view of every workload (the object, its pods, what else it owns) by replaying KB_STATE
from the start and following it live; nothing is read from the API server. Planning is
level-triggered: any change to a workload or to something it owns marks the workload dirty, and a
periodic resync marks everything dirty, so a skipped event can delay a decision but never lose it.

Streams a workload declares as extra inputs (`kit.workload.Input`: a PodProbeMarker's probe results
on KB_PROBE) are followed too: each item belongs to the workload its input routes it to, which gets
them in its view and is re-planned when one changes. The engine knows no kind by name.

Between a decision and its observed effect the workload is not re-planned (Kruise's expectations):
the pure planner returns what it expects to see (a pod present, gone, or relabelled); until the
watcher reports that, or the expectation times out, or the executor rejects a command of this
workload as stale, a second pass could only repeat or contradict the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, StreamInfo
from opentelemetry import trace

from schemas.constants import LABEL_REVISION_HASH
from schemas.kinds import CONTROLLER_REVISION, POD, Kind, kind_of
from schemas.kube import ControllerRevision, ObjectMeta, Pod
from schemas.messages import (
    COMMAND_DECODER,
    EVENT_DECODER,
    STATE_DECODER,
    STATE_SYNCED_DECODER,
    VERB_CREATE,
    VERB_REVISION_CREATE,
    Command,
    Expectation,
    RolloutEvent,
    StateEvent,
)
from schemas.subjects import (
    EVENT_REJECTED,
    EVENT_STREAM_LOST,
    REASON_NAME_TAKEN,
    STREAM_CMD,
    STREAM_EVENTS,
    STREAM_NODE,
    STREAM_PROBE,
    STREAM_STATE,
    encode_token,
)
from schemas.timefmt import format_micro, parse_time
from schemas.traceids import rollout_trace_hex
from services import metrics
from services.bus import UNDECODABLE, Bus, replayed_or_stopped
from services.lease import LeaseStore, PartitionClaims
from services.planner.kit.compact import compact_pod
from services.planner.kit.expectations import Reports, command_scoped, expectation_met
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.podstate import is_ready
from services.planner.kit.timers import TimerHeap
from services.planner.kit.workload import ORPHAN_PODS, Input, Shared, WorkloadPlanner, claims_of, inputs_of
from services.planner.partitions import partition_of
from services.planner.workloads import owned_kinds, registry_for
from services.telemetry import (
    K8S_NAMESPACE,
    KB_REVISION,
    KB_WORKLOAD,
    KB_WORKLOAD_UID,
    rollout_context,
    start_rollout_root_span,
)

log = logging.getLogger("kruisebus.planner")


def taken_placeholder(name: str, namespace: str) -> ControllerRevision:
    """A ControllerRevision standing for an object of that name the planner cannot see: no owner (so no
    workload takes it for its history) and no data (so no template matches it)."""
    return ControllerRevision(metadata=ObjectMeta(name=name, namespace=namespace))


@dataclass
class Workload:
    uid: str
    planner: WorkloadPlanner | None = None  # None until the workload object itself has been seen
    obj: Any = None  # the workload object (a CloneSet, ...)
    pods: dict[str, Pod] = field(default_factory=dict)
    owned: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind token -> uid -> object it owns
    previous: Any = None  # the last spec the planner accepted (update-only validation)
    expectations: list[tuple[Expectation, float]] = field(default_factory=list)
    rolling: str = ""  # the update revision of a rollout in progress (for its root span)
    # ControllerRevisions this planner asked to create and has not observed yet: name -> deadline.
    # The pure planner's expectations are about pods; without this, every pass until the watcher
    # reports the new revision re-sent `revision-create` (dropped as a duplicate) plus a status write,
    # and each status write's echo triggered another such pass (~1 s at the start of a 1,000-pod rollout).
    revisions_expected: dict[str, float] = field(default_factory=dict)
    # ControllerRevision names the executor found held by an object this workload does not control
    # (a `name-taken` rejection). The planner sees only its workloads' own revisions, so each pass is
    # shown such a name as taken by other data (`taken_placeholder`) and hashes again with the next
    # collision count. Process memory: the raised count is in the workload's status, and a restarted
    # planner that meets the name again learns it again from the next rejection.
    names_taken: set[str] = field(default_factory=set)
    # Node work in flight (`kit.expectations.command_scoped`): command id -> (the report it expects,
    # deadline). Such a command is not sent again until its report arrives or its deadline passes;
    # the workload itself keeps being planned. `reissues`: how often each was re-sent after expiring.
    in_flight: dict[str, tuple[Expectation, float]] = field(default_factory=dict)
    reissues: dict[str, int] = field(default_factory=dict)

    def owned_of(self, kind: Kind) -> dict[str, Any]:
        return self.owned.setdefault(kind.token, {})

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

    def pending(self, now: float, shared_pods: Mapping[str, Pod] | None = None) -> bool:
        """Drop met or expired expectations; True while any remains (``shared_pods``: the shared pod
        view by uid, for expectations about pods the workload does not own)."""
        if self.revisions_expected:
            seen = {r.metadata.name for r in self.owned_of(CONTROLLER_REVISION).values()}
            self.revisions_expected = {n: d for n, d in self.revisions_expected.items() if d > now and n not in seen}
            if self.revisions_expected:
                return True
        if not self.expectations:
            return False
        by_name = self.by_name
        self.expectations = [(e, deadline) for e, deadline in self.expectations
                             if deadline > now and not expectation_met(e, by_name, shared_pods=shared_pods)]
        return bool(self.expectations)


RETRY_SEP = "@retry"  # a re-sent rejected command's msg id: `<command id>@retry<n>` (expired node work: `e<n>`)
REPORT_GRACE = 5.0  # seconds past a node command's not_after its agent's report (of the expiry) may take
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
                 expectation_timeout: float = 30.0, report_grace: float = REPORT_GRACE,
                 tracer_provider: trace.TracerProvider | None = None,
                 registry: dict[str, WorkloadPlanner] | None = None, state_sync_timeout: float = 0.0) -> None:
        """`state_sync_timeout`: how long to wait for the watcher's state barrier before planning (the
        service passes `PlannerSettings.state_sync_timeout`); 0 plans on the replayed stream at once,
        for a planner fed without a watcher (tests that publish the states themselves)."""
        self.bus = bus
        self.registry = registry if registry is not None else registry_for(gates)
        self.owned_kinds = owned_kinds(self.registry)
        # When each workload wants its next pass (its last pass's requeue_after), in loop time: one heap and
        # one sleeper (`run_timers`) instead of a timer per pass, which for an AdvancedCronJob re-planned every
        # resync piled up handles hours ahead. A restart loses nothing: the first pass recomputes every time.
        self.timers: TimerHeap[str] = TimerHeap()
        self.timers_changed = asyncio.Event()
        self.tracer_provider = tracer_provider
        self.gates = gates
        self.resync_seconds = resync_seconds
        self.expectation_timeout = expectation_timeout
        self.report_grace = report_grace
        self.workloads: dict[str, Workload] = {}
        self.by_name: dict[tuple[str, str, str], str] = {}  # (kind token, namespace, name) -> uid
        self.of_kind: dict[str, set[str]] = {token: set() for token in self.registry}  # kind token -> uids
        self.pod_owner: dict[str, str] = {}  # pod uid -> the workload holding it
        self.orphans: dict[str, Pod] = {}  # pods without a controller reference (compacted), by uid
        # Kinds some planner reads cluster-wide (`Shared`): kind token -> [(reading planner's token, share)],
        # one index of their objects (token -> uid -> object) and its name-sorted list, rebuilt on change.
        self.sharers: dict[str, list[tuple[str, Shared]]] = {}
        for token, p in self.registry.items():
            for share in p.shared:
                self.sharers.setdefault(share.kind.token, []).append((token, share))
        self.shared_objects: dict[str, dict[str, Any]] = {token: {} for token in self.sharers}
        # what the index keeps of an object, when every planner sharing the kind agrees on it
        self.shared_compact: dict[str, Callable[[Any], Any] | None] = {}
        for token, shares in self.sharers.items():
            compacts = {share.compact for _, share in shares}
            self.shared_compact[token] = compacts.pop() if len(compacts) == 1 else None
        self.shared_sorted: dict[str, list[Any]] = {}
        # The extra inputs planners declare (`Input`): (planner token, input token) -> (namespace, workload
        # name) -> item key -> the latest item; each replayed before planning starts.
        self.inputs: list[tuple[str, Input]] = [(token, i) for token, p in self.registry.items()
                                                for i in inputs_of(p)]
        self.input_items: dict[tuple[str, str], dict[tuple[str, str], dict[Any, Any]]] = {
            (token, i.token): {} for token, i in self.inputs}
        self.inputs_replayed = {(token, i.token): asyncio.Event() for token, i in self.inputs}
        # pod uid -> where items about it are indexed (dropped with the pod)
        self.input_items_of_pod: dict[str, set[tuple[tuple[str, str], tuple[str, str], Any]]] = {}
        self.dirty: set[str] = set()
        self.wakeup = asyncio.Event()
        self.replayed = asyncio.Event()
        self.rejections_replayed = asyncio.Event()
        self.plans = 0
        self.recovered: int | None = None  # queued commands taken over at start (None: not yet)
        # Rejected commands. A command id is its dedup id, so re-sending a rejected decision under the
        # same id would be dropped by the duplicate window and its expectation would hold the workload
        # until it timed out (an `update-in-place` id has no resourceVersion in it: one stale rejection
        # stalled that pod's batch for the whole window). id -> (rejections, monotonic time)
        self.rejected: dict[str, tuple[int, float]] = {}
        # id -> (resourceVersion of the object it was decided on, monotonic time), to tell a re-plan on
        # the very view that was rejected as stale (wait for fresher state) from one on a newer view.
        # Also the pod each command is about, for its rejection (a rejected event may not name it).
        # The workload uid it was sent for, which its rejection is matched to.
        self.sent: dict[str, tuple[str, float, str, str]] = {}
        metrics.ROLLOUTS_IN_PROGRESS.set_function(
            lambda: sum(1 for wl in self.workloads.values() if wl.rolling))
        # Partitions (services/lease.py): None plans every workload; else only those of partitions this
        # replica holds. `acting` is held for a whole planning pass, so a partition is handed over only
        # once nothing decided for it is still being published (fencing).
        self.claims: PartitionClaims | None = None
        self.acting = asyncio.Lock()
        # The state barrier (`sync_view`): no pass runs while `view_current` is clear; `view_wanted` asks
        # `keep_view_current` for a barrier (at start, and when partitions are taken over).
        self.state_sync_timeout = state_sync_timeout
        self.state_seq = 0  # the highest KB_STATE sequence handled
        self.state_seen = asyncio.Event()  # pulsed by each state handled
        self.view_current = asyncio.Event()
        self.view_wanted = asyncio.Event()
        self.view_wanted.set()

    # --- partitions ------------------------------------------------------------------------------
    def owns(self, uid: str) -> bool:
        """Whether this replica plans the workload now (its partition's lease is held and recovered)."""
        return self.claims is None or self.claims.holds(partition_of(uid, self.claims.partitions))

    def claim_partitions(self, store: LeaseStore, holder: str, partitions: int, ttl: int) -> PartitionClaims:
        """Plan only the workloads of the partitions this replica claims (a fair share among replicas)."""
        self.claims = PartitionClaims(store, holder, partitions, ttl, on_gained=self.partition_gained,
                                      on_released=self.partition_released)
        return self.claims

    def _in_partition(self, p: int) -> list[str]:
        assert self.claims is not None
        return [uid for uid in self.workloads if partition_of(uid, self.claims.partitions) == p]

    async def partition_gained(self, p: int) -> None:
        """Before planning a partition taken over from another replica: what that one decided and the
        executor has not done yet is in KB_CMD; wait for it as if this replica had decided it (as a
        restarted planner does), instead of what this replica remembered from an earlier ownership."""
        uids = set(self._in_partition(p))
        # Its last planner may have died with the watcher: then the stream lacks what that planner's last
        # commands did until a new watcher has relisted. Plan nothing before the barrier is passed again.
        self.view_current.clear()
        self.view_wanted.set()
        for uid in uids:
            wl = self.workloads[uid]
            wl.expectations.clear()
            wl.revisions_expected.clear()
            wl.in_flight.clear()
        await self.recover_in_flight(uids)
        self.mark(uids)

    async def partition_released(self, p: int) -> None:
        """Wait out the planning pass in flight (its publishes land before the lease is given up)."""
        async with self.acting:
            pass

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
        """Route a state to the workload it belongs to: a workload's own state to it, a pod or an owned
        object to its controller, an object of a shared kind to the workloads that read it."""
        if msg is not None:
            with contextlib.suppress(Exception):  # a message without JetStream metadata (tests)
                self.state_seq = max(self.state_seq, msg.metadata.sequence.stream)
            self.state_seen.set()
        kind = kind_of(event)
        obj = event.object
        meta = obj.metadata
        if kind.token in self.sharers:
            self.on_shared(kind, obj, event.deleted)
        if kind is POD and event.deleted:
            self.drop_input_items(meta.uid)
        planner = self.registry.get(kind.token)
        if planner is not None:
            uid = meta.uid
            if event.deleted:
                self.workloads.pop(uid, None)
                self.of_kind[kind.token].discard(uid)
                self.by_name.pop((kind.token, meta.namespace, meta.name), None)
            else:
                wl = self.workload(uid)
                wl.planner, wl.obj = planner, obj
                self.of_kind[kind.token].add(uid)
                self.by_name[(kind.token, meta.namespace, meta.name)] = uid
                self.mark([uid])
            if kind.token not in self.owned_kinds:
                return
            # else it also belongs to the workload that controls it (a CloneSet's pull job, an
            # AdvancedCronJob's BroadcastJob)
        elif kind is not POD and kind.token not in self.owned_kinds:
            return
        ref = meta.controller_ref()
        if isinstance(obj, Pod):
            self.on_pod(obj, ref.uid if ref is not None else None, event.deleted)
            return
        if ref is None:
            return  # orphans are not adopted yet
        wl = self.workload(ref.uid)
        if event.deleted:
            wl.owned_of(kind).pop(meta.uid, None)
        else:
            wl.owned_of(kind)[meta.uid] = obj
        self.mark([ref.uid])

    def on_pod(self, pod: Pod, owner: str | None, deleted: bool) -> None:
        """A pod's state, to the workload that controls it (Kruise's pod event handlers): its owner is
        re-planned unless the pod is the version it already holds (the same resourceVersion); a pod
        whose controller changed (or that lost it) also re-plans the workload it left, even if the
        watcher's tombstone for the old owner never came; an orphan re-plans every workload that would
        claim it (`kit.workload.ClaimsOrphans`: the DaemonSets of its namespace whose selector matches)."""
        meta = pod.metadata
        left = self.pod_owner.get(meta.uid)
        if left is not None and left != owner:
            old = self.workloads.get(left)
            if old is not None:
                old.drop_pod(meta.uid)
                self.mark([left])
            del self.pod_owner[meta.uid]
        if owner is None:
            if deleted:
                self.orphans.pop(meta.uid, None)
            else:
                self.orphans[meta.uid] = compact_pod(pod)
                self.mark_claimants(pod)
            return
        self.orphans.pop(meta.uid, None)
        wl = self.workload(owner)
        if deleted:
            wl.drop_pod(meta.uid)
            self.pod_owner.pop(meta.uid, None)
        else:
            held = wl.pods.get(meta.uid)
            if held is not None and held.metadata.resource_version == meta.resource_version:
                return  # the version it already has (a redelivery): nothing changed
            wl.set_pod(compact_pod(pod))  # ~1.9 KB instead of ~5.6 KB a pod
            self.pod_owner[meta.uid] = owner
        self.mark([owner])

    def mark_claimants(self, pod: Pod) -> None:
        for token, planner in self.registry.items():
            claims = claims_of(planner)
            if claims is None:
                continue
            self.mark([uid for uid in self.of_kind[token]
                       if (wl := self.workloads.get(uid)) is not None and wl.obj is not None and claims(wl.obj, pod)])

    def on_shared(self, kind: Kind, obj: Any, deleted: bool) -> None:
        """Index an object of a kind some planner reads cluster-wide and re-plan whom it concerns."""
        meta = obj.metadata
        index = self.shared_objects[kind.token]
        old = index.get(meta.uid)
        if deleted:
            if index.pop(meta.uid, None) is None:
                return
        else:
            compact = self.shared_compact[kind.token]
            new = compact(obj) if compact is not None else obj
            if compact is not None and old is not None and old == new:
                return  # nothing any planner reads of it changed
            index[meta.uid] = new
        self.shared_sorted.pop(kind.token, None)
        for token, share in self.sharers[kind.token]:
            if not deleted and old is not None and share.relevant is not None and not share.relevant(old, new):
                continue  # an update this planner does not care about (a Node heartbeat for a DaemonSet)
            if share.key is not None:
                name = share.key(obj)
                uid = self.by_name.get((token, meta.namespace, name)) or self.by_name.get((token, "", name))
                if uid is not None:
                    self.mark([uid])
            elif share.match is not None:
                self.mark([uid for uid in self.of_kind[token] if self._concerns(uid, share.match, obj, old)])
            else:
                self.mark(self.of_kind[token])

    def _concerns(self, uid: str, match: Callable[[Any, Any], bool], obj: Any, old: Any) -> bool:
        wl = self.workloads.get(uid)
        if wl is None or wl.obj is None:
            return False
        return match(wl.obj, obj) or (old is not None and match(wl.obj, old))

    def input_handler(self, token: str, spec: Input) -> Callable[[Any, Msg | None], Coroutine[Any, Any, None]]:
        async def handle(item: Any, msg: Msg | None = None) -> None:
            self.on_input(token, spec, item)

        return handle

    def on_input(self, token: str, spec: Input, item: Any) -> None:
        """Index an item of a planner's extra input under its workload and re-plan that workload."""
        where = spec.route(item)
        key = spec.key(item)
        self.input_items[(token, spec.token)].setdefault(where, {})[key] = item
        if spec.pod is not None:
            self.input_items_of_pod.setdefault(spec.pod(item), set()).add(((token, spec.token), where, key))
        uid = self.by_name.get((token, *where))
        if uid is not None:
            self.mark([uid])

    def drop_input_items(self, pod_uid: str) -> None:
        """A pod is gone: the items about it (its probe results) belong to no workload any more."""
        for index, where, key in self.input_items_of_pod.pop(pod_uid, ()):
            self.input_items[index].get(where, {}).pop(key, None)

    def shared_view(self, token: str) -> list[Any]:
        view = self.shared_sorted.get(token)
        if view is None:
            view = self.shared_sorted[token] = sorted(self.shared_objects[token].values(),
                                                      key=lambda o: o.metadata.name)
        return view

    async def on_event(self, event: RolloutEvent, msg: Msg | None = None) -> None:
        """A rejected command's expectations will never be met: drop them and plan again.

        Only that command's: a rejected pod command releases that pod's expectations, a rejected
        workload-level command (status, revisions) the expected revisions, rejected node work its
        in-flight entry. Clearing everything made a stale status write release the creates still in
        flight, and the next pass created those pods a second time (AlreadyExists, but two `create`
        entries and two Events for one pod).

        The workload is the one the command was sent for, by uid (what this planner sent, else the
        event's `workload_uid`), never by name: a workload deleted and re-created under the same name
        is another workload, and the old one's rejections are not its business.
        """
        if event.type != EVENT_REJECTED:
            return
        pod = event.pod
        uid = event.workload_uid
        cid = ""
        if event.command_id:
            cid = event.command_id.split(RETRY_SEP, 1)[0]
            count = self.rejected.get(cid, (0, 0.0))[0]
            self.rejected[cid] = (count + 1, time.monotonic())
            sent = self.sent.get(cid)
            if sent is not None:
                pod, uid = pod or sent[2], sent[3]
        wl = self.workloads.get(uid) if uid else None
        if wl is None:
            return
        if (event.reason == REASON_NAME_TAKEN and event.revision
                and event.subject.rsplit(".", 1)[-1] == encode_token(VERB_REVISION_CREATE)):
            wl.names_taken.add(event.revision)  # a revision's name (a pod create carries its revision too)
        if cid and wl.in_flight.pop(cid, None) is not None:
            pass
        elif pod:
            wl.expectations = [(e, d) for e, d in wl.expectations if e.pod != pod]
        else:
            wl.revisions_expected.clear()
        self.mark([uid])

    def reports_of(self, wl: Workload) -> Reports:
        """What the workload's view holds of reports on node work: uid -> the command id it answers,
        looked up among the kinds it reads (shared or owned)."""
        assert wl.planner is not None
        indexes = [self.shared_objects[s.kind.token] for s in wl.planner.shared] + list(wl.owned.values())

        def reported(uid: str) -> str | None:
            for index in indexes:
                obj = index.get(uid)
                if obj is not None:
                    answered = getattr(obj, "command_id", None)
                    return answered if isinstance(answered, str) else None
            return None

        return reported

    def settle_in_flight(self, wl: Workload, now: float) -> float | None:
        """Drop node work whose report arrived; expired entries are dropped and counted as reissues
        (re-sent past the duplicate window). Returns seconds until the earliest remaining deadline."""
        if not wl.in_flight:
            return None
        reports = self.reports_of(wl)
        earliest: float | None = None
        for cid, (exp, deadline) in list(wl.in_flight.items()):
            if expectation_met(exp, wl.by_name, reports):
                del wl.in_flight[cid]
                wl.reissues.pop(cid, None)
            elif deadline <= now:
                del wl.in_flight[cid]
                wl.reissues[cid] = wl.reissues.get(cid, 0) + 1
                log.info("node work %s was not taken up by its deadline; it is re-issued", cid)
            else:
                earliest = deadline - now if earliest is None else min(earliest, deadline - now)
        return earliest

    # --- planning --------------------------------------------------------------------------------
    async def plan_one(self, wl: Workload) -> float | None:
        assert wl.planner is not None and wl.obj is not None
        obj = wl.obj
        # Objects in name order: ties in Kruise's orderings then break the same way here, in a restarted
        # planner and in `kruisebus plan`, whatever order the state stream delivered them in.
        pods = sorted(wl.pods.values(), key=lambda p: p.metadata.name)
        owned = {token: sorted(objs.values(), key=lambda o: o.metadata.name) for token, objs in wl.owned.items()}
        for share in wl.planner.shared:
            owned[share.kind.token] = self.shared_view(share.kind.token)
        if wl.names_taken and CONTROLLER_REVISION in wl.planner.owned:
            owned[CONTROLLER_REVISION.token] = [*owned.get(CONTROLLER_REVISION.token, ()),
                                                *(taken_placeholder(n, obj.metadata.namespace) for n in
                                                  sorted(wl.names_taken))]
        claims = claims_of(wl.planner)
        if claims is not None:
            owned[ORPHAN_PODS] = sorted((p for p in self.orphans.values() if claims(obj, p)),
                                        key=lambda p: p.metadata.name)
        for spec in inputs_of(wl.planner):
            items = self.input_items[(wl.planner.kind.token, spec.token)].get(
                (obj.metadata.namespace, obj.metadata.name), {})
            owned[spec.token] = sorted(items.values(), key=spec.order)
        started = time.time_ns()
        limit = wl.next_create_limit()
        now = datetime.now(UTC)
        plan = wl.planner.plan(obj, pods, owned, wl.previous, now=now, gates=self.gates,
                               create_limit=limit)
        update_revision = plan.update_revision
        context = rollout_context(wl.uid, update_revision) if update_revision else None
        trace_id = rollout_trace_hex(wl.uid, update_revision) if update_revision else ""
        attributes: dict[str, str | int] = {
            K8S_NAMESPACE: obj.metadata.namespace, KB_WORKLOAD: obj.metadata.name, KB_WORKLOAD_UID: wl.uid,
            KB_REVISION: update_revision, "kruisebus.commands": len(plan.commands),
            "kruisebus.verbs": ",".join(sorted({c.verb for c in plan.commands})),
        }
        span = self.bus.tracer.start_span(f"plan {obj.metadata.namespace}/{obj.metadata.name}", context=context,
                                          attributes=attributes, start_time=started)
        if not self.owns(wl.uid):  # the partition's lease ran out while planning: another replica decides
            span.end()  # and nothing of this pass is remembered: not its spec, commands or expectations
            return None
        if plan.accepted:
            wl.previous = obj
        mono = time.monotonic()
        in_flight_in = self.settle_in_flight(wl, mono)
        # node work already taken up (or still queued before its deadline) is not sent again
        commands = [cmd for cmd in plan.commands if cmd.id not in wl.in_flight]
        if wl.reissues:  # forget the re-issue counts of node work this pass no longer decides
            planned = {cmd.id for cmd in plan.commands}
            wl.reissues = {cid: n for cid, n in wl.reissues.items() if cid in planned}
        sends, held_back, retry_in = self.sendable(wl, commands)
        wl.record_creates(limit, [cmd.pod for cmd, _ in sends if cmd.verb == VERB_CREATE and cmd.pod])
        deadline = mono + self.expectation_timeout
        # the commands are valid exactly as long as their expectations are waited for
        not_after = format_micro(now + timedelta(seconds=self.expectation_timeout))
        wl.expectations.extend((e, deadline) for e in plan.expectations
                               if e.pod not in held_back and not command_scoped(e))
        wl.revisions_expected.update((cmd.revision, deadline) for cmd, _ in sends
                                     if cmd.verb == VERB_REVISION_CREATE and cmd.revision)
        for i, (cmd, msg_id) in enumerate(sends):
            cmd.rollout_trace_id = trace_id
            if not cmd.node:
                cmd.not_after = cmd.not_after or not_after
            scoped = [e for e in cmd.expects if command_scoped(e)]
            if scoped:
                # node work decides its own not_after (a pull may wait minutes behind its node's queue)
                expires = parse_time(cmd.not_after) if cmd.not_after else None
                wait = (expires - now).total_seconds() if expires is not None else self.expectation_timeout
                due = max(0.0, wait) + self.report_grace
                wl.in_flight[cmd.id] = (scoped[0], mono + due)
                in_flight_in = due if in_flight_in is None else min(in_flight_in, due)
                if msg_id is None and (n := wl.reissues.get(cmd.id)):
                    sends[i] = (cmd, f"{cmd.id}{RETRY_SEP}e{n}")
        with trace.use_span(span, end_on_exit=True):
            # Pipelined: the commands go out in plan order and their acks are awaited together (one
            # round trip for the pass instead of one per command; a 1,000-pod pass took ~2 s serially).
            try:
                await _gather_bounded([self.bus.publish_command(cmd, msg_id=msg_id) for cmd, msg_id in sends])
            except BaseException:
                for cmd, _ in sends:  # maybe never sent: node work must not wait out its deadline
                    wl.in_flight.pop(cmd.id, None)
                raise
            await _gather_bounded([
                self.bus.publish_event(ev, msg_id=f"{wl.uid}:{ev.type}:{ev.command_id}:{ev.message}"[:250])
                for ev in plan.events])
        self.close_rollout(wl, plan.current_revision, update_revision)
        self.plans += 1  # counted once everything it decided is on the bus
        self.count_pass(wl, pods, update_revision, [cmd for cmd, _ in sends], started)
        waits = [w for w in (plan.requeue_after, retry_in, in_flight_in) if w is not None]
        return min(waits) if waits else None

    def count_pass(self, wl: Workload, pods: list[Pod], update_revision: str, sent: list[Command],
                   started_ns: int) -> None:
        """The pass's metrics: the pass itself, the commands it sent, the workload's pods by state."""
        assert wl.planner is not None
        token = wl.planner.kind.token
        metrics.PLANNER_PASSES.labels(token).inc()
        metrics.PLANNER_PASS_DURATION.labels(token).observe((time.time_ns() - started_ns) / 1e9)
        for cmd in sent:
            metrics.PLANNER_COMMANDS.labels(cmd.verb).inc()
        counts = {(updated, ready): 0 for updated in (True, False) for ready in (True, False)}
        for pod in pods:
            updated = bool(update_revision) and pod.metadata.labels.get(LABEL_REVISION_HASH) == update_revision
            counts[(updated, is_ready(pod))] += 1
        meta = wl.obj.metadata
        for (updated, ready), n in counts.items():
            metrics.WORKLOAD_PODS.labels(meta.namespace, meta.name, "updated" if updated else "outdated",
                                         "true" if ready else "false").set(n)

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
        retries a failed reconcile with the same kind of backoff. From its second rejection on, a
        decision waits out the backoff even on a newer view.
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
                version = wl.obj.metadata.resource_version if wl.obj is not None else ""
            msg_id = None
            rejected = self.rejected.get(cmd.id)
            if rejected is not None:
                count, when = rejected
                sent = self.sent.get(cmd.id)
                wait = when + min(RETRY_BACKOFF * 2 ** (count - 1), RETRY_BACKOFF_MAX) - now
                # a newer view lets a first rejection be re-sent at once (it was likely stale); after
                # that the backoff holds whatever the view: a command that always fails is not re-sent
                # on every change of its pod (a flood of status updates made a retry storm)
                same_view = sent is not None and sent[0] == version
                if wait > 0 and (same_view or count >= 2):
                    if cmd.pod:
                        held.add(cmd.pod)
                    retry_in = wait if retry_in is None else min(retry_in, wait)
                    metrics.PLANNER_RETRIES.labels(cmd.verb, "held").inc()
                    continue
                metrics.PLANNER_RETRIES.labels(cmd.verb, "sent").inc()
                msg_id = f"{cmd.id}{RETRY_SEP}{count}"
            self.sent[cmd.id] = (version, now, cmd.pod, wl.uid)
            out.append((cmd, msg_id))
        return out, held, retry_in

    def forget(self, now: float) -> None:
        """Drop what is remembered about commands older than the duplicate window (with margin)."""
        for memo in (self.rejected, self.sent):
            for cid in [k for k, entry in memo.items() if now - entry[1] > COMMAND_MEMORY]:
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
        rev = next((r for r in wl.owned_of(CONTROLLER_REVISION).values() if r.metadata.name == update), None)
        start = None
        if rev is not None and rev.metadata.creation_timestamp:
            start = int(datetime.fromisoformat(rev.metadata.creation_timestamp.replace("Z", "+00:00"))
                        .timestamp() * 1e9)
        meta = wl.obj.metadata
        if start is not None and wl.planner is not None:
            metrics.ROLLOUT_DURATION.labels(wl.planner.kind.token).observe(max(0.0, (time.time_ns() - start) / 1e9))
        root = start_rollout_root_span(
            wl.uid, update, name=f"rollout {meta.namespace}/{meta.name}",
            attributes={K8S_NAMESPACE: meta.namespace, KB_WORKLOAD: meta.name},
            start_time=start, tracer_provider=self.tracer_provider)
        root.end()

    async def recover_in_flight(self, uids: set[str] | None = None) -> int:
        """Take over the expectations of the commands still queued in KB_CMD and KB_NODE; returns how many.

        They were decided by an earlier planner (this one restarted) and not executed yet. Without
        their expectations this planner decides those slots again from a view that may have moved
        meanwhile, e.g. under another pod name because an instance id was freed in between, and both
        creates land: the surplus pods a chaos soak saw for ~20 s after planner restarts. The commands
        carry their expectations (`Command.expects`), so nothing has to be guessed from the verb.
        `uids`: only those workloads' commands (a partition taken over from another replica).
        """
        now, mono = datetime.now(UTC), time.monotonic()
        recovered = 0
        queued = [*await self.bus.stream_messages(STREAM_CMD), *await self.bus.stream_messages(STREAM_NODE)]
        for raw in queued:
            try:
                cmd = COMMAND_DECODER.decode(raw.data or b"")
            except UNDECODABLE:
                continue  # the executor rejects it; nothing to expect from it
            wl = self.workloads.get(cmd.workload_uid)
            if wl is None or (uids is not None and cmd.workload_uid not in uids):
                continue
            # as long as the command itself is valid (its predecessor's timeout), else a full timeout
            expires = parse_time(cmd.not_after) if cmd.not_after else None
            remaining = (expires - now).total_seconds() if expires is not None else self.expectation_timeout
            if remaining <= 0:
                continue  # the executor will drop it as stale; nothing to wait for
            deadline = mono + remaining
            wl.expectations.extend((e, deadline) for e in cmd.expects if not command_scoped(e))
            for e in cmd.expects:
                if command_scoped(e):
                    wl.in_flight[cmd.id] = (e, deadline + self.report_grace)
            if cmd.verb == VERB_REVISION_CREATE and cmd.revision:
                wl.revisions_expected[cmd.revision] = deadline
            recovered += 1
        if recovered:
            log.info("took over the expectations of %d queued commands", recovered)
        return recovered

    async def recall_rejections(self) -> None:
        """Take in the rejections of the last COMMAND_MEMORY seconds (once, at start).

        A restarted planner that did not know which of its predecessor's commands were rejected re-sent
        them under their old ids, which the duplicate window drops: the pod waited for an update that
        never came, for up to the window (a chaos soak saw 60 s stalls after planner SIGKILLs). Knowing
        them, it re-sends as `<id>@retry<n>`. The live watch of new rejections is already running, so
        one seen by both counts twice: the retry then gets the next number, which is harmless.
        """
        since = datetime.now(UTC) - timedelta(seconds=COMMAND_MEMORY)
        try:
            for event in await self.bus.read_since(self.bus.subjects.events_of_type(EVENT_REJECTED),
                                                   EVENT_DECODER, since):
                await self.on_event(event)
        finally:
            self.rejections_replayed.set()

    async def stream_lost(self, base: str, info: StreamInfo) -> None:
        """Tell the log of every workload this replica plans that a stream was lost under it (once per
        new stream: the msg id carries its creation time), and what that means for the rollout."""
        stream = self.bus.subjects.stream(base)
        what = {
            STREAM_EVENTS: f"the rollout log ({stream}) was lost and recreated: the events before this one are gone",
            STREAM_STATE: f"the state stream ({stream}) was lost: the watcher relists the cluster and planning "
                          "goes on from the API server's objects",
            STREAM_CMD: f"the command queue ({stream}) was lost with the commands in it: they are decided again "
                        f"once their expectations time out (at most {self.expectation_timeout:g}s)",
            STREAM_NODE: f"the node work queue ({stream}) was lost: node work is decided again once its "
                         f"expectations time out (at most {self.expectation_timeout:g}s)",
            STREAM_PROBE: f"the probe results ({stream}) were lost: the probers recreate the stream and publish "
                          "their current results again",
        }.get(base, f"stream {stream} was lost")
        created = info.created.isoformat() if info.created is not None else ""
        now = format_micro(datetime.now(UTC))
        for wl in list(self.workloads.values()):
            if wl.obj is None or not self.owns(wl.uid):
                continue
            meta = wl.obj.metadata
            event = RolloutEvent(type=EVENT_STREAM_LOST, namespace=meta.namespace, workload=meta.name,
                                 message=what, time=now, reason=base, data={"stream": stream, "created": created})
            with contextlib.suppress(Exception):  # best effort, as every report
                await self.bus.publish_event(event, msg_id=f"{EVENT_STREAM_LOST}@{stream}@{created}@{wl.uid}")

    async def sync_view(self) -> bool:
        """Pass the state barrier: ask the active watcher whether the state stream is current, then read
        it as far as the answer says; whether that happened within `state_sync_timeout`.

        The view is replayed from the stream, and the stream is only as current as the watcher that fills
        it. A planner SIGKILLed together with the watcher restarted on a stream that lacked its
        predecessor's last executed delete (the watcher died before publishing it; the expectation
        died with the planner): it counted that DaemonSet pod as still up and took a second node's pod
        down under maxUnavailable 1 (a chaos soak saw it for 0.28 s). The live watcher answers at once;
        a restarting one only once it has relisted, which tombstones what was deleted meanwhile. This
        is what waiting for an informer's cache to sync is to a Kubernetes controller.
        """
        if self.state_sync_timeout <= 0:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.state_sync_timeout
        subject = self.bus.subjects.state_sync()
        asked = 0
        while (left := deadline - loop.time()) > 0:
            asked += 1
            raw = await self.bus.ask(subject, b"", timeout=min(left, 5.0))
            if raw is None:  # no watcher (yet), or one still relisting: ask again
                await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
                continue
            try:
                synced = STATE_SYNCED_DECODER.decode(raw)
            except UNDECODABLE as err:
                log.warning("the answer on %s does not decode (%s); asking again", subject, err)
                await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
                continue
            while self.state_seq < synced.seq and (left := deadline - loop.time()) > 0:
                self.state_seen.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.state_seen.wait(), left)
            if self.state_seq >= synced.seq:
                log.info("the state stream is current (the watcher published through sequence %d; asked %d "
                         "times)", synced.seq, asked)
                return True
        log.warning("the state stream may be behind the cluster: no watcher answered that it is current within "
                    "%gs (%s); planning on it as it is", self.state_sync_timeout, subject)
        return False

    async def keep_view_current(self) -> None:
        """Pass the state barrier whenever one is wanted (`view_wanted`), then let passes run."""
        await self.replayed.wait()
        while True:
            await self.view_wanted.wait()
            self.view_wanted.clear()
            await self.sync_view()
            if not self.view_wanted.is_set():  # else another partition came meanwhile: its barrier first
                self.view_current.set()
                self.mark(self.workloads)

    async def run_loop(self) -> None:
        await self.replayed.wait()
        await self.rejections_replayed.wait()
        for replayed in self.inputs_replayed.values():
            await replayed.wait()
        await self.view_current.wait()
        self.recovered = await self.recover_in_flight()
        self.mark(self.workloads)
        while True:
            await self.wakeup.wait()
            await self.view_current.wait()
            self.wakeup.clear()
            batch, self.dirty = self.dirty, set()
            now = time.monotonic()
            for uid in batch:
                wl = self.workloads.get(uid)
                if wl is None or wl.obj is None or not self.owns(uid):
                    continue
                if wl.pending(now, self.shared_objects.get(POD.token)):
                    # re-check when the earliest expectation expires (one timer a workload, however
                    # often it is marked meanwhile; an earlier one armed stays)
                    earliest = min([d for _, d in wl.expectations] + list(wl.revisions_expected.values()))
                    self.wake_by(uid, earliest - now)
                    continue
                try:
                    async with self.acting:
                        requeue = await self.plan_one(wl)
                except Exception:  # a planner bug must not stop every other workload
                    log.exception("planning %s failed", uid)
                    requeue = 5.0
                self.requeue(uid, requeue)
                # A pass that sends nothing never suspends: without this, a batch of large passes would
                # keep the NATS client from reading its socket (the server drops a client that does not
                # read for its write deadline, 10 s).
                await asyncio.sleep(0)

    def requeue(self, uid: str, delay: float | None) -> None:
        """Plan `uid` again in `delay` seconds; replaces what an earlier pass asked for (None: the pass
        needs no timer; one armed before stays, at worst one pass more)."""
        if delay is None:
            return
        self._arm(uid, asyncio.get_running_loop().time() + max(0.05, delay))

    def wake_by(self, uid: str, delay: float) -> None:
        """Look at `uid` again in `delay` seconds at the latest (a timer armed sooner is kept)."""
        when = asyncio.get_running_loop().time() + max(0.05, delay)
        armed = self.timers.when(uid)
        if armed is None or when < armed:
            self._arm(uid, when)

    def _arm(self, uid: str, when: float) -> None:
        earliest = self.timers.next_due()
        self.timers.arm(uid, when)
        if earliest is None or when < earliest:
            self.timers_changed.set()

    async def run_timers(self) -> None:
        """Mark workloads dirty when their time comes."""
        loop = asyncio.get_running_loop()
        while True:
            due = self.timers.next_due()
            self.timers_changed.clear()
            if due is None or due > loop.time():
                timeout = None if due is None else due - loop.time()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.timers_changed.wait(), timeout)
            ready = self.timers.pop_due(loop.time())
            if ready:
                self.mark(ready)

    async def resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            self.forget(time.monotonic())
            self.mark(self.workloads)


async def run_planner(bus: Bus, *, gates: FeatureGates = DEFAULT_GATES, stop: asyncio.Event,
                      planner: Planner | None = None) -> None:
    """Plan until `stop` is set; then finish the pass in flight, stop planning, give the partitions up
    (`planner.claims`, claimed once the view is replayed) and stop watching."""
    planner = planner or Planner(bus, gates=gates)

    async def claim() -> None:
        if await replayed_or_stopped(stop, planner.replayed, planner.rejections_replayed) \
                and planner.claims is not None:
            await planner.claims.run(stop)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(bus.watch(bus.subjects.state_all(), decoder=STATE_DECODER, handler=planner.on_state,
                                 replayed=planner.replayed, stop=stop))
        tg.create_task(bus.watch(bus.subjects.events_of_type(EVENT_REJECTED), decoder=EVENT_DECODER,
                                 handler=planner.on_event, stop=stop, deliver_policy=DeliverPolicy.NEW))
        tg.create_task(planner.recall_rejections())
        for token, spec in planner.inputs:
            tg.create_task(bus.watch(spec.subject(bus.subjects), decoder=spec.decoder,
                                     handler=planner.input_handler(token, spec),
                                     replayed=planner.inputs_replayed[(token, spec.token)], stop=stop))
        # The planner owns the streams it writes (commands, node work, the rollout log): lost, it
        # recreates them with their old config; every loss it sees is reported on the workloads' logs.
        for base in (STREAM_CMD, STREAM_NODE, STREAM_EVENTS, STREAM_STATE, STREAM_PROBE):
            tg.create_task(bus.guard_stream(base, stop=stop, recreate=base in (STREAM_CMD, STREAM_NODE, STREAM_EVENTS),
                                            on_lost=planner.stream_lost))
        view_task = tg.create_task(planner.keep_view_current())
        loop_task = tg.create_task(planner.run_loop())
        resync_task = tg.create_task(planner.resync())
        timers_task = tg.create_task(planner.run_timers())
        if planner.claims is not None:
            tg.create_task(claim())
        await stop.wait()
        async with planner.acting:  # the pass in flight publishes what it decided
            loop_task.cancel()
            view_task.cancel()
            resync_task.cancel()
            timers_task.cancel()
