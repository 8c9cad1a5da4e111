"""The chaos soak: continuous rollouts while the watcher, planner, executor and NATS are SIGKILLed.

Run: .venv/bin/python -m bench.chaos --rounds 200 --seed 1 [--json results.json] [--write-docs]

NATS, the sim (`python -m sim`, real HTTP) and every service run as processes (`services.stack.Stack`).
Several CloneSets (in place, ReCreate, ReCreate with maxSurge, in place with a partition) roll out
continuously, and so do one Advanced DaemonSet (a rolling update with maxUnavailable 1 and a
partition, over the sim's nodes) and one SidecarSet (a sidecar image upgrade with maxUnavailable 1,
over pods of its own that the webhook injects at creation). With ``--probe-pods N`` a PodProbeMarker
probes N pods of its own (an exec probe through the node-local `prober` process) whose outcomes the
soak flips every round on the sim's runtime; with ``--pull-jobs N`` every round creates N ImagePullJobs
for the round's new CloneSet images, pulled on every node by the node agents (`agent`). The prober and
the agent are then kill targets too. A *round* is a chaos window: one or more template (image) changes of every workload at random moments,
SIGKILLs of random processes (each restarted after a random downtime; NATS on the same port and
store; with ``--pairs P`` a kill takes a second process down within 0.2 s with chance P) and, with ``--api-faults``, injected API errors and cut watch streams on the sim. After the
window every fault is off and the round must *settle*: every workload converged (see
`services.chaoscheck.Rules.convergence`) within ``--settle-timeout``. The time from the end of the
window to convergence is the round's settle time (markers and pull jobs included: every probed pod
shows its current outcome, every pull job finished on every node). Throughout, `services.chaoscheck` watches only the
API and records every invariant violation.

The same driver backs `tests/e2e/test_chaos_soak.py` (a few minutes, small CloneSets); this command
is the long run whose figures are in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.pipeline import pct, sim_json, write_docs
from schemas.constants import (
    ANNOTATION_DELETION_COST,
    ANNOTATION_SIDECARSET_INJECTED_LIST,
    PROBE_FAILED,
    PROBE_SUCCEEDED,
)
from schemas.imagepulljob import ImagePullJob
from schemas.kube import Node, Pod
from schemas.messages import (
    CLONESETS,
    DAEMONSETS,
    IMAGE_PULL_JOBS,
    NAMESPACES,
    NODE_IMAGES,
    NODES,
    PODPROBEMARKERS,
    PODS,
    SIDECARSETS,
    Resource,
)
from schemas.podprobemarker import PodProbeMarker
from services.chaoscheck import (
    NOT_CONVERGED,
    RULES,
    ApiChecker,
    Checker,
    ProbeOutcome,
    describe_pod,
    marker_problems,
    pull_job_problems,
    workload_name,
)
from services.errors import KubeConflict, KubeError
from services.kube import Kube
from services.observe import poll
from services.planner.kit.selectors import matches
from services.stack import AGENT, SERVICES, Stack

NS = "default"
NATS = "nats"
TARGETS = (*SERVICES, NATS)
SECTION_BEGIN = "<!-- chaos-bench:begin -->"
SECTION_END = "<!-- chaos-bench:end -->"
_POD = msgspec.json.Decoder(Pod)
_NODE = msgspec.json.Decoder(Node)
DAEMONSET = "daemon"
SIDECARSET = "sidecar"
SIDECAR = "log-agent"
SIDECAR_LABEL = {"sidecar": "soak"}
KRUISE_NS = "kruise-system"  # where SidecarSet revisions live
MARKER = "probed"
PROBE = "Idle"
IDLE = "soak-idle"
BUSY = "soak.kruisebus.io/busy"
CONDITION = "soak.kruisebus.io/idle"
_PPM = msgspec.json.Decoder(PodProbeMarker)
_JOB = msgspec.json.Decoder(ImagePullJob)
PULL_GATES = {"KRUISEBUS_FEATURE_GATES": "ImagePullJobGate=true"}


def daemonset_body(image: str, partition: int) -> dict[str, Any]:
    """The soak's DaemonSet: a rolling update with maxUnavailable 1 and a partition, on every node."""
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet",
            "metadata": {"name": DAEMONSET, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": DAEMONSET}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
                         "maxUnavailable": 1, "partition": partition}},
                     "template": {"metadata": {"labels": {"app": DAEMONSET}},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}}}


def sidecarset_body(image: str) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": SIDECARSET},
            "spec": {"selector": {"matchLabels": SIDECAR_LABEL},
                     "containers": [{"name": SIDECAR, "image": image}],
                     "updateStrategy": {"type": "RollingUpdate", "maxUnavailable": 1}}}


