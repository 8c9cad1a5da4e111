"""The `kruisebus` command: one image, one CLI.

`kruisebus watcher|planner|executor|webhook` run a service (what a Pod runs); `sim` runs the embedded
cluster; `demo` and `up` run the whole stack locally; `plan` previews the planner's next pass on a
saved state; `events` follows the rollout log on NATS; `rollout status` waits for a CloneSet like
`kubectl rollout status`; `rollout` is also the kubectl plugin `kubectl-kruisebus` (`kubectl_main`).
uvloop is installed here and only here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

import uvloop

from services.settings import (
    BusSettings,
    ExecutorSettings,
    KubeSettings,
    LeaseSettings,
    MetricsSettings,
    PlannerSettings,
    RuntimeSettings,
    env,
)

if TYPE_CHECKING:
    from services.bus import Bus
    from services.health import Check, HealthServer

def _common(p: argparse.ArgumentParser, *, kube: bool = True, service: bool = False) -> None:
    BusSettings.add_arguments(p)
    if kube:
        KubeSettings.add_arguments(p)
    if service:
        MetricsSettings.add_arguments(p)
    p.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"), help="env KRUISEBUS_LOG_LEVEL")


@contextlib.asynccontextmanager
async def _health(args: argparse.Namespace, ready: Check | None = None) -> AsyncIterator[HealthServer | None]:
    """The service's /metrics, /healthz, /readyz listener while the body runs (None when off)."""
    settings = MetricsSettings.from_args(args)
    if not settings.port:
        yield None
        return
    from services.health import HealthServer

    server = HealthServer(settings.host, settings.port, ready=ready)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kruisebus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("watcher", help="list+watch the cluster into the state stream (one active, standbys)")
    _common(p, service=True)
    LeaseSettings.add_arguments(p)
    p = sub.add_parser("planner", help="plan workload rollouts from the state stream")
    _common(p, kube=False, service=True)
    PlannerSettings.add_arguments(p)
    LeaseSettings.add_arguments(p)
    p = sub.add_parser("nats-init", help="create or update the streams and the lease bucket (admin user)")
    _common(p, kube=False)
    p = sub.add_parser("nats-permissions", help="print every NATS user's subject permissions as JSON "
                       "(what the NATS server of an install must grant)")
    p.add_argument("--prefix", default=env("PREFIX", "kb"), help="subject prefix (env KRUISEBUS_PREFIX)")
    p = sub.add_parser("executor", help="carry out commands against the Kubernetes API (with --node: one "
                       "node's work, e.g. image pulls, through its container runtime)")
    _common(p, service=True)
    ExecutorSettings.add_arguments(p)
    p.add_argument("--node", action="append", default=None,
                   help="run as this node's agent: consume only its node work; repeat to serve several "
                   "simulated nodes from one process (env KRUISEBUS_NODE_NAME, comma-separated)")
    RuntimeSettings.add_arguments(p)
    p = sub.add_parser("webhook", help="serve Kruise's CloneSet, ImagePullJob and NodeImage "
                       "defaulting/validation admission webhooks")
    _common(p, service=True)
    from services.webhook import settings as webhook_settings

    webhook_settings.add_arguments(p)
    p = sub.add_parser("prober", help="run the PodProbeMarker probes of one node's pods (one per node), "
                       "or of several nodes' pods in one process")
    _common(p, kube=False, service=True)
    p.add_argument("--node", action="append", default=None,
                   help="a node whose pods this prober probes; repeat to serve several (simulated) nodes "
                   "from one process (else env KRUISEBUS_NODE_NAME, comma-separated)")
    RuntimeSettings.add_arguments(p)  # exec probes run through the node's container runtime
    sub.add_parser("sim", help="run the embedded cluster (see `kruisebus sim --help`)", add_help=False)
    p = sub.add_parser("demo", help="run the seed rollout end to end on the embedded cluster")
    p.add_argument("--nodes", type=int, default=3)
    p = sub.add_parser("up", help="run NATS, the embedded cluster and all services until Ctrl-C")
    p.add_argument("--nodes", type=int, default=3)
    p = sub.add_parser("plan", help="print the planner's next pass for a saved workload (CloneSet, AdvancedCronJob, BroadcastJob, SidecarSet) and what it owns")
    p.add_argument("file")
    p.add_argument("--now", default=None, help="RFC 3339 time to plan at (default: now)")
    p.add_argument("--time-zone", default="UTC",
                   help="zone of AdvancedCronJob schedules without timeZone, as the planner's --time-zone (default UTC)")
    p.add_argument("--feature-gates", default=None)
    p.add_argument("--create-limit", type=int, default=None, metavar="N",
                   help="create at most N pods, as the live planner's slow start does (default: all)")
    p = sub.add_parser("admit", help="print a pod as the pod webhook would admit it (SidecarSet injection dry run)")
    p.add_argument("file", help="the Pod (YAML or JSON)")
    p.add_argument("--with", dest="with_file", default=None, metavar="FILE",
                   help="SidecarSets, their ControllerRevisions and Namespaces (kubectl get -o yaml)")
    p.add_argument("--seed", type=int, default=None, help="seed of the Partial policy's random draws")
    p.add_argument("--now", default=None, help="RFC 3339 time written into the hash annotations")
    p = sub.add_parser("events", help="print rollout events from NATS (replayable)")
    _common(p, kube=False)
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("--workload", default=None)
    p.add_argument("--type", default=None, help="only this event type (e.g. rejected)")
    p.add_argument("--since", default=None, help="replay from this RFC 3339 time")
    p.add_argument("--from-seq", type=int, default=None, help="replay from this stream sequence")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    sub.add_parser("rollout", help="a CloneSet's rollout: status, history, pause, resume, undo (= `kubectl "
                   "kruisebus rollout`; see `kruisebus rollout --help`)", add_help=False)
    return parser


