"""The prober of one node, or of several: PodProbeMarkers and the nodes' pods in, probe results on KB_PROBE out.

It follows KB_STATE (every PodProbeMarker, and the pods whose `spec.nodeName` is one of its nodes), computes
which marker probes run on which pod (`services.planner.podprobemarker.matching`, the rules the
planner counts `matchedPods` by; an invalid marker is never run) and keeps one worker per (pod,
probe), as kruise-daemon does (`pkg/daemon/podprobe/worker.go`): every `periodSeconds` (at least 1;
the first run after a random part of a period when the prober has just started) it looks at the
container, probes, applies the thresholds and hands the result to the result cache, which decides
whether it is published.

* A new container id resets the probe to `Unknown`, which is reported (the pod loses its markers while
  the container restarts); a container that is created but not started yet is not probed (the state
  stays `Unknown`); one that stopped is `Failed` "Container(<name>) is Non-running" at once.
* Nothing is probed until the container has run `initialDelaySeconds` (at least 1).
* A restarted prober (killed -9) first reads back what it published (KB_PROBE keeps the last result
  per subject): states, messages, report times and the container each was about, so the same
  container is not reset to Unknown and no state is reported twice or flaps.
* A worker whose pod left the node, whose probe left its marker, or whose marker was deleted stops;
  the new node's prober starts its own. Its result is retired from KB_PROBE (purged, once the worker
  has stopped) unless the pod went to another node, whose prober now owns the subject.
* After a restart, a result read back that no worker takes (the pod was deleted, or its probe left the
  marker, while the prober was down) is retired the same way, so KB_PROBE holds no stale result a
  restarted planner would turn into a marker.
* The probers own KB_PROBE (they write it): a prober that finds it lost (deleted, or replaced) recreates
  it with the config it last saw (`Bus.guard_stream`) and publishes the results its workers last
  reported again, unchanged, so the planner's markers stay right on the new stream.
* Several nodes in one process (`--node A --node B`, the sim's many nodes on one machine): one view of
  markers and pods for all of them, each pod probed through its own node's runtime, each result naming
  its pod's node, exactly as one prober per node would publish them. A node is served by one process.

Exec probes go through the runtime seam (`services.runtime`, `--runtime sim|cri`); tcpSocket and
httpGet connect from the prober to the pod's IP. Everything runs in one asyncio TaskGroup; a worker's failure is logged and the worker carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import aiohttp
from nats.aio.msg import Msg
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError

from schemas.constants import PROBE_FAILED, PROBE_UNKNOWN
from schemas.kinds import POD, PODPROBEMARKER
from schemas.kube import ContainerStatus, Pod
from schemas.messages import (
    PROBE_DECODER,
    STATE_DECODER,
    PodProbeMarkerState,
    PodState,
    ProbeResult,
    ProbeState,
    StateEvent,
)
from schemas.podprobemarker import PodProbeMarker
from schemas.subjects import STREAM_PROBE
from schemas.timefmt import parse_time
from services import metrics
from services.bus import Bus, replayed_or_stopped
from services.planner.podprobemarker.matching import PodProbe, pod_probes
from services.planner.podprobemarker.validation import validate_podprobemarker
from services.prober.handlers import ExecUnavailable, probe_exec, probe_http, probe_tcp
from services.prober.results import ResultCache, Target
from services.prober.thresholds import Thresholds
from services.runtime.base import ImageRuntime

log = logging.getLogger("kruisebus.prober")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def container_status(pod: Pod, name: str) -> ContainerStatus | None:
    return next((c for c in pod.status.container_statuses if c.name == name), None)


class Worker:
    """One probe on one pod."""

    def __init__(self, prober: Prober, spec: PodProbe, node: str, container_id: str = "") -> None:
        self.prober = prober
        self.spec = spec
        self.node = node  # the pod's (spec.nodeName cannot change)
        self.container_id = container_id
        self.thresholds = Thresholds(spec.probe.success_threshold, spec.probe.failure_threshold,
                                     state=prober.cache.last(spec.key) or PROBE_UNKNOWN)
        self.task: asyncio.Task[None] | None = None

    @property
    def period(self) -> float:
        return float(max(self.spec.probe.period_seconds, 1))

    def update(self, spec: PodProbe) -> None:
        """The marker changed this probe: a different handler starts over from Unknown (as Kruise)."""
        changed = (spec.probe.exec, spec.probe.http_get, spec.probe.tcp_socket) != \
            (self.spec.probe.exec, self.spec.probe.http_get, self.spec.probe.tcp_socket)
        self.spec = spec
        self.thresholds.success_threshold = spec.probe.success_threshold
        self.thresholds.failure_threshold = spec.probe.failure_threshold
        if changed and self.container_id:
            self.thresholds.reset()
            self.prober.spawn(self.report(PROBE_UNKNOWN, ""))

    async def run(self) -> None:
        if time.monotonic() - self.prober.started < self.period:
            await asyncio.sleep(random.random() * self.period)
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("probe %s on %s/%s failed", self.spec.name, self.spec.namespace, self.spec.pod)
            await asyncio.sleep(self.period)

    async def tick(self) -> None:
        spec = self.spec
        pod = self.prober.pods.get(spec.pod_uid)
        status = container_status(pod, spec.container) if pod is not None else None
        if status is None or not status.container_id:
            return
        if status.container_id != self.container_id:
            self.container_id = status.container_id
            self.thresholds.reset()
            await self.report(PROBE_UNKNOWN, "")
        state = status.state
        running = state is not None and state.running is not None
        if not running:
            await self.report(PROBE_FAILED, f"Container({spec.container}) is Non-running")
            return
        if not status.started:
            return  # created, not started yet: stays Unknown
        assert state is not None and state.running is not None
        started_at = parse_time(str(state.running.get("startedAt") or ""))
        now = self.prober.clock()
        delay = max(spec.probe.initial_delay_seconds, 1)
        if started_at is not None and (now - started_at).total_seconds() < delay:
            return
        try:
            result, message = await self.prober.attempt(spec, self.node)
        except ExecUnavailable as e:
            log.debug("probe %s on %s/%s: %s", spec.name, spec.namespace, spec.pod, e)
            return  # not a result: the state does not change
        metrics.PROBES.labels(self.node, "failed" if result == PROBE_FAILED else "succeeded").inc()
        if self.thresholds.observe(result):
            await self.report(result, message)

    @property
    def target(self) -> Target:
        spec = self.spec
        return Target(namespace=spec.namespace, pod=spec.pod, pod_uid=spec.pod_uid, probe=spec.name,
                      node=self.node, container_id=self.container_id)

    async def report(self, state: ProbeState, message: str) -> None:
        target = self.target
        result = self.prober.cache.set(target, state, message, self.prober.clock())
        if result is None:
            return
        try:
            await self.prober.publish(result)
        except Exception:
            self.prober.cache.forget(target.key)  # not reported after all: the next tick publishes it
            raise


class Prober:
    """The probes of the pods of `runtimes`' nodes (node name -> that node's container runtime)."""

    def __init__(self, bus: Bus, runtimes: Mapping[str, ImageRuntime], *,
                 clock: Callable[[], datetime] = _utcnow, cache: ResultCache | None = None) -> None:
        if not runtimes:
            raise ValueError("node: a prober needs at least one node")
        self.bus = bus
        self.runtimes = dict(runtimes)
        self.nodes = frozenset(self.runtimes)
        self.clock = clock
        self.cache = cache or ResultCache()
        self.started = time.monotonic()
        self.markers: dict[str, PodProbeMarker] = {}  # uid -> marker (valid or not)
        self._valid: dict[str, tuple[str, bool]] = {}  # uid -> (resourceVersion, valid)
        self.pods: dict[str, Pod] = {}  # uid -> pod on one of this prober's nodes
        self.pod_nodes: dict[str, str] = {}  # uid -> spec.nodeName of every pod (ours or not)
        self.workers: dict[tuple[str, str], Worker] = {}
        self.resumed: dict[tuple[str, str], str] = {}  # (pod uid, probe) -> container id last reported
        self._resumed_ns: dict[tuple[str, str], str] = {}  # (pod uid, probe) -> namespace, to retire it
        self.retired = 0  # results purged because no worker reports them any more
        self.published = 0
        self.replayed = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._http: aiohttp.ClientSession | None = None

    # --- results -----------------------------------------------------------------------------------
    async def resume(self) -> None:
        """Read back these nodes' last results (a restart must not reset or repeat them). Before the
        stream exists (the install's `nats-init` has not run yet) there is nothing to read back."""
        try:
            last = await self.bus.last_per_subject(self.bus.subjects.probe_all(), PROBE_DECODER)
        except NotFoundError:
            log.warning("stream %s does not exist yet: no probe results to resume", self.bus.subjects.stream(STREAM_PROBE))
            return
        for result in last.values():
            if result.node in self.nodes:
                self.cache.seed(result)
                self.resumed[(result.pod_uid, result.probe)] = result.container_id
                self._resumed_ns[(result.pod_uid, result.probe)] = result.namespace
        if self.resumed:
            log.info("resumed %d probe results of %s", len(self.resumed), self.names)

    @property
    def names(self) -> str:
        return ",".join(sorted(self.nodes))

    async def publish(self, result: ProbeResult) -> None:
        subject = self.bus.subjects.probe(result.namespace, result.pod_uid, result.probe)
        await self.bus.publish(subject, result, msg_id=f"{result.pod_uid}/{result.probe}/{result.time}")
        self.published += 1
        log.info("%s/%s %s: %s %s", result.namespace, result.pod, result.probe, result.state, result.message[:80])

    async def stream_lost(self, base: str, info: StreamInfo) -> None:
        """KB_PROBE was lost (and is back, recreated by a prober with the config it had): publish every
        result this prober's workers last reported again, as it was (its times unchanged), so the
        planner's view of the probes, and the markers it sets from it, stay right."""
        again = 0
        for worker in list(self.workers.values()):
            result = self.cache.current(worker.target)
            if result is None:
                continue
            try:
                await self.publish(result)
                again += 1
            except Exception as e:  # the next change or the periodic re-report sends it
                self.cache.forget(worker.spec.key)
                log.warning("could not publish %s of %s/%s again: %r", result.probe, result.namespace,
                            result.pod, e)
        log.warning("stream %s was lost: published %d probe results of %s again", info.config.name, again,
                    self.names)

    async def forget_pod(self, pod: Pod) -> None:
        """A pod of this node is gone: its results leave KB_PROBE (nobody will read them again)."""
        try:
            await self.bus.purge(self.bus.subjects.probes_of_pod(pod.metadata.namespace, pod.metadata.uid))
        except Exception as e:  # best effort: a stale result names a pod uid that no longer exists
            log.warning("could not purge the results of %s/%s: %s", pod.metadata.namespace, pod.metadata.name, e)

    async def retire(self, namespace: str, key: tuple[str, str], worker: Worker | None = None) -> None:
        """One result no worker reports any more leaves KB_PROBE (after `worker` has stopped, so a
        publish it had in flight cannot land after the purge; not if a new worker took the key since)."""
        if worker is not None and worker.task is not None:
            await asyncio.wait([worker.task])
        if key in self.workers:
            return
        try:
            await self.bus.purge(self.bus.subjects.probe(namespace, key[0], key[1]))
            self.retired += 1
        except Exception as e:  # best effort, as forget_pod
            log.warning("could not retire the result %s of pod %s/%s: %s", key[1], namespace, key[0], e)

    def retire_unclaimed(self) -> None:
        """After the first reconcile: the results read back that no worker took are stale."""
        gone_pods: dict[str, str] = {}
        for key in list(self.resumed):
            uid, namespace = key[0], self._resumed_ns.get(key, "")
            node = self.pod_nodes.get(uid)
            self.cache.forget(key)
            if node is None:
                gone_pods[uid] = namespace  # deleted while the prober was down
            elif node in self.nodes:
                self.spawn(self.retire(namespace, key))  # its probe left the marker / it is not matched
            # else the pod is another node's: that node's prober owns (and overwrites) the subject
        for uid, namespace in gone_pods.items():
            log.info("retiring the results of pod %s/%s, deleted while the prober was down", namespace, uid)
            self.spawn(self._purge_pod(namespace, uid))
        if self.resumed:
            log.info("%d results read back are no longer probed (%d pods gone)", len(self.resumed), len(gone_pods))
        self.resumed.clear()
        self._resumed_ns.clear()

    async def _purge_pod(self, namespace: str, uid: str) -> None:
        try:
            await self.bus.purge(self.bus.subjects.probes_of_pod(namespace, uid))
            self.retired += 1
        except Exception as e:
            log.warning("could not purge the results of %s/%s: %s", namespace, uid, e)

    async def attempt(self, spec: PodProbe, node: str) -> tuple[ProbeState, str]:
        if spec.probe.exec is not None:
            return await probe_exec(self.runtimes[node], spec)
        if spec.probe.tcp_socket is not None:
            return await probe_tcp(spec)
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        return await probe_http(self._http, spec)

    # --- view --------------------------------------------------------------------------------------
    def _is_valid(self, ppm: PodProbeMarker) -> bool:
        meta = ppm.metadata
        known = self._valid.get(meta.uid)
        if known is None or known[0] != meta.resource_version:
            known = self._valid[meta.uid] = (meta.resource_version, not validate_podprobemarker(ppm))
        return known[1]

    def valid_markers(self) -> list[PodProbeMarker]:
        return sorted((m for m in self.markers.values() if self._is_valid(m)), key=lambda m: m.metadata.name)

    async def on_state(self, event: StateEvent, msg: Msg | None = None) -> None:
        obj = event.object
        if isinstance(event, PodProbeMarkerState):
            if event.deleted:
                self.markers.pop(obj.metadata.uid, None)
                self._valid.pop(obj.metadata.uid, None)
            else:
                self.markers[obj.metadata.uid] = event.object
            if self.replayed.is_set():
                self.reconcile()
        elif isinstance(event, PodState):
            pod = event.object
            uid = pod.metadata.uid
            if event.deleted:
                self.pod_nodes.pop(uid, None)
            else:
                self.pod_nodes[uid] = pod.spec.node_name
            if event.deleted or pod.spec.node_name not in self.nodes:
                if self.pods.pop(uid, None) is None:
                    return
                if event.deleted and self.replayed.is_set():
                    self.spawn(self.forget_pod(pod))
            else:
                self.pods[uid] = pod
            if self.replayed.is_set():
                self.reconcile([uid])

    def reconcile(self, pod_uids: list[str] | None = None) -> None:
        """Start, update and stop workers to match the markers and pods (all pods, or `pod_uids`)."""
        markers = self.valid_markers()
        uids = list(self.pods) if pod_uids is None else pod_uids
        scope = set(uids)
        desired: dict[tuple[str, str], PodProbe] = {}
        for uid in uids:
            pod = self.pods.get(uid)
            if pod is not None:
                desired.update((p.key, p) for p in pod_probes(markers, pod))
        for key in [k for k in self.workers if (pod_uids is None or k[0] in scope) and k not in desired]:
            gone = self.workers.pop(key)
            if gone.task is not None:
                gone.task.cancel()
            self.cache.forget(key)
            if key[0] in self.pods:  # still ours, the probe no longer runs on it (a deleted pod is purged whole)
                self.spawn(self.retire(gone.spec.namespace, key, gone))
        for key, spec in desired.items():
            existing = self.workers.get(key)
            if existing is None:
                node = self.pods[key[0]].spec.node_name
                worker = self.workers[key] = Worker(self, spec, node, self.resumed.pop(key, ""))
                worker.task = self.spawn(worker.run())
            elif existing.spec != spec:
                existing.update(spec)

    def spawn(self, coro: object) -> asyncio.Task[None]:
        assert self._tg is not None
        return self._tg.create_task(coro)  # type: ignore[arg-type]

    async def run(self, stop: asyncio.Event) -> None:
        await self.resume()
        markers_replayed, pods_replayed = asyncio.Event(), asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self.bus.watch(self.bus.subjects.state_of_kind(PODPROBEMARKER.token),
                                              decoder=STATE_DECODER, handler=self.on_state,
                                              replayed=markers_replayed, stop=stop))
                tg.create_task(self.bus.watch(self.bus.subjects.state_of_kind(POD.token), decoder=STATE_DECODER,
                                              handler=self.on_state, replayed=pods_replayed, stop=stop))
                if not await replayed_or_stopped(stop, markers_replayed, pods_replayed):
                    return  # stopped while starting: the watches end on `stop` too
                self.replayed.set()
                self.reconcile()
                self.retire_unclaimed()
                # the probers write KB_PROBE, so they own it: lost, it is recreated with the config it had
                tg.create_task(self.bus.guard_stream(STREAM_PROBE, stop=stop, recreate=True,
                                                     on_lost=self.stream_lost))
                log.info("prober of %s: %d markers, %d pods, %d probes", self.names, len(self.markers),
                         len(self.pods), len(self.workers))
                await stop.wait()
                for worker in self.workers.values():
                    if worker.task is not None:
                        worker.task.cancel()
        finally:
            self._tg = None
            if self._http is not None:
                with contextlib.suppress(Exception):
                    await self._http.close()
            for runtime in self.runtimes.values():
                with contextlib.suppress(Exception):
                    await runtime.close()


async def run_prober(bus: Bus, runtimes: Mapping[str, ImageRuntime], *, stop: asyncio.Event) -> None:
    """Probe the pods of `runtimes`' nodes (one node, or several in one process) until `stop`."""
    await Prober(bus, runtimes).run(stop)


__all__ = ["Prober", "Worker", "container_status", "run_prober"]
