"""`kruisebus demo`: the seed rollout, end to end, on the embedded cluster.

It starts NATS, the simulated cluster and the services as processes, applies the sample CloneSet
(5 replicas, InPlaceIfPossible, partition 3, maxUnavailable 20%), changes the image and shows the
rollout converge: exactly 2 pods updated in place (same uid, restartCount+1, new
controller-revision-hash), never more than maxUnavailable unavailable; then partition 0 finishes it.
Every claim it prints is checked against the API server; a violated one exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

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

from schemas.messages import CLONESETS
from services.kube import Kube
from services.observe import Snapshot, images_of, pod_ready, poll, restart_count, revision_of, snapshot
from services.stack import Stack

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cloneset-sample.yaml"
NAMESPACE = "default"
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
                            timeout: float = 180.0) -> ScenarioReport:
    """Drive the seed scenario; `hook(phase, snapshot)` runs on every sample (chaos tests kill there)."""
    report = ScenarioReport()
    body = load_sample()
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


async def demo(console: Console | None = None, *, nodes: int = 3) -> int:
    console = console or Console()
    console.rule("[bold]kruisebus demo: an in-place CloneSet rollout over NATS JetStream")
    stack = Stack(nodes=nodes)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            t = progress.add_task("start NATS, simulated cluster, watcher, planner, executor", total=3)
            await stack.start_nats()
            progress.advance(t)
            await stack.start_sim()
            progress.advance(t)
            for name in ("watcher", "planner", "executor"):
                await stack.start_service(name)
            progress.advance(t)
            kube = await Kube.connect(stack.kubeconfig)
            try:
                report = await run_seed_scenario(kube, progress)
            finally:
                await kube.close()
        stack.check_alive()
        console.print(pods_table("after the image change with partition 3", report.before, report.after_partition))
        console.print(pods_table("after partition 0", report.before, report.after_complete))
        console.print(f"[green]✓[/] 2 pods updated in place under partition 3, then all 5; same uids; "
                      f"restartCount +1; at most {report.max_unavailable_seen} pod unavailable at a time "
                      f"(maxUnavailable 20% = 1).")
        console.print(f"Revisions: {report.old_revision} -> {report.new_revision}")
        console.print("Look for yourself while the stack runs (`kruisebus up`), e.g.:\n"
                      "  kubectl --kubeconfig <path printed by `kruisebus up`> get pods -L controller-revision-hash\n"
                      "  kubectl --kubeconfig <path> describe clone sample")
        return 0
    except Exception as e:  # noqa: BLE001 - the demo reports any failure with the service logs
        console.print(f"[red]demo failed:[/] {e}")
        for name in ("planner", "executor", "watcher", "sim"):
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
    stack = Stack(nodes=nodes)
    try:
        await stack.start()
        console.print(f"kubeconfig: {stack.kubeconfig}\nNATS:       {stack.nats_url}\n"
                      f"try: kubectl --kubeconfig {stack.kubeconfig} apply -f {SAMPLE}\n"
                      f"     kruisebus events --nats {stack.nats_url} --follow\n"
                      "Ctrl-C stops everything.", soft_wrap=True)
        while not stop.is_set():
            # wake up now and then to notice a crashed service instead of serving a dead stack
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)
            stack.check_alive()
        return 0
    finally:
        await stack.cleanup()
