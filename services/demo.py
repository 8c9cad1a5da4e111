"""`kruisebus demo`: the seed rollout, end to end, on the embedded cluster.

It starts NATS, the simulated cluster and the services as processes, applies the sample CloneSet
(5 replicas, InPlaceIfPossible, partition 3, maxUnavailable 20%), changes the image and shows the
rollout converge: exactly 2 pods updated in place (same uid, restartCount+1, new
controller-revision-hash), never more than maxUnavailable unavailable; then partition 0 finishes it.
Then an ImagePullJob pre-downloads the next image on every node and the CloneSet moves to it without
a single container start waiting for a pull (services.demo_prepull).
Then the PodProbeMarker seed: four game servers, an `Idle` probe run by the node probers, two
servers idle (their exec outcome set through the sim's control API), marked `gameserver-idle=true`
with a deletion cost of -10, and a scale-in to 2 that deletes exactly those two.
An AdvancedCronJob applied first, whose per-minute schedule reads Asia/Shanghai's clock, has meanwhile
created a batch/v1 Job that runs to completion on the embedded cluster; its next runs are printed in UTC
and in Shanghai, and the Job that ran (services.demo_cronjob).
Then the SidecarSet seed canary: a `log-agent` sidecar injected into a CloneSet's ten pods, version 2
rolled out to exactly one of them with partition 90%, and a new pod still given version 1 by
customVersion (services.demo_sidecarset).
Every claim it prints is checked against the API server; a violated one exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from schemas.constants import ANNOTATION_DELETION_COST
from schemas.kube import Pod
from schemas.messages import CLONESETS, PODPROBEMARKERS, PODS
from schemas.traceids import rollout_trace_hex
from services.demo_cronjob import NAME as CRONJOB
from services.demo_cronjob import SCHEDULE, ZONE, run_cronjob_step, start_cronjob_step
from services.demo_daemonset import DAEMONSET as DAEMON_NAME
from services.demo_daemonset import NEW_IMAGE as DAEMON_IMAGE
from services.demo_daemonset import run_daemonset_step
from services.demo_prepull import WARM_IMAGE, run_prepull_step
from services.demo_sidecarset import NAME as SIDECARSET
from services.demo_sidecarset import run_sidecarset_step
from services.kube import Kube
from services.observe import Snapshot, images_of, pod_ready, poll, restart_count, revision_of, snapshot
from services.stack import AGENT, SERVICES, WEBHOOK, Stack

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAMPLE = EXAMPLES / "cloneset-sample.yaml"
GAME_SERVER = EXAMPLES / "game-server.yaml"
IDLE_MARKER = EXAMPLES / "podprobemarker-idle.yaml"
IDLE_LABEL = "gameserver-idle"
NAMESPACE = "default"
# The trace view of the compose stack's Grafana (deploy/grafana/dashboards/workload-traces.json).
TRACE_DASHBOARD_UID = "kruisebus-workload-traces"
DEMO_GATES = "PreDownloadImageForInPlaceUpdate=true,PreDownloadImageForDaemonSetUpdate=true"


def grafana_trace_url(trace_id: str, workload: str, base: str | None = None) -> str:
    """Where to open one rollout's trace: the per-workload trace view with the trace selected."""
    base = (base or os.environ.get("KRUISEBUS_GRAFANA_URL") or "http://localhost:3000").rstrip("/")
    return f"{base}/d/{TRACE_DASHBOARD_UID}?var-workload={workload}&var-traceId={trace_id}"
NEW_IMAGE = "nginx:1.21"


class ScenarioError(AssertionError):
    """A promise of the seed scenario did not hold (the message says which)."""


@dataclass
class PodRecord:
    name: str
    uid: str
    restarts: int
    revision: str
    image: str


@dataclass
class ScenarioReport:
    before: dict[str, PodRecord] = field(default_factory=dict)
    after_partition: dict[str, PodRecord] = field(default_factory=dict)
    after_complete: dict[str, PodRecord] = field(default_factory=dict)
    max_unavailable_seen: int = 0
    old_revision: str = ""
    new_revision: str = ""


def records(snap: Snapshot) -> dict[str, PodRecord]:
    return {p.metadata.uid: PodRecord(p.metadata.name, p.metadata.uid, restart_count(p), revision_of(p),
                                      images_of(p)[0] if p.spec.containers else "") for p in snap.pods}