async def connect_bus(settings: BusSettings, name: str, **kwargs: Any) -> Bus:
    """The service's NATS connection, as its own user when one is configured."""
    from services.bus import Bus

    return await Bus.connect(settings.url, name=name, prefix=settings.prefix, user=settings.user or None,
                             password=settings.password, replicas=settings.replicas, **kwargs)


async def ensure_bus(bus: Bus) -> None:
    """Create or update the streams and the lease bucket (idempotent; the admin user's job)."""
    from services.lease import LeaseStore

    await bus.ensure_streams()
    await LeaseStore(bus, LeaseStore.bucket_of(bus)).ensure()


async def _serve(name: str, args: argparse.Namespace,
                 body: Callable[[Bus, asyncio.Event], Awaitable[None]]) -> int:
    """Connect, run one service body until SIGTERM/SIGINT, then shut down in order.

    Graceful shutdown: the signal sets `stop`; the body stops consuming, finishes what is in flight
    (the executor's commands, the planner's pass) and releases its leases; then NATS is drained
    (pending publishes and acks flushed) and the tracer provider flushes its spans.
    """
    from services.telemetry import setup_tracing

    try:
        settings = BusSettings.from_args(args)
    except ValueError as e:
        print(f"kruisebus {name}: {e}", file=sys.stderr)
        return 2
    provider = setup_tracing(f"kruisebus-{name}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings = BusSettings.from_args(args)
    from services.lease import LeaseBucketMissing

    async with _health(args) as health:
        bus = await connect_bus(settings, f"kruisebus-{name}", tracer_provider=provider)
        try:
            if settings.ensure_streams:
                await ensure_bus(bus)
            if health is not None:
                health.ready = lambda: bus.nc.is_connected
            await body(bus, stop)
        except LeaseBucketMissing as e:
            print(f"kruisebus {name}: {e}", file=sys.stderr)
            return 2
        finally:
            await bus.close()
            provider.shutdown()
    return 0


def _holder(service: str, lease: LeaseSettings) -> str:
    from services.lease import default_holder

    return lease.holder or default_holder(service)


async def _until_stopped(stop: asyncio.Event, coro: Awaitable[None]) -> None:
    task = asyncio.ensure_future(coro)
    waiter = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, waiter):
        if t not in done:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
    if task in done:
        task.result()


def served_nodes(args: argparse.Namespace) -> list[str]:
    """The nodes a prober or node agent serves: its `--node` flags in order (repeats dropped), else
    KRUISEBUS_NODE_NAME.

    The flags replace the environment's list (argparse's append would add to a non-empty default)."""
    return list(dict.fromkeys(args.node or [n for n in env("NODE_NAME", "").split(",") if n]))


