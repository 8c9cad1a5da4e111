"""The `kruisebus` command: one image, one CLI (DESIGN §2).

`kruisebus watcher|planner|executor` run a service (what a Pod runs); `sim` runs the embedded
cluster; `demo` and `up` run the whole stack locally; `plan` previews the planner's next pass on a
saved state; `events` follows the rollout log on NATS; `rollout status` waits for a CloneSet like
`kubectl rollout status`. uvloop is installed here and only here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

import uvloop

if TYPE_CHECKING:
    from services.bus import Bus

DEFAULT_NATS = os.environ.get("KRUISEBUS_NATS", "nats://127.0.0.1:4222")


def _common(p: argparse.ArgumentParser, *, kube: bool = True) -> None:
    p.add_argument("--nats", default=DEFAULT_NATS, help="NATS server URL (env KRUISEBUS_NATS)")
    p.add_argument("--prefix", default=os.environ.get("KRUISEBUS_PREFIX", "kb"), help="subject prefix")
    if kube:
        p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                       help="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    p.add_argument("--log-level", default=os.environ.get("KRUISEBUS_LOG_LEVEL", "INFO"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kruisebus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("watcher", help="list+watch the cluster into the state stream"))
    p = sub.add_parser("planner", help="plan CloneSet rollouts from the state stream")
    _common(p, kube=False)
    p.add_argument("--feature-gates", default="", help="Kruise feature gates, e.g. CloneSetPartitionRollback=true")
    _common(sub.add_parser("executor", help="carry out commands against the Kubernetes API"))
    sub.add_parser("sim", help="run the embedded cluster (see `kruisebus sim --help`)", add_help=False)
    p = sub.add_parser("demo", help="run the seed rollout end to end on the embedded cluster")
    p.add_argument("--nodes", type=int, default=3)
    p = sub.add_parser("up", help="run NATS, the embedded cluster and all services until Ctrl-C")
    p.add_argument("--nodes", type=int, default=3)
    p = sub.add_parser("plan", help="print the planner's next pass for a saved CloneSet and its pods")
    p.add_argument("file")
    p.add_argument("--now", default=None, help="RFC 3339 time to plan at (default: now)")
    p.add_argument("--feature-gates", default=None)
    p.add_argument("--create-limit", type=int, default=None, metavar="N",
                   help="create at most N pods, as the live planner's slow start does (default: all)")
    p = sub.add_parser("events", help="print rollout events from NATS (replayable)")
    _common(p, kube=False)
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("--workload", default=None)
    p.add_argument("--type", default=None, help="only this event type (e.g. rejected)")
    p.add_argument("--since", default=None, help="replay from this RFC 3339 time")
    p.add_argument("--from-seq", type=int, default=None, help="replay from this stream sequence")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    rollout = sub.add_parser("rollout", help="rollout commands")
    rsub = rollout.add_subparsers(dest="rollout_command", required=True)
    p = rsub.add_parser("status", help="wait until a CloneSet's rollout completes (like kubectl rollout status)")
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("--timeout", type=float, default=600.0)
    return parser


async def _serve(name: str, args: argparse.Namespace,
                 body: Callable[[Bus, asyncio.Event], Awaitable[None]]) -> int:
    """Connect, run one service body until SIGTERM/SIGINT, then shut down in order."""
    from services.bus import Bus
    from services.telemetry import setup_tracing

    provider = setup_tracing(f"kruisebus-{name}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bus = await Bus.connect(args.nats, name=f"kruisebus-{name}", prefix=args.prefix,
                            tracer_provider=provider)
    try:
        await bus.ensure_streams()
        await body(bus, stop)
    finally:
        await bus.close()
        provider.shutdown()
    return 0


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


async def cmd_watcher(args: argparse.Namespace) -> int:
    from services.kube import Kube
    from services.watcher.service import run_watcher

    kube = await Kube.connect(args.kubeconfig)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await _until_stopped(stop, run_watcher(kube, bus))

    try:
        return await _serve("watcher", args, body)
    finally:
        await kube.close()


async def cmd_executor(args: argparse.Namespace) -> int:
    from services.executor.service import run_executor
    from services.kube import Kube

    kube = await Kube.connect(args.kubeconfig)

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_executor(kube, bus, stop=stop)

    try:
        return await _serve("executor", args, body)
    finally:
        await kube.close()


async def cmd_planner(args: argparse.Namespace) -> int:
    from services.planner.cloneset.gates import DEFAULT_GATES, parse_feature_gates
    from services.planner.service import run_planner

    try:
        gates = parse_feature_gates(args.feature_gates) if args.feature_gates else DEFAULT_GATES
    except ValueError as e:
        print(f"kruisebus planner: --feature-gates: {e}", file=sys.stderr)
        return 2

    async def body(bus: Bus, stop: asyncio.Event) -> None:
        await run_planner(bus, gates=gates, stop=stop)

    return await _serve("planner", args, body)


def cmd_plan(args: argparse.Namespace) -> int:
    from services.planner import dryrun

    code, out = dryrun.run(args.file, now=args.now, feature_gates=args.feature_gates,
                           create_limit=args.create_limit)
    (sys.stdout if code == 0 else sys.stderr).write(out if out.endswith("\n") else out + "\n")
    return code


async def cmd_events(args: argparse.Namespace) -> int:
    from services.events_cli import print_events

    since = datetime.fromisoformat(args.since.replace("Z", "+00:00")) if args.since else None
    return await print_events(args.nats, prefix=args.prefix, namespace=args.namespace, workload=args.workload,
                              event_type=args.type, since=since, from_seq=args.from_seq, follow=args.follow)


async def cmd_rollout_status(args: argparse.Namespace) -> int:
    from services.rollout_status import rollout_status

    return await rollout_status(args.kubeconfig, args.namespace, args.name, timeout=args.timeout)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sim":
        from sim import cli_main

        return int(cli_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nats").setLevel(logging.WARNING)
    if args.command == "plan":
        return cmd_plan(args)
    if args.command == "demo":
        from services.demo import demo

        return uvloop.run(demo(nodes=args.nodes))
    if args.command == "up":
        from services.demo import up

        return uvloop.run(up(nodes=args.nodes))
    runners: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "watcher": cmd_watcher,
        "planner": cmd_planner,
        "executor": cmd_executor,
        "events": cmd_events,
    }
    if args.command == "rollout":
        return uvloop.run(cmd_rollout_status(args))
    return uvloop.run(runners[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