def sidecar_pod(name: str) -> dict[str, Any]:
    """A pod the SidecarSet matches and nothing owns (as a Deployment's would be: the sim runs no
    ReplicaSet controller)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": SIDECARSET, **SIDECAR_LABEL}},
            "spec": {"containers": [{"name": "main", "image": "app:v1"}]}}


def probed_pod(name: str) -> dict[str, Any]:
    """A pod of the PodProbeMarker's, nothing owns it (its probe outcome is the soak's to flip)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": MARKER}},
            "spec": {"containers": [{"name": "main", "image": "app:v1"}]}}


def marker_body() -> dict[str, Any]:
    """An exec probe every second (thresholds 1), whose two states set different keys: a stale marker of
    the previous state is visible as a key that should be gone, not only as a value."""
    timing = {"initialDelaySeconds": 1, "periodSeconds": 1, "timeoutSeconds": 1, "successThreshold": 1,
              "failureThreshold": 1}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "PodProbeMarker",
            "metadata": {"name": MARKER, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": MARKER}}, "probes": [
                {"name": PROBE, "containerName": "main", "probe": {"exec": {"command": ["/idle.sh"]}, **timing},
                 "markerPolicy": [
                     {"state": PROBE_SUCCEEDED, "labels": {IDLE: "true"}, "annotations": {ANNOTATION_DELETION_COST: "-10"}},
                     {"state": PROBE_FAILED, "labels": {IDLE: "false"},
                      "annotations": {ANNOTATION_DELETION_COST: "10", BUSY: "true"}}],
                 "podConditionType": CONDITION}]}}


def pull_job_body(name: str, image: str) -> dict[str, Any]:
    """Every node (no selector), two at a time, finished once all pulled (Always)."""
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"image": image, "parallelism": 2, "completionPolicy": {"type": "Always"},
                     "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 3}}}


@dataclass(frozen=True)
class Workload:
    """One CloneSet of the soak."""

    name: str
    replicas: int
    strategy: str
    max_unavailable: int | str | None = None
    max_surge: int | str | None = None
    partition: int | str | None = None

    def body(self, image: str) -> dict[str, Any]:
        strategy: dict[str, Any] = {"type": self.strategy}
        for key, value in (("maxUnavailable", self.max_unavailable), ("maxSurge", self.max_surge),
                           ("partition", self.partition)):
            if value is not None:
                strategy[key] = value
        return {
            "apiVersion": "apps.kruise.io/v1alpha1",
            "kind": "CloneSet",
            "metadata": {"name": self.name, "namespace": NS, "labels": {"app": self.name}},
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {"app": self.name}},
                "updateStrategy": strategy,
                "template": {"metadata": {"labels": {"app": self.name}},
                             "spec": {"containers": [{"name": "main", "image": image}]}},
            },
        }


def workloads(sizes: tuple[int, ...]) -> tuple[Workload, ...]:
    """The soak's CloneSets, one per size (cycling through four kinds of rollout)."""
    kinds = (
        lambda n, r: Workload(n, r, "InPlaceIfPossible", max_unavailable="20%"),
        lambda n, r: Workload(n, r, "ReCreate", max_unavailable=2),
        lambda n, r: Workload(n, r, "ReCreate", max_unavailable=0, max_surge="10%"),
        lambda n, r: Workload(n, r, "InPlaceIfPossible", max_unavailable=1, partition="30%"),
    )
    names = ("inplace", "recreate", "surge", "partition")
    return tuple(kinds[i % 4](f"{names[i % 4]}{'' if i < 4 else i // 4 + 1}", r) for i, r in enumerate(sizes))


@dataclass
class SoakConfig:
    rounds: int = 20
    seed: int = 1
    sizes: tuple[int, ...] = (22, 33, 50, 20)
    nodes: int = 10
    window: float = 4.0  # seconds of chaos per round
    changes: tuple[int, int] = (1, 3)  # template changes per round (inclusive range)
    kills: float = 1.1  # mean SIGKILLs per round
    pairs: float = 0.0  # chance that a kill takes a second process down with it (within 0.2 s)
    downtime: tuple[float, float] = (0.0, 2.0)  # seconds a killed process stays down
    targets: tuple[str, ...] | None = None  # None: the pipeline, NATS, and the prober/agent when they run
    api_faults: bool = False
    settle_timeout: float = 60.0
    max_seconds: float | None = None  # stop starting rounds after this long
    give_up_after: int = 3  # consecutive rounds that do not converge before the soak stops
    executors: int = 1
    sim_args: tuple[str, ...] = ("--pull-delay", "0.05", "--start-delay", "0.2", "--stop-delay", "0.3")
    daemonset_partition: int | None = 1  # None: no DaemonSet
    sidecar_pods: int = 4  # pods of the SidecarSet (0: no SidecarSet)
    probe_pods: int = 0  # pods of the PodProbeMarker (0: no marker, no prober)
    probe_flip: float = 0.5  # chance that a probed pod's outcome flips in a round
    pull_jobs: int = 0  # ImagePullJobs created per round (0: none, no node agents)

    def kill_targets(self, probers: tuple[str, ...] = ()) -> tuple[str, ...]:
        if self.targets is not None:
            return self.targets
        return (*TARGETS, *((AGENT,) if self.pull_jobs else ()), *(probers if self.probe_pods else ()))


