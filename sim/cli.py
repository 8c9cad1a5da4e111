"""`python -m sim` / `kruisebus sim`: run the embedded cluster as a process."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from services import gcpolicy
from sim.cluster import SimCluster
from sim.faults import Faults
from sim.node_api import TAINT_EFFECTS
from sim.nodes import NodeConfig


def parse_labels(text: str) -> dict[str, str]:
    """`k=v,k2=v2` (what `kubelet --node-labels` takes)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise argparse.ArgumentTypeError(f"--node-labels: {part!r} is not key=value")
        out[key] = value
    return out


def parse_taints(text: str) -> list[dict[str, str]]:
    """`key=value:Effect,key:Effect` (what `kubelet --register-with-taints` takes)."""
    out: list[dict[str, str]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kv, colon, effect = part.rpartition(":")
        key, _, value = kv.partition("=")
        if not colon or not key or effect not in TAINT_EFFECTS:
            raise argparse.ArgumentTypeError(
                f"--node-taints: {part!r} is not key[=value]:Effect with Effect one of {', '.join(TAINT_EFFECTS)}"
            )
        out.append(
            {"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect}
        )
    return out


def add_node_args(p: argparse.ArgumentParser) -> None:
    """Flags of both modes: what the simulated nodes register with and how their containers run."""
    p.add_argument(
        "--node-labels", type=parse_labels, default={}, help="extra labels for every node: k=v,k2=v2"
    )
    p.add_argument(
        "--node-taints",
        type=parse_taints,
        default=[],
        help="taints every node registers with: key=value:NoSchedule,key:NoExecute",
    )
    p.add_argument(
        "--run-seconds",
        type=float,
        default=None,
        help="seconds a container of a restartPolicy Never/OnFailure pod runs before it exits "
        "(default: until deleted; the pod annotation sim.kruisebus.io/run-seconds overrides it)",
    )
    p.add_argument(
        "--crash-backoff",
        type=float,
        default=10.0,
        help="first restart back-off after a container exits, seconds",
    )


def build_parser(prog: str = "python -m sim") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="kruisebus embedded cluster: a Kubernetes API server "
        "emulator with simulated nodes and a scheduler. `%(prog)s nodes --help`: "
        "simulated nodes for an existing API server.",
    )
    p.add_argument("--nodes", type=int, default=3, help="number of simulated nodes (sim-node-0..N-1)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    p.add_argument("--port", type=int, default=0, help="port (0: chosen by the OS)")
    p.add_argument("--kubeconfig", type=Path, default=None, help="where to write the kubeconfig")
    p.add_argument(
        "--pull-delay",
        type=float,
        default=None,
        help="seconds per image pull (default: image size / bandwidth = 0.2 s)",
    )
    p.add_argument("--bandwidth", type=float, default=250.0, help="node download bandwidth, MB/s")
    p.add_argument("--image-size", type=float, default=50.0, help="default image size, MB")
    p.add_argument("--start-delay", type=float, default=0.1, help="container start time, seconds")
    p.add_argument("--max-pods", type=int, default=110, help="pods per node (allocatable)")
    p.add_argument("--bookmark-interval", type=float, default=1.0, help="seconds between watch BOOKMARKs")
    p.add_argument(
        "--watch-history",
        type=int,
        default=10000,
        help="events kept per resource for watch resume (older resourceVersions get 410)",
    )
    p.add_argument("--no-events", action="store_true", help="do not write kubelet/scheduler Events")
    p.add_argument("--pod-network", action="store_true",
                   help="loopback pod IPs (127.x.y.z) where containers listen on their ports (sim/podnet.py)")
    p.add_argument("--stop-delay", type=float, default=0.05, help="container stop time, seconds")
    p.add_argument(
        "--max-parallel-pulls", type=int, default=0, help="concurrent image pulls per node (0: no limit)"
    )
    p.add_argument("--no-scheduler", action="store_true", help="leave pending pods unbound")
    p.add_argument(
        "--job-backoff", type=float, default=10.0, help="the Job controller's failure back-off base, seconds"
    )
    add_node_args(p)
    p.add_argument("--crd-dir", type=Path, default=None, help="CRD YAML directory (default: the chart's)")
    p.add_argument("--fault-latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument("--fault-error-rate", type=float, default=0.0, help="probability a request fails")
    p.add_argument(
        "--fault-error-codes", default="500", help="comma-separated codes for failures (409,429,500)"
    )
    p.add_argument("--fault-watch-cut-after", type=int, default=None, help="close watches after N events")
    p.add_argument(
        "--fault-watch-cut-after-seconds", type=float, default=None, help="close watches after S seconds"
    )
    p.add_argument("--log-level", default="WARNING")
    return p


def cluster_from_args(args: argparse.Namespace) -> SimCluster:
    faults = Faults(
        latency={"*": args.fault_latency} if args.fault_latency else {},
        error_rate={"*": args.fault_error_rate} if args.fault_error_rate else {},
        error_codes=[int(c) for c in args.fault_error_codes.split(",") if c.strip()],
        watch_cut_after=args.fault_watch_cut_after,
        watch_cut_after_seconds=args.fault_watch_cut_after_seconds,
    )
    cfg = NodeConfig(
        pull_delay=args.pull_delay,
        bandwidth_mb_s=args.bandwidth,
        default_image_size_mb=args.image_size,
        start_delay=args.start_delay,
        max_pods=args.max_pods,
        events=not args.no_events,
        pod_network=args.pod_network,
        stop_delay=args.stop_delay,
        max_parallel_pulls=args.max_parallel_pulls,
        run_seconds=args.run_seconds,
        crash_backoff=args.crash_backoff,
        labels=args.node_labels,
        taints=args.node_taints,
    )
    kubeconfig = args.kubeconfig or Path.cwd() / "kruisebus-sim.kubeconfig"
    return SimCluster(
        nodes=args.nodes,
        host=args.host,
        port=args.port,
        node_config=cfg,
        bookmark_interval=args.bookmark_interval,
        watch_history=args.watch_history,
        faults=faults,
        crd_dir=args.crd_dir,
        scheduler=not args.no_scheduler,
        kubeconfig_path=kubeconfig,
        job_backoff=args.job_backoff,
    )


async def serve(args: argparse.Namespace) -> None:
    # a server holding many objects: the survivors of each full collection are not walked again
    # (the services' policy; each of CPython's full collections walked every stored dict)
    gcpolicy.install()
    cluster = cluster_from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await cluster.start()
    try:
        print(
            json.dumps(
                {
                    "url": cluster.url,
                    "kubeconfig": str(cluster.kubeconfig_path.resolve()),
                    "context": "kruisebus-sim",
                    "nodes": args.nodes,
                }
            ),
            flush=True,
        )
        await stop.wait()
    finally:
        await cluster.stop()


def build_nodes_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{prog} nodes",
        description="Give an existing API server simulated "
        "nodes (kwok-style kubelets) through its public API.",
    )
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument("--context", default=None)
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--name-prefix", default="sim-node-")
    p.add_argument(
        "--scheduler",
        action="store_true",
        help="also bind pending pods (only for API servers without a scheduler)",
    )
    p.add_argument("--pull-delay", type=float, default=None)
    p.add_argument("--start-delay", type=float, default=0.1)
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--no-events", action="store_true")
    p.add_argument(
        "--control-port",
        type=int,
        default=None,
        help="serve the node control API (POST/DELETE /sim/nodes, POST /sim/pods/NS/NAME/exit) on "
        "127.0.0.1:PORT (0: any free port); off by default",
    )
    add_node_args(p)
    p.add_argument("--pod-network", action="store_true")
    p.add_argument("--log-level", default="WARNING")
    return p


async def serve_nodes(args: argparse.Namespace) -> None:
    from sim.kubeconfig import backend_from_kubeconfig
    from sim.nodes import NodeFleet

    gcpolicy.install()
    backend = backend_from_kubeconfig(args.kubeconfig, args.context)
    cfg = NodeConfig(
        pull_delay=args.pull_delay,
        start_delay=args.start_delay,
        max_pods=args.max_pods,
        events=not args.no_events,
        run_seconds=args.run_seconds,
        crash_backoff=args.crash_backoff,
        labels=args.node_labels,
        taints=args.node_taints,
        pod_network=args.pod_network,
    )
    fleet = NodeFleet(
        backend, args.count, cfg, scheduler=args.scheduler, name_prefix=args.name_prefix, heartbeat=10.0
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await fleet.start()
    control = None
    ready: dict[str, Any] = {"server": backend.server, "nodes": sorted(fleet.kubelets)}
    try:
        if args.control_port is not None:
            from sim.http import HttpServer, Router
            from sim.node_api import node_control_routes

            router = Router()
            for method, path, fn in node_control_routes(fleet):
                router.add(method, path, fn)
            control = HttpServer(router)
            ready["control"] = f"http://127.0.0.1:{await control.start('127.0.0.1', args.control_port)}"
        print(json.dumps(ready), flush=True)
        await stop.wait()
    finally:
        if control is not None:
            await control.close()
        await fleet.stop()
        await backend.close()


def cli_main(argv: list[str] | None = None, prog: str = "python -m sim") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["nodes"]:
        nargs = build_nodes_parser(prog).parse_args(argv[1:])
        logging.basicConfig(
            level=nargs.log_level.upper(),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        _run(serve_nodes(nargs))
        return 0
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _run(serve(args))
    return 0


def _run(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the sim does not need it
        asyncio.run(coro)
    else:
        uvloop.run(coro)
