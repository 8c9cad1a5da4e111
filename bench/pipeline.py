"""Whole-pipeline benchmark: the pipeline targets (docs/benchmarks.md) with the real processes (Stack).

Run: .venv/bin/python -m bench.pipeline [--pods 1000] [--cold-pods 100000] [--only throughput,...]

NATS, the sim (`python -m sim`) and watcher, planner and executor run as separate processes, exactly as
`kruisebus up` starts them. The benchmark process itself watches the API server (pods) and subscribes
to `kb.cmd.>` on core NATS, so it sees every change and every command when they happen.

Scenarios:

* ``throughput`` - one CloneSet of ``--pods`` pods, InPlaceIfPossible, maxUnavailable 100%, image
  pull delay 0 (everything pre-pulled): change the image and time how long until every pod carries
  it (pod updates/s through watcher -> planner -> executor -> API server) and until every pod is
  Ready on it again.
* ``latency`` - event -> command: (a) under load, for every pod-state-driven command of the
  throughput and rollout scenarios (`lifecycle`, `inplace-refresh`: their ids end with the
  resourceVersion of the pod state they were decided on): command seen on NATS minus the
  benchmark's receipt of that pod's watch event at that resourceVersion (the benchmark's watch and
  the watcher's watch receive the same event from the API server at the same moment). (b) isolated:
  a settled small CloneSet scaled up/down by one, many times; `create`/`delete` command on NATS
  minus the moment the scale patch was sent.
* ``coldstart`` - publish the state of ``--cold-pods`` pods (one CloneSet, settled) into KB_STATE
  with the bus, then time a fresh planner (new connection, new `Planner`) until it has replayed the
  stream and finished its first planning pass.
* ``rollout`` - ``--pods`` pods, maxUnavailable 20%, ``--pull`` s image pull: in place with the new
  image pre-pulled on every node (`POST /sim/nodes/{node}/images`) vs ReCreate to an image that is
  not; compared with the lower bound ceil(100% / 20%) batches x container restart time. Run on 100
  pods per node (a node pulls an image once, so ReCreate mostly reuses cached images) and, as
  ``rollout-spread``, on one pod per node (every re-created pod pulls).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from nats.aio.client import Client as NATS

from schemas.kube import Pod
from schemas.messages import CLONESETS, COMMAND_DECODER, ENCODER, PODS, CloneSetState, PodState, RevisionState
from services.bus import state_msg_id
from services.kube import Kube, KubeError
from services.stack import Stack

NS = "default"
POD = msgspec.json.Decoder(Pod)
LIFECYCLE = "lifecycle.apps.kruise.io/state"
SECTION_BEGIN = "<!-- pipeline-bench:begin -->"
SECTION_END = "<!-- pipeline-bench:end -->"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def lat_summary(ms: list[float]) -> str:
    if not ms:
        return "no samples"
    return (f"n={len(ms)} p50 {pct(ms, 50):.1f} ms, p95 {pct(ms, 95):.1f} ms, p99 {pct(ms, 99):.1f} ms, "
            f"max {max(ms):.1f} ms")


def cloneset_body(name: str, replicas: int, image: str, *, max_unavailable: int | str, strategy: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1alpha1",
        "kind": "CloneSet",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": strategy, "maxUnavailable": max_unavailable},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "main", "image": image}]}},
        },
    }


def _ready(pod: Pod) -> bool:
    cond = pod.status.condition("Ready")
    return cond is not None and cond.status == "True"


def _on_image(pod: Pod, image: str) -> bool:
    """The pod runs `image` (spec and container status) and is Ready."""
    return (bool(pod.spec.containers) and all(c.image == image for c in pod.spec.containers)
            and bool(pod.status.container_statuses)
            and all(c.image == image for c in pod.status.container_statuses) and _ready(pod))


# --- observers -------------------------------------------------------------------------------------


@dataclass
class PodWatch:
    """The benchmark's own informer on pods: latest object and receipt times of every event."""

    kube: Kube
    pods: dict[str, Pod] = field(default_factory=dict)  # uid -> latest
    seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (pod name, resourceVersion) -> receipt
    listeners: list[Callable[[Pod, float, bool], None]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        items, rv = await self.kube.list(PODS)
        for raw in items:
            p = POD.decode(raw)
            self.pods[p.metadata.uid] = p
        while True:
            try:
                async for ev in self.kube.watch(PODS, rv, timeout_seconds=600):
                    now = time.monotonic()
                    if ev.type == "BOOKMARK":
                        continue
                    p = POD.decode(ev.object)
                    rv = p.metadata.resource_version or rv
                    deleted = ev.type == "DELETED"
                    if deleted:
                        self.pods.pop(p.metadata.uid, None)
                    else:
                        self.pods[p.metadata.uid] = p
                    self.seen.setdefault((p.metadata.name, p.metadata.resource_version), now)
                    for cb in self.listeners:
                        cb(p, now, deleted)
                    self.changed.set()
            except KubeError as e:  # relist on 410 and the like
                log(f"bench pod watch: {e}; relisting")
                items, rv = await self.kube.list(PODS)
                self.pods = {p.metadata.uid: p for p in map(POD.decode, items)}

    def owned(self, cs_uid: str) -> list[Pod]:
        out = []
        for p in self.pods.values():
            ref = p.metadata.controller_ref()
            if ref is not None and ref.uid == cs_uid and p.metadata.deletion_timestamp is None:
                out.append(p)
        return out

    async def wait(self, done: Callable[[], bool], timeout: float, what: str) -> float:
        """Wait until `done()` holds (re-checked on every pod event); returns the monotonic time."""
        deadline = time.monotonic() + timeout
        while not done():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
        return time.monotonic()


class _StateMeta(msgspec.Struct):
    name: str = ""
    resourceVersion: str = ""  # noqa: N815 - wire name


class _StateObj(msgspec.Struct):
    metadata: _StateMeta


class _StateMsg(msgspec.Struct):
    object: _StateObj


_STATE = msgspec.json.Decoder(_StateMsg)


@dataclass
class CmdTap:
    """Every command on `kb.cmd.>` and state message on `kb.state.>` (core NATS subscriptions: they
    see JetStream publishes as they land)."""

    records: list[tuple[float, str, str, str, str]] = field(default_factory=list)  # (t, verb, workload, pod, id)
    states: dict[tuple[str, str], float] = field(default_factory=dict)  # (name, resourceVersion) -> receipt

    async def start(self, url: str, prefix: str, credentials: tuple[str, str] | None = None) -> NATS:
        user, password = credentials or (None, None)
        nc = await nats.connect(url, name="bench-cmd-tap", user=user, password=password)

        async def on_msg(msg: Any) -> None:
            now = time.monotonic()
            try:
                cmd = COMMAND_DECODER.decode(msg.data)
            except msgspec.DecodeError:
                return
            self.records.append((now, cmd.verb, cmd.workload.name, cmd.pod, cmd.id))

        async def on_state(msg: Any) -> None:
            now = time.monotonic()
            with contextlib.suppress(msgspec.DecodeError):
                meta = _STATE.decode(msg.data).object.metadata
                self.states.setdefault((meta.name, meta.resourceVersion), now)

        await nc.subscribe(f"{prefix}.cmd.>", cb=on_msg)
        await nc.subscribe(f"{prefix}.state.>", cb=on_state)
        await nc.flush()
        return nc

    def since(self, t0: float, workload: str, verbs: set[str] | None = None
              ) -> list[tuple[float, str, str, str, str]]:
        return [r for r in self.records if r[0] >= t0 and r[2] == workload and (verbs is None or r[1] in verbs)]


def stage_latencies(tap: CmdTap, watch: PodWatch, t0: float, workload: str) -> tuple[list[float], list[float]]:
    """The event -> command latencies split at the state stream: (watch event -> state message on
    NATS, state message -> command), ms."""
    watcher, planner = [], []
    for t, _verb, _wl, pod, cid in tap.since(t0, workload, {"lifecycle", "inplace-refresh"}):
        key = (pod, cid.rsplit("/", 1)[-1])
        seen, state = watch.seen.get(key), tap.states.get(key)
        if seen is not None and state is not None:
            watcher.append((state - seen) * 1000)
            planner.append((t - state) * 1000)
    return watcher, planner


def event_latencies(tap: CmdTap, watch: PodWatch, t0: float, workload: str) -> list[float]:
    """ms from a pod's watch event to the command decided on it (under load).

    Pod-state-driven commands (`lifecycle`, `inplace-refresh`) carry the resourceVersion of the pod
    state they were decided on as the last token of their id: the event that made the decision
    possible is that pod's watch event at that resourceVersion, which the benchmark received at the
    same moment as the watcher.
    """
    out = []
    for t, _verb, _wl, pod, cid in tap.since(t0, workload, {"lifecycle", "inplace-refresh"}):
        seen = watch.seen.get((pod, cid.rsplit("/", 1)[-1]))
        if seen is not None and seen <= t:
            out.append((t - seen) * 1000)
    return out


# --- helpers on a running stack --------------------------------------------------------------------


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) used so far by each process of the stack and by this one."""
    pids: dict[str, int | None] = {name: p.pid for name, p in stack.procs.items()}
    pids["sim"] = stack.sim.pid if stack.sim else None
    pids["nats"] = stack.nats.proc.pid if stack.nats.proc else None
    pids["bench"] = os.getpid()
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in sorted(pids.items()):
        with contextlib.suppress(OSError, TypeError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float], wall: float) -> str:
    return ", ".join(f"{k} {(after[k] - before.get(k, 0)) / wall:.0%}" for k in after)


async def sim_json(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as resp:
        text = await resp.text()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {url}: {resp.status} {text[:200]}")
        return json.loads(text) if text else None


async def prepull(stack: Stack, image: str) -> float:
    t0 = time.monotonic()
    # one connection per node: each request is answered when its pull is done (aiohttp's default pool
    # of 100 connections made 1,000 nodes pull in ten waves)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        nodes = [f"sim-node-{i}" for i in range(stack.nodes)]
        await asyncio.gather(*(sim_json(s, "POST", f"{stack.sim_url}/sim/nodes/{n}/images", {"image": image})
                               for n in nodes))
        for n in nodes:  # check it is there
            listing = json.dumps(await sim_json(s, "GET", f"{stack.sim_url}/sim/nodes/{n}/images"))
            assert image in listing, (n, listing[:300])
    return time.monotonic() - t0


async def create_and_wait(kube: Kube, watch: PodWatch, name: str, replicas: int, image: str, *,
                          max_unavailable: int | str, strategy: str = "InPlaceIfPossible",
                          timeout: float = 300, tap: CmdTap | None = None) -> tuple[str, float]:
    """Create the CloneSet and wait until it has settled: every pod Ready on `image` with lifecycle
    state Normal, and (with `tap`) no command for it in the last 0.5 s."""
    t0 = time.monotonic()
    raw = await kube.create(CLONESETS, NS, cloneset_body(name, replicas, image, max_unavailable=max_unavailable,
                                                         strategy=strategy))
    uid = json.loads(raw)["metadata"]["uid"]
    await watch.wait(lambda: sum(_on_image(p, image) and p.metadata.labels.get(LIFECYCLE) == "Normal"
                                 for p in watch.owned(uid)) >= replicas, timeout,
                     f"{replicas} ready pods of {name}")
    took = time.monotonic() - t0
    deadline = time.monotonic() + timeout
    while tap is not None and tap.since(time.monotonic() - 0.5, name):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not settle")
        await asyncio.sleep(0.05)
    return uid, took


@dataclass
class RolloutResult:
    applied_s: float  # patch -> last pod carries the new image in its spec (or exists, for ReCreate)
    done_s: float  # patch -> every pod Ready on the new image
    first_cmd_ms: float
    refresh_ms: list[float]


async def rollout(kube: Kube, watch: PodWatch, tap: CmdTap, name: str, uid: str, replicas: int, image: str,
                  *, strategy: str | None = None, timeout: float = 600) -> RolloutResult:
    applied: set[str] = set()
    last_applied = [0.0]

    def on_pod(p: Pod, now: float, deleted: bool) -> None:
        ref = p.metadata.controller_ref()
        if deleted or ref is None or ref.uid != uid or p.metadata.uid in applied:
            return
        if p.spec.containers and p.spec.containers[0].image == image:
            applied.add(p.metadata.uid)
            last_applied[0] = now

    watch.listeners.append(on_pod)
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}
    if strategy:
        spec["updateStrategy"] = {"type": strategy}
    t0 = time.monotonic()
    await kube.patch(CLONESETS, NS, name, {"spec": spec}, "merge")
    try:
        await watch.wait(lambda: len(applied) >= replicas, timeout, f"{name}: {replicas} pods on {image} (spec)")
        t_done = await watch.wait(
            lambda: (lambda ps: len(ps) == replicas and all(_on_image(p, image) for p in ps))(watch.owned(uid)),
            timeout, f"{name}: {replicas} pods Ready on {image}")
    finally:
        watch.listeners.remove(on_pod)
    if os.environ.get("BENCH_DEBUG"):
        for r in [r for r in tap.records if r[0] >= t0][:30]:
            log(f"  +{(r[0] - t0) * 1000:7.1f} ms {r[1]} {r[3]} {r[4][-40:]}")
    cmds = tap.since(t0, name, {"update-in-place", "update-recreate", "delete", "create"})
    first = (min(c[0] for c in cmds) - t0) * 1000 if cmds else float("nan")
    if cmds:
        ts = sorted(c[0] - t0 for c in cmds)
        log(f"{name}: {len(ts)} update/create/delete commands on NATS from {ts[0]:.2f} s to {ts[-1]:.2f} s "
            f"(median {pct(ts, 50):.2f} s); last pod applied at {last_applied[0] - t0:.2f} s")
    w, p = stage_latencies(tap, watch, t0, name)
    log(f"{name}: watch event -> state on NATS {lat_summary(w)}; state -> command {lat_summary(p)}")
    return RolloutResult(last_applied[0] - t0, t_done - t0, first, event_latencies(tap, watch, t0, name))


async def isolated_latency(kube: Kube, watch: PodWatch, tap: CmdTap, samples: int) -> list[float]:
    """Scale a settled 5-pod CloneSet up and down by one; ms from sending the patch to the command."""
    name = "lat"
    uid, _ = await create_and_wait(kube, watch, name, 5, "img:v1", max_unavailable=1, tap=tap)
    out = []
    replicas = 5
    for i in range(samples):
        replicas = 6 if i % 2 == 0 else 5
        verb = "create" if replicas == 6 else "delete"
        # settled: replicas pods ready and no command in the last 50 ms (status writes done)
        t0 = time.monotonic()
        await kube.patch(CLONESETS, NS, name, {"spec": {"replicas": replicas}}, "merge")
        deadline = t0 + 10
        while not tap.since(t0, name, {verb}):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {verb} command within 10 s")
            await asyncio.sleep(0.001)
        out.append((tap.since(t0, name, {verb})[0][0] - t0) * 1000)
        def settled(n: int = replicas) -> bool:
            pods = watch.owned(uid)
            return len(pods) == n and all(_ready(p) for p in pods)

        await watch.wait(settled, 30, f"lat settled at {replicas}")
        while tap.since(time.monotonic() - 0.1, name):  # a quiet system for each sample: status writes done
            await asyncio.sleep(0.02)
    await kube.delete(CLONESETS, NS, name)
    return out


# --- scenarios -------------------------------------------------------------------------------------


def stack_for(args: argparse.Namespace, sim_args: tuple[str, ...], pods_per_node: int = 100) -> Stack:
    nodes = max(3, math.ceil(args.pods / pods_per_node))
    # the pipeline's own capacity is measured, so the executors' write rate limit (default 500/s) is off
    return Stack(nodes=nodes, sim_args=("--max-pods", "200", *sim_args), executors=args.executors,
                 env={"KRUISEBUS_LOG_LEVEL": "WARNING", "KRUISEBUS_KUBE_QPS": "0"})


async def with_stack(stack: Stack, body: Callable[[Stack, Kube, PodWatch, CmdTap], Any]) -> Any:
    async with stack:
        kube = await Kube.connect(stack.kubeconfig)
        watch = PodWatch(kube)
        tap = CmdTap()
        nc = await tap.start(stack.nats_url, stack.prefix, stack.nats.credentials("admin"))
        task = asyncio.create_task(watch.run())
        try:
            return await body(stack, kube, watch, tap)
        except BaseException:
            for name in ("watcher", "planner", "executor", "sim"):
                log(f"--- {name} log ---\n{stack.log_tail(name, 20)}")
            raise
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await nc.close()
            await kube.close()


async def scenario_throughput(args: argparse.Namespace) -> dict[str, Any]:
    n = args.pods
    stack = stack_for(args, ("--pull-delay", "0", "--start-delay", str(args.fast_start), "--stop-delay", "0"))

    async def body(stack: Stack, kube: Kube, watch: PodWatch, tap: CmdTap) -> dict[str, Any]:
        uid, created = await create_and_wait(kube, watch, "tp", n, "img:v1", max_unavailable="100%", tap=tap)
        log(f"throughput: {n} pods created and Ready in {created:.1f} s")
        cpu0, w0 = cpu_seconds(stack), time.monotonic()
        res = await rollout(kube, watch, tap, "tp", uid, n, "img:v2")
        cpu = cpu_delta(cpu0, cpu_seconds(stack), time.monotonic() - w0)
        log(f"throughput: CPU during the rollout (of one core): {cpu}")
        log(f"throughput: applied {res.applied_s:.2f} s, done {res.done_s:.2f} s, first command "
            f"{res.first_cmd_ms:.0f} ms; event->command {lat_summary(res.refresh_ms)}")
        iso = await isolated_latency(kube, watch, tap, args.latency_samples) if args.latency_samples else []
        log(f"isolated latency: {lat_summary(iso)}")
        return {"pods": n, "create_s": created, "applied_s": res.applied_s, "done_s": res.done_s,
                "first_cmd_ms": res.first_cmd_ms, "refresh_ms": res.refresh_ms, "isolated_ms": iso, "cpu": cpu}

    return dict(await with_stack(stack, body))


async def scenario_rollout(args: argparse.Namespace, pods_per_node: int = 100) -> dict[str, Any]:
    """In place vs ReCreate. A node pulls an image once, so with many pods per node only ReCreate's
    first batch pays the pull; with one pod per node (`pods_per_node=1`) every re-created pod lands on
    the node its predecessor left (the least-loaded one) and pulls there."""
    n = args.pods
    restart = args.start_delay + args.stop_delay
    stack = stack_for(args, ("--pull-delay", str(args.pull), "--start-delay", str(args.start_delay),
                             "--stop-delay", str(args.stop_delay)), pods_per_node=pods_per_node)

    async def body(stack: Stack, kube: Kube, watch: PodWatch, tap: CmdTap) -> dict[str, Any]:
        # create (pulls v1 once per node) while pre-pulling v2 on every node
        (uid, created), pulled = await asyncio.gather(
            create_and_wait(kube, watch, "ro", n, "img:v1", max_unavailable="20%", tap=tap), prepull(stack, "img:v2"))
        log(f"rollout: {n} pods Ready in {created:.1f} s; img:v2 pre-pulled on {stack.nodes} nodes in {pulled:.1f} s")
        cpu0, w0 = cpu_seconds(stack), time.monotonic()
        inplace = await rollout(kube, watch, tap, "ro", uid, n, "img:v2")
        cpu = cpu_delta(cpu0, cpu_seconds(stack), time.monotonic() - w0)
        log(f"rollout: CPU during the in-place rollout (of one core): {cpu}")
        log(f"rollout: in place {inplace.done_s:.2f} s (applied {inplace.applied_s:.2f} s); "
            f"event->command {lat_summary(inplace.refresh_ms)}")
        recreate = await rollout(kube, watch, tap, "ro", uid, n, "img:v3", strategy="ReCreate", timeout=1200)
        log(f"rollout: ReCreate {recreate.done_s:.2f} s")
        return {"pods": n, "nodes": stack.nodes, "batches": 5, "restart_s": restart, "pull_s": args.pull,
                "inplace_s": inplace.done_s, "recreate_s": recreate.done_s,
                "refresh_ms": inplace.refresh_ms, "first_cmd_ms": inplace.first_cmd_ms, "cpu": cpu}

    return dict(await with_stack(stack, body))


async def scenario_coldstart(args: argparse.Namespace) -> dict[str, Any]:
    from bench.planner_bench import build, pod_json
    from services.planner.service import Planner, run_planner

    n = args.cold_pods
    stack = Stack(nodes=1)
    await stack.start_nats()
    try:
        bus = await stack.connect(name="bench-cold-publisher")
        await bus.ensure_streams()
        view = build(n, rollout=False)
        cs = view.cloneset
        t0 = time.monotonic()
        events: list[Any] = [CloneSetState(object=cs), *(RevisionState(object=r) for r in view.revisions)]
        await asyncio.gather(*(bus.publish_state(e) for e in events))
        rev = view.revisions[0].metadata.name
        sem = asyncio.Semaphore(512)

        async def one(i: int) -> None:
            pod = POD.decode(pod_json(i, rev, "nginx:1.25"))
            ev = PodState(object=pod)
            async with sem:
                await bus.publish_raw(bus.state_subject(ev), ENCODER.encode(ev), {"Nats-Msg-Id": state_msg_id(ev)})

        chunk = 5000
        for start in range(0, n, chunk):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + chunk))))
        published = time.monotonic() - t0
        info = await bus.js.stream_info(bus.subjects.stream("STATE"))
        log(f"coldstart: published {info.state.messages} state messages ({info.state.bytes / 1e6:.0f} MB) "
            f"in {published:.1f} s")
        await bus.close()

        # the fresh planner, as `kruisebus planner` runs it (separate connection, nothing cached)
        t0 = time.monotonic()
        pbus = await stack.connect(name="bench-cold-planner")
        await pbus.ensure_streams()
        planner = Planner(pbus)
        stop = asyncio.Event()
        task = asyncio.create_task(run_planner(pbus, stop=stop, planner=planner))
        await asyncio.wait_for(planner.replayed.wait(), 600)
        t_replayed = time.monotonic() - t0
        deadline = time.monotonic() + 120
        while planner.plans < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("no planning pass after replay")
            await asyncio.sleep(0.005)
        t_planned = time.monotonic() - t0
        pods = sum(len(w.pods) for w in planner.workloads.values())
        log(f"coldstart: replayed {pods} pods in {t_replayed:.1f} s, first pass done at {t_planned:.1f} s")
        stop.set()
        await task
        await pbus.close()
        return {"pods": n, "tracked": pods, "publish_s": published, "replay_s": t_replayed, "plan_s": t_planned,
                "bytes": info.state.bytes}
    finally:
        await stack.cleanup()


# --- report ----------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(results: dict[str, Any], argv: list[str]) -> str:
    cmd = " ".join([".venv/bin/python -m bench.pipeline", *argv])
    lines = [SECTION_BEGIN, "", "## Pipeline", "",
             "The pipeline targets measured with the real processes: NATS, the sim "
             "(`python -m sim`, an HTTP API server with simulated kubelets) and the watcher, planner and "
             f"{results.get('executors', 1)} executor(s), each its own process (`services.stack.Stack`, as "
             "`kruisebus up`), plus the benchmark process (its own pod watch and `kb.cmd.>`/`kb.state.>` "
             "subscriptions), all on one machine.", "",
             f"Command: `{cmd}` (CPython {platform.python_version()}, {platform.machine()}, "
             f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d')}). One run; numbers move by ~10-20% between "
             "runs on this VM.", ""]
    rows = ["| what | target | measured | |", "|---|---|---|---|"]
    tp = results.get("throughput")
    if tp:
        rate = tp["pods"] / tp["applied_s"]
        rows.append(f"| whole pipeline: {tp['pods']:,}-pod in-place rollout, maxUnavailable 100%, pre-pulled | "
                    f">= 1,000 pod updates/s | {rate:,.0f} updates/s (all {tp['pods']:,} applied in "
                    f"{tp['applied_s']:.2f} s; all Ready again in {tp['done_s']:.2f} s) | {verdict(rate >= 1000)} |")
    for key, what in (("throughput", "the 100% rollout"), ("rollout", "the 20% in-place rollout")):
        lat = (results.get(key) or {}).get("refresh_ms", [])
        if lat:
            rows.append(f"| event -> command under load, {what} (pod watch event -> the `lifecycle`/"
                        f"`inplace-refresh` command decided on that pod state, on NATS) | p99 <= 50 ms | "
                        f"{lat_summary(lat)} | {verdict(pct(lat, 99) <= 50)} |")
    if tp and tp.get("isolated_ms"):
        iso = tp["isolated_ms"]
        rows.append(f"| event -> command, quiet system (scale patch sent -> `create`/`delete` on NATS) | "
                    f"p99 <= 50 ms | {lat_summary(iso)} | {verdict(pct(iso, 99) <= 50)} |")
    if tp:
        rows.append(f"| CloneSet image patch -> first update command ({tp['pods']:,} pods; includes the "
                    f"ControllerRevision create round trip) | (information) | {tp['first_cmd_ms']:.0f} ms | |")
    cs = results.get("coldstart")
    if cs:
        rows.append(f"| cold start: fresh planner replays {cs['pods']:,} pod states "
                    f"({cs['bytes'] / 1e6:.0f} MB in KB_STATE) | <= 30 s | replayed in {cs['replay_s']:.1f} s, "
                    f"first planning pass done at {cs['plan_s']:.1f} s | {verdict(cs['plan_s'] <= 30)} |")
    for key in ("rollout_spread", "rollout"):
        ro = results.get(key)
        if not ro:
            continue
        bound = ro["batches"] * ro["restart_s"]
        speedup = ro["recreate_s"] / ro["inplace_s"]
        ratio = ro["inplace_s"] / bound
        nodes = ro.get("nodes", max(3, math.ceil(ro["pods"] / 100)))
        where = (f"one pod per node ({nodes:,} nodes): every re-created pod pulls" if nodes >= ro["pods"] else
                 f"{nodes:,} nodes: a node pulls once, so only ReCreate's first batch waits for it")
        rows.append(f"| {ro['pods']:,} pods, maxUnavailable 20%, {ro['pull_s']:.0f} s image pull, {where}: "
                    f"in place (pre-pulled) vs ReCreate | >= 5x faster | in place {ro['inplace_s']:.1f} s, "
                    f"ReCreate {ro['recreate_s']:.1f} s: {speedup:.1f}x | {verdict(speedup >= 5)} |")
        rows.append(f"| the same in-place rollout vs its lower bound ({ro['batches']} batches x "
                    f"{ro['restart_s']:.2f} s restart = {bound:.2f} s) | <= 1.2x | {ratio:.2f}x | "
                    f"{verdict(ratio <= 1.2)} |")
    lines += rows
    lines += ["", SECTION_END]
    return "\n".join(lines)


def write_docs(text: str, path: Path, begin: str = SECTION_BEGIN, end: str = SECTION_END) -> None:
    """Replace the section between the `begin` and `end` markers of a doc (or append it)."""
    doc = path.read_text()
    if begin in doc:
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc = head + text + tail
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(doc)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only.split(",")) if args.only else {"throughput", "coldstart", "rollout", "rollout-spread"}
    results: dict[str, Any] = {"executors": args.executors}
    if "throughput" in only:
        results["throughput"] = await scenario_throughput(args)
    if "coldstart" in only:
        results["coldstart"] = await scenario_coldstart(args)
    if "rollout-spread" in only:
        results["rollout_spread"] = await scenario_rollout(args, pods_per_node=1)
    if "rollout" in only:
        results["rollout"] = await scenario_rollout(args)
    if "native" in only:  # on a real control plane: only when asked for
        from bench.native import scenario_native
        results["native"] = await scenario_native(args)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=1000, help="pods of the rollout scenarios")
    p.add_argument("--cold-pods", type=int, default=100_000, help="pods replayed by the cold-start scenario")
    p.add_argument("--pull", type=float, default=30.0, help="image pull seconds in the rollout scenario")
    p.add_argument("--start-delay", type=float, default=2.0, help="container start seconds (rollout scenario)")
    p.add_argument("--stop-delay", type=float, default=0.05, help="container stop seconds (rollout scenario)")
    p.add_argument("--fast-start", type=float, default=0.1, help="container start seconds (throughput scenario)")
    p.add_argument("--latency-samples", type=int, default=100, help="isolated event -> command samples")
    p.add_argument("--executors", type=int, default=2, help="executor processes (a pool on one work queue)")
    p.add_argument("--only", default="",
                   help="comma-separated: throughput,coldstart,rollout,rollout-spread (default: these), native")
    p.add_argument("--native-pods", type=int, default=40, help="pods per rollout (native scenario)")
    p.add_argument("--native-nodes", type=int, default=20, help="simulated nodes (native scenario)")
    p.add_argument("--native-pull", type=float, default=10.0, help="image pull seconds (native scenario)")
    p.add_argument("--native-start", type=float, default=1.0, help="container start seconds (native scenario)")
    p.add_argument("--native-runs", type=int, default=2, help="runs per kind, median reported (native scenario)")
    p.add_argument("--budget", default="25%", help="maxUnavailable of every workload (native scenario)")
    p.add_argument("--surge", default="25%", help="maxSurge of every workload (native scenario)")
    p.add_argument("--native-kinds", default="deployment,inplace,recreate", help="which rollouts (native scenario)")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    p.add_argument("--render", type=Path, default=None, help="only render the results saved with --json")
    p.add_argument("--write-docs", action="store_true", help="replace the Pipeline section of docs/benchmarks.md")
    args = p.parse_args(argv)
    if args.render:  # re-render the docs section from a saved --json
        saved = json.loads(args.render.read_text())
        results, shown = saved["results"], saved["argv"]
    else:
        results = asyncio.run(main_async(args))
        shown = []
        skip = False
        for a in argv:  # the command to reproduce: without the output options
            if skip:
                skip = False
            elif a in ("--json", "--render"):
                skip = True
            elif not a.startswith(("--json=", "--render=")):
                shown.append(a)
    docs = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
    native = results.pop("native", None)
    if set(results) - {"executors"}:
        text = render(results, shown)
        print(text)
        if args.write_docs:
            write_docs(text, docs)
    if native:
        from bench import native as nb
        text = nb.render(native, shown)
        print(text)
        if args.write_docs:
            write_docs(text, docs, nb.SECTION_BEGIN, nb.SECTION_END)
        results["native"] = native
    if args.json:
        args.json.write_text(json.dumps({"results": results, "argv": shown}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