@dataclass
class RoundResult:
    index: int
    actions: list[str]
    settle_s: float | None  # None: did not converge
    wall_s: float
    violations: int


@dataclass
class SoakResult:
    config: dict[str, Any]
    rounds: list[RoundResult] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    probe_flips: int = 0  # probe outcomes the soak changed
    pull_jobs: int = 0  # ImagePullJobs created
    exits: Counter[str] = field(default_factory=Counter)  # processes that exited on their own (restarted)
    violations: dict[str, int] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    final_converged: bool = False
    final_problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    def settle_times(self) -> list[float]:
        return [r.settle_s for r in self.rounds if r.settle_s is not None]

    def summary(self) -> dict[str, Any]:
        settle = self.settle_times()
        slowest = max(self.rounds, key=lambda r: float("inf") if r.settle_s is None else r.settle_s,
                      default=None)
        return {
            "rounds": len(self.rounds),
            "wall_s": round(self.wall_s, 1),
            "round_wall_s_mean": round(sum(r.wall_s for r in self.rounds) / max(len(self.rounds), 1), 2),
            "kills": dict(sorted(self.kills.items())),
            "exits": dict(sorted(self.exits.items())),
            "violations": {k: v for k, v in self.violations.items() if v},
            "converged_rounds": len(settle),
            "settle_s": {"p50": pct(settle, 50), "p99": pct(settle, 99), "max": max(settle, default=float("nan"))},
            "slowest_round": asdict(slowest) if slowest else None,
            "final_converged": self.final_converged,
            "probe_flips": self.probe_flips,
            "pull_jobs": self.pull_jobs,
        }

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "config": self.config, "rounds": [asdict(r) for r in self.rounds],
                "evidence": self.evidence, "final_problems": self.final_problems}


