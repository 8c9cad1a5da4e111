"""SimCluster: the embedded cluster (API server + nodes + scheduler) in-process, for tests and the CLI."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from sim import podnet
from sim.backend import StoreBackend
from sim.faults import Faults
from sim.http import Handler, HttpServer, Request, Response
from sim.job_controller import DEFAULT_BACKOFF, JobController
from sim.node_api import node_control_routes
from sim.node_lifecycle import NodeLifecycle
from sim.nodes import Kubelet, NodeConfig, NodeFleet
from sim.podnet import PodNet
from sim.server import ApiServer, json_response
from sim.store import Store

CONTEXT = "kruisebus-sim"


def kubeconfig_dict(url: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
    }


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]], *, timeout: float, interval: float, message: str
) -> Any:
    """Poll `predicate` (sync or async) until truthy; returns its value, raises TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


class SimCluster:
    """`async with SimCluster(nodes=3, tmpdir=tmp_path) as c:` -> c.url, c.kubeconfig_path, c.store, c.faults.

    Knobs: `pull_delay` / `start_delay` (seconds, shortcuts into `node_config`), `node_config` (NodeConfig:
    image sizes, bandwidth, capacity, events), `bookmark_interval`, `watch_history` (events kept per resource
    for watch resume; older resourceVersions get 410), `faults` (Faults, default off), `crd_dir`,
    `scheduler` (bind pending pods), `gc_dangling` (delete objects whose owners do not exist),
    `node_heartbeat` (seconds between node Lease renewals / Ready heartbeats; default off),
    `job_controller` (run batch/v1 Jobs' pods, sim/job_controller.py) and `job_backoff` (its failure
    back-off base, 10 s like kube-controller-manager; tests shorten it).
    """

    def __init__(
        self,
        nodes: int = 3,
        tmpdir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        node_config: NodeConfig | None = None,
        pull_delay: float | None = None,
        start_delay: float | None = None,
        bookmark_interval: float = 1.0,
        watch_history: int = 10000,
        faults: Faults | None = None,
        crd_dir: str | Path | None = None,
        scheduler: bool = True,
        kubeconfig_path: str | Path | None = None,
        gc_dangling: bool = True,
        events: bool | None = None,
        node_heartbeat: float | None = None,
        job_controller: bool = True,
        job_backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        self.node_count = nodes
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if tmpdir is None and kubeconfig_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kruisebus-sim-")
            tmpdir = self._tmp.name
        self.kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else Path(str(tmpdir)) / "kubeconfig"
        self.host = host
        self.port = port
        cfg = node_config or NodeConfig()
        if pull_delay is not None:
            cfg.pull_delay = pull_delay
        if start_delay is not None:
            cfg.start_delay = start_delay
        if events is not None:
            cfg.events = events
        self.node_config = cfg
        self.faults = faults or Faults()
        self.store = Store(
            crd_dir=Path(crd_dir) if crd_dir else None, watch_history=watch_history, gc_dangling=gc_dangling
        )
        self.fleet = NodeFleet(
            StoreBackend(self.store), nodes, cfg, scheduler=scheduler, heartbeat=node_heartbeat
        )
        self.node_lifecycle = NodeLifecycle(self.store, events=cfg.events)
        self.jobs = (
            JobController(self.store, backoff=job_backoff, events=cfg.events) if job_controller else None
        )
        self.api = ApiServer(
            self.store,
            faults=self.faults,
            bookmark_interval=bookmark_interval,
            node_routes=self._node_routes(),
        )
        self._http: HttpServer | None = None
        self.url = ""

    @property
    def kubelets(self) -> dict[str, Kubelet]:
        return self.fleet.kubelets

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> SimCluster:
        self._http = HttpServer(self.api.router)
        self.port = await self._http.start(self.host, self.port)
        self.url = f"http://{self.host}:{self.port}"
        await self.node_lifecycle.start()
        await self.fleet.start()
        if self.jobs is not None:
            await self.jobs.start()
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig_path.write_text(yaml.safe_dump(kubeconfig_dict(self.url), sort_keys=False))
        return self

    async def stop(self) -> None:
        if self.jobs is not None:
            await self.jobs.stop()
        await self.fleet.stop()
        await self.node_lifecycle.stop()
        self.api.closing.set()
        for b in self.store.buckets.values():
            for w in list(b.watchers):
                w.close()
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self.api.admission.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> SimCluster:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- helpers for tests

    def client_configuration(self) -> Any:
        """A kubernetes_asyncio Configuration pointing at this cluster."""
        from kubernetes_asyncio.client import Configuration

        cfg = Configuration(host=self.url)
        return cfg

    def api_client(self) -> Any:
        """A kubernetes_asyncio ApiClient for this cluster (use as `async with`)."""
        from kubernetes_asyncio.client import ApiClient

        return ApiClient(self.client_configuration())

    async def wait_for(
        self,
        predicate: Callable[[], Any | Awaitable[Any]],
        timeout: float = 30.0,
        interval: float = 0.02,
        message: str = "condition",
    ) -> Any:
        """Poll `predicate` (sync or async) until truthy; returns its value, raises TimeoutError at the deadline."""
        return await wait_until(predicate, timeout=timeout, interval=interval, message=message)

    # ---------------------------------------------------------------- /sim/nodes

    def _node_routes(self) -> list[tuple[str, str, Handler]]:
        def registry(request: Request) -> Response:
            """The simulated registry: GET it, POST {"missing": [image...], "private": {prefix: "user:pass"}}
            to add images it does not have / repositories it wants credentials for."""
            cfg = self.node_config
            if request.method == "POST":
                try:
                    body = request.json()
                    if not isinstance(body, dict) or not set(body) <= {"missing", "private"}:
                        raise ValueError("expected an object with missing and/or private")
                    missing = body.get("missing") or []
                    private = body.get("private") or {}
                    if not isinstance(missing, list) or not all(isinstance(m, str) for m in missing):
                        raise ValueError("missing: expected a list of image names")
                    if not isinstance(private, dict) or not all(isinstance(v, str) for v in private.values()):
                        raise ValueError('private: expected an object {repository prefix: "user:password"}')
                except ValueError as e:
                    return json_response({"reason": "BadRequest", "message": str(e)}, 400)
                cfg.missing_images.update(missing)
                cfg.private_images.update({str(k): str(v) for k, v in private.items()})
            return json_response(
                {"missing": sorted(cfg.missing_images), "private": sorted(cfg.private_images)}
            )

        def probes(request: Request) -> Response | Awaitable[Response]:
            ns, name = request.match_info["ns"], request.match_info["name"]
            pod = self.store.try_get(self.store.rt("pods"), ns, name)
            node = ((pod or {}).get("spec") or {}).get("nodeName")
            k = self.kubelets.get(node) if node else None
            ps = next((p for p in k.pods.values() if p.ns == ns and p.name == name), None) if k else None
            if k is None or ps is None:
                return json_response({"message": f"pod {ns}/{name} is not running on a simulated node"}, 404)
            if request.method == "GET":
                return json_response(k.probes(ps))
            try:
                body = request.json()
                if not isinstance(body, dict) or not set(body) <= {"readiness", "liveness", "custom"}:
                    raise ValueError("expected an object with readiness, liveness and/or custom")
            except ValueError as e:
                return json_response({"message": str(e)}, 400)
            wanted = body

            async def set_probes() -> Response:
                return json_response(await k.set_probes(ns, name, wanted))

            return set_probes()

        def locate(ns: str, name: str) -> tuple[PodNet, str] | None:
            pod = self.store.try_get(self.store.rt("pods"), ns, name)
            k = self.kubelets.get(((pod or {}).get("spec") or {}).get("nodeName") or "")
            if pod is None or k is None or k.net is None:
                return None
            return k.net, str(pod["metadata"]["uid"])
        return [
            *node_control_routes(
                self.fleet, lambda name: self.store.try_get(self.store.rt("nodes"), "", name) is not None
            ),
            *podnet.routes(locate),
            ("GET", "/sim/pods/{ns}/{name}/probes", probes),
            ("POST", "/sim/pods/{ns}/{name}/probes", probes),
            ("GET", "/sim/registry", registry),
            ("POST", "/sim/registry", registry),
        ]