def load_sample() -> dict[str, object]:
    doc: dict[str, object] = yaml.safe_load(SAMPLE.read_text())
    return doc


Hook = Callable[[str, Snapshot], Awaitable[None]]


async def run_seed_scenario(kube: Kube, progress: Progress, *, hook: Hook | None = None,
                            timeout: float = 180.0, grace_seconds: int | None = None) -> ScenarioReport:
    """Drive the seed scenario; `hook(phase, snapshot)` runs on every sample (chaos tests kill there).

    `grace_seconds` replaces the sample's in-place grace period (10 s, so its five one-at-a-time
    updates take about a minute): tests whose subject is not the grace period itself (a real API
    server, service accounts, SIGKILLs) pass 1 and keep everything else about the scenario."""
    report = ScenarioReport()
    body = load_sample()
    if grace_seconds is not None:
        body["spec"]["updateStrategy"]["inPlaceUpdateStrategy"]["gracePeriodSeconds"] = grace_seconds  # type: ignore[index]
    replicas = 5
    max_unavailable = 1  # 20% of 5, rounded up (maxSurge 0)

    async def fetch() -> Snapshot:
        return await snapshot(kube, NAMESPACE, "sample")

    def sampler(phase: str, task: object, count: Callable[[Snapshot], int]) -> Callable[[Snapshot], None]:
        def on_sample(s: Snapshot) -> None:
            progress.update(task, completed=count(s))  # type: ignore[arg-type]
            if phase != "create":
                report.max_unavailable_seen = max(report.max_unavailable_seen, s.unavailable)
        return on_sample

    async def wait(phase: str, task: object, done: Callable[[Snapshot], bool], count: Callable[[Snapshot], int],
                   what: str) -> Snapshot:
        on_sample = sampler(phase, task, count)

        async def fetch_and_hook() -> Snapshot:
            s = await fetch()
            if hook is not None:
                await hook(phase, s)
            return s

        return await poll(fetch_and_hook, done, timeout=timeout, on_sample=on_sample, what=what)

    # 1. create
    task = progress.add_task("apply CloneSet sample (5 replicas, nginx:1.20)", total=replicas)
    await kube.create(CLONESETS, NAMESPACE, body)
    snap = await wait("create", task, lambda s: s.ready == replicas and len(s.pods) == replicas
                      and s.cloneset.status.ready_replicas == replicas, lambda s: s.ready,
                      "5 ready pods")
    report.before = records(snap)
    report.old_revision = snap.cloneset.status.update_revision

    # 2. image change under partition 3
    task = progress.add_task(f"image -> {NEW_IMAGE} with partition 3 (2 pods in place)", total=2)
    await kube.patch(CLONESETS, NAMESPACE, "sample", {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": NEW_IMAGE}]}}}}, "merge")

    def updated_ready(s: Snapshot) -> list[str]:
        return [p.metadata.uid for p in s.updated() if pod_ready(p) and images_of(p) == [NEW_IMAGE]
                and p.status.container_statuses and p.status.container_statuses[0].image == NEW_IMAGE]

    snap = await wait(
        "partition", task,
        lambda s: len(updated_ready(s)) == 2 and s.ready == replicas and s.cloneset.status.updated_ready_replicas == 2
        and s.cloneset.status.observed_generation == s.cloneset.metadata.generation,
        lambda s: len(updated_ready(s)), "2 pods updated in place and ready")
    report.after_partition = records(snap)
    report.new_revision = snap.cloneset.status.update_revision
    check_in_place(report.before, report.after_partition, report.new_revision, expected_updated=2)

    # 3. partition 0 completes the rollout
    task = progress.add_task("partition 0: roll the remaining 3 pods", total=replicas)
    await kube.patch(CLONESETS, NAMESPACE, "sample", {"spec": {"updateStrategy": {"partition": 0}}}, "merge")
    snap = await wait(
        "complete", task,
        lambda s: len(updated_ready(s)) == replicas and s.cloneset.status.updated_ready_replicas == replicas
        and s.cloneset.status.current_revision == s.cloneset.status.update_revision,
        lambda s: len(updated_ready(s)), "all 5 pods updated")
    report.after_complete = records(snap)
    check_in_place(report.before, report.after_complete, report.new_revision, expected_updated=replicas)
    if report.max_unavailable_seen > max_unavailable:
        raise ScenarioError(f"{report.max_unavailable_seen} pods were unavailable at once; "
                            f"maxUnavailable allows {max_unavailable}")
    return report


@dataclass
class ProbeReport:
    idle: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    marked: dict[str, tuple[str, str]] = field(default_factory=dict)  # pod -> (label, deletion cost)
    left: list[str] = field(default_factory=list)


async def game_servers(kube: Kube) -> list[Pod]:
    items, _ = await kube.list(PODS, NAMESPACE, label_selector="app=game-server")
    pods = [msgspec.json.decode(i, type=Pod) for i in items]
    return sorted((p for p in pods if not p.metadata.deletion_timestamp), key=lambda p: p.metadata.name)


async def run_probe_scenario(kube: Kube, sim_url: str, progress: Progress, *, timeout: float = 120.0) -> ProbeReport:
    """The PodProbeMarker seed (docs/probemarker.md): idle game servers marked, then deleted first."""
    report = ProbeReport()
    task = progress.add_task("apply 4 game servers", total=4)
    await kube.create(CLONESETS, NAMESPACE, yaml.safe_load(GAME_SERVER.read_text()))

    def ready(ps: list[Pod]) -> bool:
        progress.update(task, completed=sum(pod_ready(p) for p in ps))
        return len(ps) == 4 and all(pod_ready(p) for p in ps)

    pods = await poll(lambda: game_servers(kube), ready, timeout=timeout, what="4 ready game servers")
    names = [p.metadata.name for p in pods]
    report.idle, report.busy = names[::2], names[1::2]
    async with aiohttp.ClientSession() as http:
        for name in names:
            outcome = {"exitCode": 0, "stdout": "idle"} if name in report.idle else \
                {"exitCode": 1, "stderr": "3 players online"}
            async with http.post(f"{sim_url}/sim/pods/{NAMESPACE}/{name}/exec-outcomes", json={"*": outcome}) as r:
                if r.status != 200:
                    raise ScenarioError(f"the sim refused the exec outcome of {name}: {await r.text()}")
    task = progress.add_task("PodProbeMarker Idle: mark idle game servers", total=4)
    await kube.create(PODPROBEMARKERS, NAMESPACE, yaml.safe_load(IDLE_MARKER.read_text()))

    def marked(ps: list[Pod]) -> bool:
        good = [p for p in ps if p.metadata.labels.get(IDLE_LABEL) == ("true" if p.metadata.name in report.idle
                                                                         else "false")]
        progress.update(task, completed=len(good))
        return len(ps) == 4 and len(good) == 4
    pods = await poll(lambda: game_servers(kube), marked, timeout=timeout, what="every game server marked")
    report.marked = {p.metadata.name: (p.metadata.labels[IDLE_LABEL],
                                       p.metadata.annotations.get(ANNOTATION_DELETION_COST, ""))
                     for p in pods}
    task = progress.add_task("scale in to 2: the idle servers go first", total=2)
    await kube.patch(CLONESETS, NAMESPACE, "game-server", {"spec": {"replicas": 2}}, "merge")

    def scaled(ps: list[Pod]) -> bool:
        progress.update(task, completed=4 - len(ps))
        return len(ps) == 2
    left = await poll(lambda: game_servers(kube), scaled, timeout=timeout, what="the scale-in to 2")
    report.left = [p.metadata.name for p in left]
    if sorted(report.left) != sorted(report.busy):
        raise ScenarioError(f"scale-in kept {report.left}, expected the busy servers {report.busy}")
    return report


def check_in_place(before: dict[str, PodRecord], after: dict[str, PodRecord], new_revision: str,
                   expected_updated: int) -> None:
    if set(before) != set(after):
        raise ScenarioError(f"pods were replaced, not updated in place: before {sorted(r.name for r in before.values())}"
                            f" after {sorted(r.name for r in after.values())}")
    updated = [uid for uid, rec in after.items() if rec.revision == new_revision]
    if len(updated) != expected_updated:
        raise ScenarioError(f"{len(updated)} pods on the new revision, expected {expected_updated}")
    for uid, rec in after.items():
        old = before[uid]
        if uid in updated:
            if rec.restarts != old.restarts + 1 or rec.image != NEW_IMAGE or rec.revision == old.revision:
                raise ScenarioError(f"pod {rec.name} was not updated in place exactly once: restarts "
                                    f"{old.restarts}->{rec.restarts}, image {rec.image}, revision {rec.revision}")
        elif rec.restarts != old.restarts or rec.revision != old.revision:
            raise ScenarioError(f"pod {rec.name} beyond the partition was touched")


def pods_table(title: str, before: dict[str, PodRecord], after: dict[str, PodRecord]) -> Table:
    table = Table(title=title)
    for col in ("pod", "uid", "image", "restarts", "controller-revision-hash"):
        table.add_column(col, no_wrap=True)
    for uid, rec in sorted(after.items(), key=lambda kv: kv[1].name):
        old = before.get(uid)
        same = "same" if old else "new"
        restarts = f"{old.restarts} -> {rec.restarts}" if old else str(rec.restarts)
        table.add_row(rec.name, f"{uid[:8]} ({same})", rec.image, restarts, rec.revision)
    return table


def demo_stack(nodes: int) -> Stack:
    """The demo's stack: every service, node agents and probers, image pre-download switched on (and
    NodeImages made as soon as a node is Ready, not after Kruise's 30 s, so the demo need not wait)."""
    return Stack(nodes=nodes, node_agents=True, probers=True,
                 env={"KRUISEBUS_FEATURE_GATES": DEMO_GATES, "KRUISEBUS_WEBHOOK_POD_HOOK": "1"},
                 service_args={"planner": ("--nodeimage-creation-delay", "0")})


async def demo(console: Console | None = None, *, nodes: int = 3) -> int:
    console = console or Console()
    console.rule("[bold]kruisebus demo: an in-place CloneSet rollout over NATS JetStream")
    stack = demo_stack(nodes)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            t = progress.add_task("start NATS, simulated cluster, webhook, watcher, planner, executor, "
                                  "node agents, probers", total=3)
            await stack.start_nats()
            progress.advance(t)
            await stack.start_sim()
            progress.advance(t)
            for name in (WEBHOOK, *SERVICES, AGENT, *stack.prober_groups):
                await stack.start_service(name)
            progress.advance(t)
            kube = await Kube.connect(stack.kubeconfig)
            try:
                # its first slot is up to a minute away: it waits while the other steps run
                cron_started = await start_cronjob_step(kube, namespace=NAMESPACE)
                report = await run_seed_scenario(kube, progress)
                uid = msgspec.json.decode(await kube.get(CLONESETS, NAMESPACE, "sample"))["metadata"]["uid"]
                prepull = await run_prepull_step(kube, stack.sim_url, progress, namespace=NAMESPACE, nodes=nodes)
                daemon = await run_daemonset_step(kube, stack.sim_url, progress, namespace=NAMESPACE, nodes=nodes)
                probes = await run_probe_scenario(kube, stack.sim_url, progress)
                sidecars = await run_sidecarset_step(kube, progress, namespace=NAMESPACE)
                cron = await run_cronjob_step(kube, progress, cron_started, namespace=NAMESPACE)
            finally:
                await kube.close()
        stack.check_alive()
        console.print(pods_table("after the image change with partition 3", report.before, report.after_partition))
        console.print(pods_table("after partition 0", report.before, report.after_complete))
        console.print(f"[green]✓[/] 2 pods updated in place under partition 3, then all 5; same uids; "
                      f"restartCount +1; at most {report.max_unavailable_seen} pod unavailable at a time "
                      f"(maxUnavailable 20% = 1).")
        console.print(f"Revisions: {report.old_revision} -> {report.new_revision}")
        if prepull.pull_waits:
            raise AssertionError(f"{prepull.pull_waits} container starts waited for {WARM_IMAGE} after it was "
                                 "pre-downloaded")
        console.print(f"[green]✓[/] ImagePullJob pre-downloaded {WARM_IMAGE} on all {prepull.nodes} nodes, at most "
                      f"{prepull.most_at_once} at a time; the in-place update to it waited for no pull.")
        if daemon.pull_waits or not daemon.same_pods:
            raise AssertionError(f"DaemonSet {DAEMON_NAME}: {daemon.pull_waits} container starts waited for "
                                 f"{DAEMON_IMAGE}; pods kept: {daemon.same_pods}")
        console.print(f"[green]✓[/] DaemonSet {DAEMON_NAME} pre-downloaded {DAEMON_IMAGE} on its {daemon.nodes} "
                      f"nodes, at most {daemon.most_at_once} at a time, then updated every pod in place; no "
                      "update waited for a pull.")
        trace_id = rollout_trace_hex(uid, report.new_revision)
        console.print(f"Rollout trace: {trace_id}\n  open {grafana_trace_url(trace_id, 'sample')}")
        if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
            console.print("  [dim](spans were not exported: set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. to "
                          "http://localhost:4318 with `docker compose up -d otel-collector tempo grafana`)[/]")
        table = Table(title="PodProbeMarker game-server-probe (Idle)")
        for col in ("pod", IDLE_LABEL, "pod-deletion-cost", "after scale-in to 2"):
            table.add_column(col, no_wrap=True)
        for name, (label, cost) in sorted(probes.marked.items()):
            table.add_row(name, label, cost, "kept" if name in probes.left else "deleted")
        console.print(table)
        console.print(f"[green]✓[/] the {len(probes.idle)} idle game servers were marked and deleted first on "
                      "scale-in; the busy ones were kept.")
        table = Table(title=f"SidecarSet {SIDECARSET} canary (partition 90%, new pods by customVersion 1)")
        for col in ("pod", "sidecar image"):
            table.add_column(col, no_wrap=True)
        for name, image in sorted(sidecars.images.items()):
            table.add_row(name, image + ("  (upgraded in place)" if name == sidecars.upgraded else ""))
        table.add_row(sidecars.new_pod, sidecars.new_pod_image + "  (created after the canary)")
        console.print(table)
        console.print(f"[green]✓[/] SidecarSet {SIDECARSET}: 1 of {len(sidecars.images)} pods upgraded in place to "
                      f"version 2, the new pod injected with version 1; revisions in kruise-system: "
                      f"{', '.join(sidecars.revisions)}.", soft_wrap=True)
        table = Table(title=f"AdvancedCronJob {CRONJOB} ('{SCHEDULE}', timeZone {ZONE}): next runs")
        for col in ("UTC", ZONE):
            table.add_column(col, no_wrap=True)
        for run in cron.next_runs[:3]:
            table.add_row(run["utc"], run["zone"])
        console.print(table)
        console.print(f"[green]✓[/] AdvancedCronJob {CRONJOB} created Job {cron.job} for its first run "
                      f"{cron.slot_utc} ({cron.slot_zone} in {ZONE}); it ran to completion on the sim "
                      f"in {cron.ran_seconds:.0f}s ({cron.succeeded} pod succeeded, Complete at {cron.completed}).",
                      soft_wrap=True)
        console.print("Look for yourself while the stack runs (`kruisebus up`), e.g.:\n"
                      "  kubectl --kubeconfig <path printed by `kruisebus up`> get pods -L controller-revision-hash\n"
                      "  kubectl --kubeconfig <path> describe clone sample\n"
                      "  kubectl --kubeconfig <path> get pods -L gameserver-idle\n"
                      "  kruisebus events --nats <url> --type probe\n"
                      "  kubectl --kubeconfig <path> get acj,jobs\n"
                      "  kubectl --kubeconfig <path> get sidecarsets; "
                      "kubectl --kubeconfig <path> get controllerrevisions -n kruise-system")
        return 0
    except Exception as e:  # noqa: BLE001 - the demo reports any failure with the service logs
        console.print(f"[red]demo failed:[/] {e}")
        for name in ("planner", "executor", "watcher", "webhook", "sim"):
            console.print(f"[dim]--- {name} log (tail) ---\n{stack.log_tail(name, 15)}")
        return 1
    finally:
        await stack.cleanup()


async def up(console: Console | None = None, *, nodes: int = 3) -> int:
    """Run the stack until SIGINT/SIGTERM and print how to reach it."""
    console = console or Console()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = demo_stack(nodes)
    try:
        await stack.start()
        viewer = stack.password_file("viewer")
        login = f" --nats-user viewer --nats-password-file {viewer}" if viewer else ""
        console.print(f"kubeconfig: {stack.kubeconfig}\nNATS:       {stack.nats_url}{login}\n"
                      f"try: kubectl --kubeconfig {stack.kubeconfig} apply -f {SAMPLE}\n"
                      f"     kruisebus events --nats {stack.nats_url}{login} --follow\n"
                      "Ctrl-C stops everything.", soft_wrap=True)
        while not stop.is_set():
            # wake up now and then to notice a crashed service instead of serving a dead stack
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
            stack.check_alive()
        return 0
    finally:
        await stack.cleanup()