async def cmd_prober(args: argparse.Namespace) -> int:
    from services.prober.service import run_prober
    from services.runtime import open_runtime_with

    nodes = served_nodes(args)
    if not nodes:
        print("kruisebus prober: --node: at least one node is required (or KRUISEBUS_NODE_NAME)", file=sys.stderr)
        return 2
    settings = RuntimeSettings.from_args(args)
    runtimes = {n: await open_runtime_with(settings, node=n) for n in nodes}

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_prober(bus, runtimes, stop=stop)

    return await _serve(f"prober-{nodes[0]}" if len(nodes) == 1 else "prober", args, body)


async def cmd_watcher(args: argparse.Namespace) -> int:
    from schemas.subjects import LEASE_WATCHER
    from services.kube import Kube
    from services.lease import ActiveStandby, Lease, LeaseStore
    from services.watcher.service import run_watcher

    try:
        lease_settings = LeaseSettings.from_args(args)
    except ValueError as e:
        print(f"kruisebus watcher: {e}", file=sys.stderr)
        return 2
    kube = await Kube.connect_with(KubeSettings.from_args(args))

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        # one active watcher per cluster; the others stand by and take over (and relist) when it dies
        store = await LeaseStore.open(bus, create=False)
        lease = Lease(store, LEASE_WATCHER, _holder("watcher", lease_settings), lease_settings.ttl)
        # on SIGTERM the states already queued are published before the lease is handed over
        await ActiveStandby(lease, grace=5.0).run(lambda: run_watcher(kube, bus, stop=stop), stop)

    try:
        return await _serve("watcher", args, body)
    finally:
        await kube.close()


async def cmd_executor(args: argparse.Namespace) -> int:
    from services.executor.service import run_executor
    from services.kube import Kube

    kube = await Kube.connect_with(KubeSettings.from_args(args))

    settings = ExecutorSettings.from_args(args)
    if served_nodes(args):
        return await _node_agent(args, kube, settings)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_executor(kube, bus, stop=stop, settings=settings)

    try:
        return await _serve("executor", args, body)
    finally:
        await kube.close()


async def _node_agent(args: argparse.Namespace, kube: Any, settings: ExecutorSettings) -> int:
    from services.nodeagent.service import run_node_agent
    from services.runtime import open_runtime_with

    nodes = served_nodes(args)
    runtime_settings = RuntimeSettings.from_args(args)
    runtimes = [await open_runtime_with(runtime_settings, node=n, kube=kube) for n in nodes]

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            for node, runtime in zip(nodes, runtimes, strict=True):
                tg.create_task(run_node_agent(bus, node, runtime, stop=stop, ack_wait=settings.ack_wait,
                                              max_deliver=settings.max_deliver))

    try:
        return await _serve(f"nodeagent-{nodes[0]}" if len(nodes) == 1 else "nodeagent", args, body)
    finally:
        for runtime in runtimes:
            await runtime.close()
        await kube.close()


async def cmd_planner(args: argparse.Namespace) -> int:
    from services.lease import LeaseStore
    from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates
    from services.planner.service import Planner, run_planner
    from services.planner.workloads import registry_for, with_time_zone

    try:
        settings = PlannerSettings.from_args(args)
        lease_settings = LeaseSettings.from_args(args)
    except ValueError as e:
        print(f"kruisebus planner: {e}", file=sys.stderr)
        return 2
    try:
        gates = parse_feature_gates(settings.feature_gates) if settings.feature_gates else DEFAULT_GATES
    except ValueError as e:
        print(f"kruisebus planner: --feature-gates: {e}", file=sys.stderr)
        return 2

    try:
        registry = with_time_zone(settings.time_zone, registry_for(
            gates, nodeimage_creation_delay=settings.nodeimage_creation_delay))
    except ValueError as e:
        print(f"kruisebus planner: --time-zone: {e}", file=sys.stderr)
        return 2

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        planner = Planner(bus, gates=gates, resync_seconds=settings.resync_seconds,
                          expectation_timeout=settings.expectation_timeout, registry=registry,
                          state_sync_timeout=settings.state_sync_timeout)
        if settings.partitions:
            store = await LeaseStore.open(bus, create=False)
            planner.claim_partitions(store, _holder("planner", lease_settings), settings.partitions,
                                     lease_settings.ttl)
        await run_planner(bus, gates=gates, stop=stop, planner=planner)

    return await _serve("planner", args, body)