class Soak:
    """One soak run on its own stack (see the module docstring)."""

    def __init__(self, cfg: SoakConfig, workdir: Path | None = None,
                 on_round: Callable[[RoundResult, SoakResult], None] | None = None) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        service_args: dict[str, tuple[str, ...]] = {}
        if cfg.sidecar_pods:
            service_args["webhook"] = ("--pod-hook",)
        if cfg.pull_jobs:  # a NodeImage per node at once, not after 30 s Ready
            service_args["planner"] = ("--nodeimage-creation-delay", "0")
        self.stack = Stack(nodes=cfg.nodes, workdir=workdir, sim_args=cfg.sim_args, executors=cfg.executors,
                           service_args=service_args, env=PULL_GATES if cfg.pull_jobs else None,
                           node_agents=bool(cfg.pull_jobs), probers=bool(cfg.probe_pods), prober_processes=1)
        self.targets = cfg.kill_targets(tuple(self.stack.prober_groups))
        # pod name -> probe -> what it answers now (what the soak last set on the runtime)
        self.outcomes: dict[str, dict[str, ProbeOutcome]] = {}
        self.job_images: set[str] = set()
        self.lagging: set[str] = set()  # what a settle still waited for once the watched workloads converged
        self.workloads = workloads(cfg.sizes)
        self.result = SoakResult(config={**asdict(cfg), "workloads": [asdict(w) for w in self.workloads]})
        self.on_round = on_round
        self.kube: Kube | None = None
        self.api: ApiChecker | None = None
        self.image_no = 0
        self.round = 0  # the round being run (0: creating the CloneSets)
        self.down: set[str] = set()
        self.journal = open(self.stack.workdir / "soak.log", "a")  # noqa: SIM115 - closed in run()

    @property
    def checker(self) -> Checker:
        assert self.api is not None
        return self.api.checker

    def note(self, msg: str) -> str:
        line = f"t={self.checker.now():8.2f}s {msg}" if self.api else msg
        self.journal.write(line + "\n")
        self.journal.flush()
        return line

    # --- faults

    async def kill(self, target: str) -> None:
        self.result.kills[target] += 1
        self.down.add(target)
        if target == NATS:
            await asyncio.to_thread(self.stack.nats.kill)
        else:
            await self.stack.kill(target)

    async def revive(self, target: str) -> None:
        if target == NATS:
            await self.stack.start_nats()  # same port and store
        else:
            await self.stack.start_service(target)
        self.down.discard(target)

    async def api_faults(self, on: bool) -> None:
        body: dict[str, Any] = {"error_rate": {"create": 0.05, "patch": 0.05, "delete": 0.05},
                                "error_codes": [409, 429, 500], "watch_cut_after_seconds": 3.0,
                                "seed": self.rng.randrange(2**31)}
        async with aiohttp.ClientSession() as s:
            await sim_json(s, "POST" if on else "DELETE", f"{self.stack.sim_url}/sim/faults", body if on else None)

    async def patch(self, res: Resource, ns: str | None, name: str, patch: dict[str, Any]) -> None:
        assert self.kube is not None
        for attempt in range(20):  # injected 409s and 500s are the faults, not a reason to stop
            try:
                await self.kube.patch(res, ns, name, patch, "merge")
                return
            except KubeError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.05)  # retry backoff

    def next_image(self, repo: str = "img") -> str:
        self.image_no += 1
        return f"{repo}:v{self.image_no}"

    async def change_template(self, w: Workload) -> str:
        image = self.next_image()
        await self.patch(CLONESETS, NS, w.name, {"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": image}]}}}})
        return image

    async def change_all(self) -> list[str]:
        """One template change of every workload: the CloneSets', the DaemonSet's, the sidecar's image."""
        images = [await self.change_template(w) for w in self.workloads]
        if self.cfg.daemonset_partition is not None:
            image = self.next_image()
            await self.patch(DAEMONSETS, NS, DAEMONSET, {"spec": {"template": {"spec": {"containers": [
                {"name": "main", "image": image}]}}}})
            images.append(image)
        if self.cfg.sidecar_pods:
            image = self.next_image(SIDECAR)
            await self.patch(SIDECARSETS, None, SIDECARSET, {"spec": {"containers": [
                {"name": SIDECAR, "image": image}]}})
            images.append(image)
        return images

    async def create_sidecar_pods(self) -> None:
        """The SidecarSet's pods, each injected at creation: one the webhook admitted before it saw the
        SidecarSet has no sidecar, and is replaced (polled, not slept: the webhook's view is a watch)."""
        assert self.kube is not None
        kube = self.kube
        attempt = 0

        async def one(i: int) -> bool:
            nonlocal attempt
            attempt += 1
            name = f"{SIDECARSET}-{i}-{attempt}"
            pod = _POD.decode(await kube.create(PODS, NS, sidecar_pod(name)))
            if SIDECARSET in pod.metadata.annotations.get(ANNOTATION_SIDECARSET_INJECTED_LIST, "").split(","):
                return True
            await kube.delete(PODS, NS, name)
            return False

        for i in range(self.cfg.sidecar_pods):
            await poll(lambda i=i: one(i), bool, timeout=30, interval=0.2,  # type: ignore[misc]
                       what=f"sidecar pod {i} injected by the webhook")

    async def create(self, res: Resource, ns: str | None, body: dict[str, Any]) -> None:
        """Create through injected faults: a retry that finds the object already there is done."""
        assert self.kube is not None
        for attempt in range(20):
            try:
                await self.kube.create(res, ns, body)
                return
            except KubeError as e:
                if isinstance(e, KubeConflict) and e.already_exists:
                    if attempt:
                        return  # an earlier attempt got through
                    raise
                if attempt == 19:
                    raise
                await asyncio.sleep(0.05)  # retry backoff

    async def sim_post(self, path: str, body: dict[str, Any]) -> None:
        async with aiohttp.ClientSession() as s:
            await sim_json(s, "POST", f"{self.stack.sim_url}{path}", body)

    async def set_outcome(self, pod: str, ok: bool, message: str) -> None:
        """What the pod's exec probe answers from now on (the sim's runtime API), and what the checker
        then expects its markers to say."""
        outcome = {"exitCode": 0, "stdout": message} if ok else {"exitCode": 1, "stderr": message}
        await self.sim_post(f"/sim/pods/{NS}/{pod}/exec-outcomes", {"*": outcome})
        self.outcomes[pod] = {PROBE: ProbeOutcome(PROBE_SUCCEEDED if ok else PROBE_FAILED, message)}

    async def create_probed_pods(self) -> None:
        """The marker's pods, each told to answer "idle" once running (the runtime API knows only pods
        running on a node: polled until it takes it), then the marker."""
        names = [f"{MARKER}-{i}" for i in range(self.cfg.probe_pods)]
        for name in names:
            await self.create(PODS, NS, probed_pod(name))

        async def told(name: str) -> bool:
            try:
                await self.set_outcome(name, True, "idle r0")
            except RuntimeError:  # 404: not running on a node yet
                return False
            return True

        for name in names:
            await poll(lambda name=name: told(name), bool, timeout=30, interval=0.2,  # type: ignore[misc]
                       what=f"probed pod {name} running")
        await self.create(PODPROBEMARKERS, NS, marker_body())

    async def flip_probes(self, index: int) -> list[str]:
        """Flip each probed pod's outcome with probability ``probe_flip`` (a new message either way)."""
        flipped = []
        for name in sorted(self.outcomes):
            if self.rng.random() >= self.cfg.probe_flip:
                continue
            ok = self.outcomes[name][PROBE].state != PROBE_SUCCEEDED
            await self.set_outcome(name, ok, f"{'idle' if ok else 'busy'} r{index}")
            flipped.append(f"{name}={'ok' if ok else 'fail'}")
        self.result.probe_flips += len(flipped)
        return flipped

    async def create_pull_jobs(self, index: int, images: list[str]) -> list[str]:
        names = []
        for k, image in enumerate(images):
            name = f"pull-r{index}-{k}"
            await self.create(IMAGE_PULL_JOBS, NS, pull_job_body(name, image))
            self.job_images.add(image)
            names.append(name)
        self.result.pull_jobs += len(names)
        return names

    async def node_images(self) -> None:
        """A job finds its targets among the NodeImages: round 1's must not be created before there is one
        per node (a job with no targets is complete at once)."""
        assert self.kube is not None
        kube = self.kube

        async def count() -> int:
            return len((await kube.list(NODE_IMAGES))[0])

        await poll(count, lambda n: n == self.cfg.nodes, timeout=60, interval=0.2,
                   what=f"{self.cfg.nodes} NodeImages")

    async def check_pulls(self) -> None:
        """Repeated downloads of the jobs' images, from the kubelets' own record (`GET /sim/nodes`)."""
        if not self.job_images:
            return
        async with aiohttp.ClientSession() as s:
            kubelets = await sim_json(s, "GET", f"{self.stack.sim_url}/sim/nodes")
        self.checker.check_pulls({k["name"]: [p["image"] for p in k["pullLog"]] for k in kubelets},
                                 self.job_images)

    def exited(self) -> list[str]:
        """Processes that died without being killed by the soak."""
        out = [name for name, proc in self.stack.procs.items()
               if name not in self.down and proc.returncode is not None]
        nats = self.stack.nats.proc
        if NATS not in self.down and (nats is None or nats.poll() is not None):
            out.append(NATS)
        return out

    async def heal(self, index: int) -> list[str]:
        """Restart what exited on its own, as a kubelet would (e.g. a service that started while NATS
        was down and gave up). Counted in the results, not a violation: the invariants are about the
        rollouts, and a crash loop that ends in convergence keeps them."""
        done = []
        for name in self.exited():
            self.result.exits[name] += 1
            log_name = "nats/server" if name == NATS else name
            done.append(self.note(f"round {index}: {name} had exited on its own; restarting. Log tail:\n"
                                  f"{self.stack.log_tail(log_name, 10)}"))
            self.down.add(name)
            await self.revive(name)
        return done

    # --- rounds

    def schedule(self) -> list[tuple[float, str, str]]:
        """(offset, action, target) for one round, in time order: the round's fault schedule."""
        cfg, rng = self.cfg, self.rng
        plan: list[tuple[float, str, str]] = []
        for _ in range(rng.randint(*cfg.changes)):
            plan.append((rng.uniform(0, cfg.window), "change", "*"))
        kills = int(cfg.kills) + (1 if rng.random() < cfg.kills - int(cfg.kills) else 0)
        for _ in range(kills):
            at = rng.uniform(0, cfg.window)
            target = rng.choice(self.targets)
            plan.append((at, "kill", target))
            plan.append((at + rng.uniform(*cfg.downtime), "revive", target))
            others = [t for t in self.targets if t != target]
            if others and rng.random() < cfg.pairs:  # two at once: e.g. the planner with the watcher
                second, at2 = rng.choice(others), at + rng.uniform(0.0, 0.2)
                plan.append((at2, "kill", second))
                plan.append((at2 + rng.uniform(*cfg.downtime), "revive", second))
        if cfg.probe_pods:
            plan.append((rng.uniform(0, cfg.window), "flip", "*"))
        if cfg.api_faults and rng.random() < 0.5:
            at = rng.uniform(0, cfg.window / 2)
            plan += [(at, "api-faults", "on"), (at + rng.uniform(1, cfg.window), "api-faults", "off")]
        plan.sort(key=lambda a: a[0])
        return plan

    async def run_round(self, index: int) -> RoundResult:
        self.round = index
        start = time.monotonic()
        before = len(self.checker.violations)
        done: list[str] = []
        api_on = False
        jobs_made = False
        for offset, action, target in self.schedule():
            await asyncio.sleep(max(0.0, start + offset - time.monotonic()))  # the fault schedule
            if action == "change":
                images = await self.change_all()
                done.append(self.note(f"round {index}: template change -> {images[0]}..{images[-1]}"))
                if self.cfg.pull_jobs and not jobs_made:
                    jobs_made = True
                    names = await self.create_pull_jobs(index, images[:self.cfg.pull_jobs])
                    done.append(self.note(f"round {index}: ImagePullJobs {', '.join(names)}"))
            elif action == "flip":
                flipped = await self.flip_probes(index)
                done.append(self.note(f"round {index}: probe outcomes flipped: {', '.join(flipped) or 'none'}"))
            elif action == "kill":
                if target in self.down:
                    continue  # already down: its revive is still scheduled
                await self.kill(target)
                done.append(self.note(f"round {index}: SIGKILL {target}"))
            elif action == "revive":
                if target not in self.down:
                    continue
                await self.revive(target)
                done.append(self.note(f"round {index}: restart {target}"))
            elif action == "api-faults":
                api_on = target == "on"
                await self.api_faults(api_on)
                done.append(self.note(f"round {index}: API faults {target}"))
        if api_on:
            await self.api_faults(False)
        done += await self.heal(index)
        end = time.monotonic()
        settle = await self.settle(index)
        violations = len(self.checker.violations) - before
        return RoundResult(index, done, None if settle is None else settle - end, time.monotonic() - start,
                           violations)

    async def settle(self, index: int) -> float | None:
        """Poll until every CloneSet has converged (the checker's view, confirmed by a fresh list);
        the monotonic time it did, or None (a not-converged violation) at the deadline."""
        self.lagging = set()
        try:
            await poll(self.confirmed, bool, timeout=self.cfg.settle_timeout, interval=0.1,
                       what=f"round {index} to converge")
        except TimeoutError:
            problems = await self.problems()
            for st in self.checker.workloads.values():
                self.note(f"round {index}: pods of {st.name} at the deadline:\n  " + "\n  ".join(
                    describe_pod(p) for p in sorted(self.checker.pods_of(st), key=lambda p: p.metadata.name)))
            for name, why in problems.items():
                if why:
                    self.checker.record(NOT_CONVERGED, name, f"round {index}: not converged "
                                        f"{self.cfg.settle_timeout:.0f}s after the faults: {'; '.join(why)}")
            self.checker.check_settled()
            await self.check_pulls()
            return None
        t = time.monotonic()
        if self.lagging:
            self.note(f"round {index}: waited for {', '.join(sorted(self.lagging))} after the watched workloads")
        self.checker.check_settled()
        await self.check_pulls()
        return t

    async def confirmed(self) -> bool:
        """Converged in the checker's watch view and in a fresh list (the authority)."""
        await self.heal(self.round)
        if not self.checker.converged():
            return False
        problems = {k: v for k, v in (await self.problems()).items() if v}
        self.lagging.update(problems)
        return not problems

    async def problems(self) -> dict[str, list[str]]:
        """Workload -> why it has not converged, from a fresh list of everything (not the checker's watch)."""
        assert self.kube is not None
        nodes, _ = await self.kube.list(NODES)
        node_names = {_NODE.decode(raw).metadata.name for raw in nodes}
        pods = [_POD.decode(raw) for raw in (await self.kube.list(PODS, NS))[0]]
        by_owner: dict[str, list[Pod]] = {}
        for pod in pods:
            ref = pod.metadata.controller_ref()
            if ref is not None:
                by_owner.setdefault(ref.uid, []).append(pod)
        out = {}
        for rules in RULES.values():
            items, _ = await self.kube.list(rules.resource, None if not rules.resource.namespaced else NS)
            for raw in items:
                obj = rules.decode(raw)
                mine = by_owner.get(obj.metadata.uid, []) if rules.owns_pods else rules.select(obj, pods)
                out[workload_name(rules, obj)] = rules.convergence(obj, mine, node_names)
        if self.cfg.probe_pods:
            markers = [_PPM.decode(raw) for raw in (await self.kube.list(PODPROBEMARKERS, NS))[0]]
            if not markers:
                out[f"podprobemarkers/{NS}/{MARKER}"] = ["missing"]
            for ppm in markers:
                selected = [p for p in pods if matches(ppm.spec.selector, p.metadata.labels)]
                out[f"podprobemarkers/{NS}/{ppm.metadata.name}"] = marker_problems(ppm, selected, self.outcomes)
        if self.cfg.pull_jobs:
            for raw in (await self.kube.list(IMAGE_PULL_JOBS, NS))[0]:
                job = _JOB.decode(raw)
                out[f"imagepulljobs/{NS}/{job.metadata.name}"] = pull_job_problems(job, len(node_names))
        return out

    # --- the whole run

    async def run(self) -> SoakResult:
        t0 = time.monotonic()
        try:
            await self.stack.start()
            self.kube = await Kube.connect(self.stack.kubeconfig)
            checker = Checker(on_violation=lambda v: self.note(f"VIOLATION {v.describe()}"))
            self.api = await ApiChecker(self.kube, checker).start()
            # the wall clock of t=0, to line the journal up with the rollout log's RFC 3339 times
            zero = datetime.fromtimestamp(time.time() - checker.now(), UTC).isoformat(timespec="milliseconds")
            self.note(f"soak seed {self.cfg.seed} (t=0 is {zero}): {[asdict(w) for w in self.workloads]}")
            for w in self.workloads:
                await self.kube.create(CLONESETS, NS, w.body(self.next_image()))
            if self.cfg.daemonset_partition is not None:
                await self.kube.create(DAEMONSETS, NS, daemonset_body(self.next_image(), self.cfg.daemonset_partition))
            if self.cfg.sidecar_pods:
                await self.kube.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": KRUISE_NS}})
                await self.kube.create(SIDECARSETS, None, sidecarset_body(self.next_image(SIDECAR)))
                await self.create_sidecar_pods()
            if self.cfg.probe_pods:
                await self.create_probed_pods()
            if self.cfg.pull_jobs:
                await self.node_images()
            if await self.settle(0) is None:
                raise RuntimeError("the workloads never became Ready: "
                                   + "; ".join(v.describe() for v in self.checker.violations))
            stuck = 0
            for i in range(1, self.cfg.rounds + 1):
                if self.cfg.max_seconds is not None and time.monotonic() - t0 > self.cfg.max_seconds:
                    break
                r = await self.run_round(i)
                self.result.rounds.append(r)
                self.note(f"round {i}: settled in {r.settle_s:.2f}s" if r.settle_s is not None
                          else f"round {i}: NOT converged")
                self.collect()
                if self.on_round is not None:
                    self.on_round(r, self.result)
                stuck = stuck + 1 if r.settle_s is None else 0
                if stuck >= self.cfg.give_up_after:
                    self.note(f"giving up after {stuck} rounds that did not converge")
                    break
            final = await self.problems()
            self.result.final_problems = {k: v for k, v in final.items() if v}
            self.result.final_converged = not self.result.final_problems
        finally:
            self.collect()
            self.result.wall_s = time.monotonic() - t0
            if self.api is not None:
                await self.api.stop()
            if self.kube is not None:
                await self.kube.close()
            await self.stack.stop()
            self.journal.close()
        return self.result

    def collect(self) -> None:
        if self.api is None:
            return
        self.result.violations = self.checker.counts()
        self.result.evidence = [v.describe() for v in self.checker.violations]