async def cmd_webhook(args: argparse.Namespace) -> int:
    """Unlike the other services the webhook does not need NATS to start: it must keep admitting
    while NATS restarts, and only its podsToDelete view comes from the state stream."""
    from pathlib import Path

    from services.kube import Kube
    from services.webhook import settings as webhook_settings
    from services.webhook.server import WebhookServer, run_webhook

    try:
        opts = webhook_settings.from_args(args)
    except ValueError as e:
        print(f"kruisebus webhook: --feature-gates: {e}", file=sys.stderr)
        return 2
    bus_settings = BusSettings.from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def connect() -> Bus:
        return await connect_bus(bus_settings, "kruisebus-webhook")

    kube = await Kube.connect_with(KubeSettings.from_args(args))
    try:
        server = WebhookServer(opts)
        # ready once it serves TLS (admission does not wait for NATS); a failed registration ends it
        async with _health(args, ready=lambda: server.port != 0):
            await run_webhook(None, kube, opts, stop=stop, connect_bus=connect, server=server,
                              ready_file=Path(args.ready_file) if args.ready_file else None)
    finally:
        await kube.close()
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from services import dryrun
    from services.planner.workloads import with_time_zone

    try:
        registry = with_time_zone(args.time_zone)
    except ValueError as e:
        print(f"error: --time-zone: {e}", file=sys.stderr)
        return 2
    code, out = dryrun.run(args.file, now=args.now, feature_gates=args.feature_gates,
                           create_limit=args.create_limit, registry=registry)
    (sys.stdout if code == 0 else sys.stderr).write(out if out.endswith("\n") else out + "\n")
    return code


async def cmd_nats_init(args: argparse.Namespace) -> int:
    bus = await connect_bus(BusSettings.from_args(args), "kruisebus-nats-init")
    try:
        await ensure_bus(bus)
    finally:
        await bus.close()
    print(f"streams and lease bucket of prefix {bus.prefix!r} are in place")
    return 0


def cmd_nats_permissions(args: argparse.Namespace) -> int:
    import msgspec

    from services import natsauth

    try:
        table = {user: natsauth.permissions(user, args.prefix) for user in natsauth.USERS}
    except ValueError as e:
        print(f"kruisebus nats-permissions: --prefix: {e}", file=sys.stderr)
        return 2
    print(msgspec.json.format(msgspec.json.encode(table), indent=2).decode())
    return 0


async def cmd_events(args: argparse.Namespace) -> int:
    from services.events_cli import print_events

    since = datetime.fromisoformat(args.since.replace("Z", "+00:00")) if args.since else None
    bus = BusSettings.from_args(args)
    return await print_events(args.nats, prefix=args.prefix, namespace=args.namespace, workload=args.workload,
                              event_type=args.type, since=since, from_seq=args.from_seq, follow=args.follow,
                              user=bus.user or None, password=bus.password)


def kubectl_main(argv: list[str] | None = None, prog: str = "kubectl kruisebus") -> int:
    """`kubectl-kruisebus` (the kubectl plugin), and `kruisebus rollout ...`."""
    from services.kubectl_plugin import parse, run

    args = parse(list(sys.argv[1:] if argv is None else argv), prog)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("nats").setLevel(logging.CRITICAL)  # a failed connection is reported as one line
    return uvloop.run(run(args, sys.stdout, sys.stderr))


SERVICES = frozenset({"watcher", "planner", "executor", "webhook", "prober"})
"""The commands that run a service (until stopped), as opposed to one-shot tools."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "rollout":
        return kubectl_main(argv, prog="kruisebus")
    if argv and argv[0] == "sim":
        from sim import cli_main

        return int(cli_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nats").setLevel(logging.WARNING)
    if args.command == "plan":
        return cmd_plan(args)
    if args.command == "nats-permissions":
        return cmd_nats_permissions(args)
    if args.command == "demo":
        from services.demo import demo

        return uvloop.run(demo(nodes=args.nodes))
    if args.command == "admit":
        from services.admit import main as admit_main

        return admit_main(args.file, args.with_file, seed=args.seed, now=args.now)
    if args.command == "up":
        from services.demo import up

        return uvloop.run(up(nodes=args.nodes))
    if args.command in SERVICES:  # long-running, each with its view of the cluster in memory
        from services import gcpolicy, metrics

        gcpolicy.install(on_pause=lambda gen, seconds: metrics.GC_PAUSE.labels(str(gen)).observe(seconds))
    runners: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "watcher": cmd_watcher,
        "planner": cmd_planner,
        "executor": cmd_executor,
        "webhook": cmd_webhook,
        "prober": cmd_prober,
        "events": cmd_events,
        "nats-init": cmd_nats_init,
    }
    return uvloop.run(runners[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