# --- report ----------------------------------------------------------------------------------------


def render(result: SoakResult, argv: list[str]) -> str:
    s = result.summary()
    settle = s["settle_s"]
    slow = s["slowest_round"]
    cmd = " ".join([".venv/bin/python -m bench.chaos", *argv])
    sizes = ", ".join(f"{w['name']} ({w['replicas']}, {w['strategy']})" for w in result.config["workloads"])
    others = ""
    if result.config["daemonset_partition"] is not None:
        others += f"a DaemonSet (maxUnavailable 1, partition {result.config['daemonset_partition']}); "
    if result.config["sidecar_pods"]:
        others += f"a SidecarSet (maxUnavailable 1) over {result.config['sidecar_pods']} pods; "
    if result.config["probe_pods"]:
        others += f"a PodProbeMarker (exec, every 1 s) over {result.config['probe_pods']} pods; "
    if result.config["pull_jobs"]:
        others += f"{result.config['pull_jobs']} ImagePullJob(s) per round over every node; "
    lines = [
        SECTION_BEGIN, "",
        f"Command: `{cmd}` ({os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}); CloneSets: {sizes}; "
        f"{others}{result.config['nodes']} sim nodes.", "",
        "| what | measured |", "|---|---|",
        f"| rounds | {s['rounds']} in {s['wall_s']:.0f} s ({s['round_wall_s_mean']:.1f} s per round) |",
        f"| SIGKILLs | {', '.join(f'{k} {v}' for k, v in s['kills'].items()) or 'none'} |",
        *([f"| probe outcomes flipped / pull jobs created | {s['probe_flips']} / {s['pull_jobs']} |"]
          if result.config["probe_pods"] or result.config["pull_jobs"] else []),
        f"| violations | {', '.join(f'{k} {v}' for k, v in s['violations'].items()) or '**0**'} |",
        f"| rounds converged | {s['converged_rounds']} of {s['rounds']}; after the last round: "
        f"{'converged' if s['final_converged'] else '**not converged**'} |",
        f"| settle time after a round's faults | p50 {settle['p50']:.2f} s, p99 {settle['p99']:.2f} s, "
        f"max {settle['max']:.2f} s |",
    ]
    if slow:
        took = f"{slow['settle_s']:.2f} s" if slow["settle_s"] is not None else "did not converge"
        lines.append(f"| slowest round | #{slow['index']} ({took}): {'; '.join(a.split(': ', 1)[-1] for a in slow['actions'])} |")
    lines += ["", SECTION_END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sizes", default="22,33,50,20", help="replicas of each CloneSet (kinds cycle: in place, "
                   "ReCreate, ReCreate + maxSurge, in place + partition)")
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--window", type=float, default=4.0, help="seconds of chaos per round")
    p.add_argument("--kills", type=float, default=1.1, help="mean SIGKILLs per round")
    p.add_argument("--pairs", type=float, default=0.0,
                   help="chance that a kill takes a second random target down within 0.2 s (two at once)")
    p.add_argument("--targets", default=None, help="processes to kill (default: "
                   f"{','.join(TARGETS)}, and {AGENT} and the prober when they run)")
    p.add_argument("--api-faults", action="store_true", help="also inject sim API errors and watch cuts")
    p.add_argument("--settle-timeout", type=float, default=60.0)
    p.add_argument("--max-seconds", type=float, default=None,
                   help="start no round after this many seconds (the run then reports fewer rounds than --rounds)")
    p.add_argument("--give-up-after", type=int, default=3, help="stop after N rounds that do not converge")
    p.add_argument("--executors", type=int, default=1)
    p.add_argument("--daemonset-partition", type=int, default=1, help="the DaemonSet's partition (-1: no DaemonSet)")
    p.add_argument("--sidecar-pods", type=int, default=4, help="pods of the SidecarSet (0: no SidecarSet)")
    p.add_argument("--probe-pods", type=int, default=4,
                   help="pods of the PodProbeMarker, their outcomes flipped every round (0: no marker, no prober)")
    p.add_argument("--pull-jobs", type=int, default=1,
                   help="ImagePullJobs per round, for the round's new images, on every node (0: none, no agent)")
    p.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: a temp dir, removed)")
    p.add_argument("--json", type=Path, default=None, help="write results (summary, rounds, evidence) here")
    p.add_argument("--write-docs", action="store_true", help="replace the figures section of docs/reliability.md")
    args = p.parse_args(argv)
    cfg = SoakConfig(rounds=args.rounds, seed=args.seed, sizes=tuple(int(x) for x in args.sizes.split(",")),
                     nodes=args.nodes, window=args.window, kills=args.kills, pairs=args.pairs,
                     targets=tuple(args.targets.split(",")) if args.targets else None,
                     api_faults=args.api_faults,
                     settle_timeout=args.settle_timeout, give_up_after=args.give_up_after,
                     max_seconds=args.max_seconds,
                     executors=args.executors,
                     daemonset_partition=None if args.daemonset_partition < 0 else args.daemonset_partition,
                     sidecar_pods=args.sidecar_pods, probe_pods=args.probe_pods, pull_jobs=args.pull_jobs)
    logging.basicConfig(level=logging.ERROR)
    print(f"chaos soak: seed {cfg.seed}, {cfg.rounds} rounds", file=sys.stderr)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[status]}")) as progress:
        task = progress.add_task("rounds", total=cfg.rounds, status="starting")

        def on_round(r: RoundResult, res: SoakResult) -> None:
            kills = sum(res.kills.values())
            settle = f"{r.settle_s:.1f}s" if r.settle_s is not None else "NOT converged"
            progress.update(task, advance=1, status=f"kills {kills}, violations {res.total_violations}, "
                            f"last settle {settle}")

        soak = Soak(cfg, workdir=args.workdir, on_round=on_round)
        result = asyncio.run(soak.run())
    for line in result.evidence[:30]:
        print(line, file=sys.stderr)
    shown, skip = [], False
    for a in argv:  # the command to reproduce, without the output options
        if skip:
            skip = False
        elif a in ("--json", "--workdir"):
            skip = True
        elif not a.startswith(("--json=", "--workdir=", "--write-docs")):
            shown.append(a)
    text = render(result, shown)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=1))
    if args.write_docs:
        write_docs(text, Path(__file__).resolve().parent.parent / "docs" / "reliability.md",
                   SECTION_BEGIN, SECTION_END)
    if args.workdir is None:
        shutil.rmtree(soak.stack.workdir, ignore_errors=True)
    return 0 if result.total_violations == 0 and result.final_converged else 1


if __name__ == "__main__":
    sys.exit(main())
