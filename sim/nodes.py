"""Simulated nodes: kubelets (image cache, pulls, container starts/restarts, readiness) and a scheduler.

They act only through a `Backend` (the public pod/node/event API), so the same code can drive the
in-process store (`StoreBackend`, fast) or any API server over HTTP (`sim.http_backend.HttpBackend`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.constants import (
    CONDITION_CONTAINERS_READY,
    CONDITION_INITIALIZED,
    CONDITION_POD_SCHEDULED,
    CONDITION_READY,
)
from sim.errors import ApiError
from sim.events import event_body
from sim.placement import filter_reason, unschedulable_message
from sim.podnet import PodNet
from sim.store import now_iso

log = logging.getLogger("sim.nodes")

# Per-pod knobs (annotations) for tests: force readiness off, override start delay.
ANNOTATION_READY = "sim.kruisebus.io/ready"  # "false": containers never become ready (failing probe)
ANNOTATION_START_DELAY = "sim.kruisebus.io/start-delay"  # seconds, overrides NodeConfig.start_delay
ANNOTATION_STOP_DELAY = "sim.kruisebus.io/stop-delay"  # seconds a container takes to stop (restart/delete)
# probe outcomes, JSON: {"readiness": bool | {container: bool}, "liveness": bool | {container: bool},
#  "custom": {probe name: bool}}; the runtime API POST /sim/pods/{ns}/{name}/probes overrides it
ANNOTATION_PROBES = "sim.kruisebus.io/probes"
# Run to completion: the containers of a pod with this annotation (or, for restartPolicy Never/OnFailure,
# NodeConfig.run_seconds) exit that many seconds after they started, with the exit code of
# ANNOTATION_EXIT_CODE (default 0); the restart policy decides what follows (Job pods set them on the
# Job's pod template). The runtime API POST /sim/pods/{ns}/{name}/exit ends them at once.
ANNOTATION_RUN_SECONDS = "sim.kruisebus.io/run-seconds"
ANNOTATION_EXIT_CODE = "sim.kruisebus.io/exit-code"


def _probe_ok(spec: Any, container: str) -> bool:
    """A readiness/liveness entry: a bool for every container or a {container: bool} map (missing: ok)."""
    if isinstance(spec, bool):
        return spec
    if isinstance(spec, dict):
        v = spec.get(container, spec.get("*", True))
        return v is not False and str(v).lower() not in ("false", "failure", "failed")
    return True


# The simulated registry has every image except these: a name containing MISSING_IMAGE_MARKER, or one
# listed in NodeConfig.missing_images (settable through POST /sim/registry).
MISSING_IMAGE_MARKER = "does-not-exist"


class PullFailed(Exception):
    """The simulated registry refused a pull: `reason` is "not-found" or "unauthorized", `message`
    what containerd says (the kubelet puts it in the `Failed` Event and the container's waiting state)."""

    def __init__(self, image: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.image = image
        self.reason = reason
        self.message = message


def image_id(image: str) -> str:
    """`<image>@sha256:<sha256 of the image name>`: deterministic, changes whenever the image does."""
    return f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


@dataclass
class NodeConfig:
    pull_delay: float | None = None  # fixed seconds per pull; None: image size / bandwidth
    bandwidth_mb_s: float = 250.0  # node download bandwidth (MB/s)
    default_image_size_mb: float = 50.0  # 50 MB at 250 MB/s = 0.2 s per pull
    image_sizes_mb: dict[str, float] = field(default_factory=dict)  # image -> size (MB)
    start_delay: float = 0.1  # container start (and readiness) time after the image is present
    stop_delay: float = 0.05  # container stop time (deletion, and the old container of an in-place restart)
    max_parallel_pulls: int = (
        0  # image pulls a node runs at once (kubelet maxParallelImagePulls); 0: no limit
    )
    preloaded_images: list[str] = field(default_factory=list)
    missing_images: set[str] = field(default_factory=set)  # images the simulated registry does not have
    # repository prefix -> "user:password" the registry asks for; checked on the control API's pulls
    # (POST /sim/nodes/{node}/images), not on pods' (the simulated kubelet reads no pull secrets)
    private_images: dict[str, str] = field(default_factory=dict)
    pull_backoff: float = 1.0  # seconds between a pod's failed pull attempts (ErrImagePull, ImagePullBackOff)
    cpu: str = "8"
    memory: str = "32Gi"
    max_pods: int = 110
    # seconds a container of a restartPolicy Never/OnFailure pod runs before it exits (None: until deleted)
    run_seconds: float | None = None
    crash_backoff: float = 10.0  # kubelet's restart back-off after an exit: 0, then 10 s doubling to 300 s
    labels: dict[str, str] = field(default_factory=dict)  # extra labels for every node
    taints: list[dict[str, Any]] = field(default_factory=list)  # spec.taints for every node at registration
    events: bool = True  # write Kubernetes Events (Scheduled, Pulling, Pulled, Created, Started, Killing)
    pod_network: bool = False  # loopback pod IPs with real container listeners (sim/podnet.py)

    def image_size_bytes(self, image: str) -> int:
        return int(self.image_sizes_mb.get(image, self.default_image_size_mb) * 1024 * 1024)

    def refusal(
        self, image: str, credentials: str | None = None, *, check_auth: bool = False
    ) -> PullFailed | None:
        """Why the simulated registry would refuse to serve `image` (None: it serves it)."""
        if MISSING_IMAGE_MARKER in image or image in self.missing_images:
            return PullFailed(
                image,
                "not-found",
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": {image}: not found',
            )
        if check_auth:
            for prefix, wanted in self.private_images.items():
                if image.startswith(prefix) and credentials != wanted:
                    return PullFailed(
                        image,
                        "unauthorized",
                        f'rpc error: code = Unknown desc = failed to pull and unpack image "{image}": '
                        f'failed to resolve reference "{image}": pulling from host {prefix.split("/")[0]} '
                        "failed with status code: 401 Unauthorized",
                    )
        return None

    def pull_seconds(self, image: str) -> float:
        if self.pull_delay is not None:
            return self.pull_delay
        size = self.image_sizes_mb.get(image, self.default_image_size_mb)
        return size / self.bandwidth_mb_s if self.bandwidth_mb_s > 0 else 0.0


class Backend(Protocol):
    def watch_pods(self) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...
    def watch_nodes(self) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...
    async def upsert_node(self, node: dict[str, Any]) -> None: ...
    async def patch_node_status(self, name: str, patch: dict[str, Any]) -> None: ...
    async def patch_pod_status(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...
    async def delete_pod(self, ns: str, name: str, uid: str) -> None: ...
    async def delete_node(self, name: str) -> None: ...
    async def bind(self, ns: str, name: str, node: str) -> None: ...
    async def create_event(self, ns: str, event: dict[str, Any]) -> None: ...
    async def renew_lease(self, node: str, duration: int) -> None: ...


@dataclass
class Container:
    image: str
    image_id: str
    container_id: str
    restart_count: int
    started_at: str
    ready: bool = False
    started: bool = False
    exit_code: int | None = None  # set once the container has exited (run to completion)
    finished_at: str = ""
    last_state: dict[str, Any] | None = None  # lastState of the status (the previous container's end)
    waiting: str = ""  # "CrashLoopBackOff" while the kubelet waits to restart an exited container

    def terminated(self) -> dict[str, Any]:
        assert self.exit_code is not None
        return {
            "exitCode": self.exit_code,
            "reason": "Completed" if self.exit_code == 0 else "Error",
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }


@dataclass
class PodState:
    uid: str
    ns: str
    name: str
    pod: dict[str, Any]
    ip: str
    containers: dict[str, Container] = field(default_factory=dict)
    actions: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    terminating: asyncio.Task[None] | None = None
    start_time: str = field(default_factory=now_iso)
    publish_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    init_done: dict[str, Container] = field(default_factory=dict)  # init containers that completed
    # container -> (reason, message) while its image pull fails (ErrImagePull, ImagePullBackOff)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    initialized: bool = False
    # `pod` is the last watch event: the spec the kubelet has acted on. What the kubelet last wrote is
    # kept apart (`reported`, as sent), and never the answer of that write: the answer can carry a
    # newer spec (an image patch that landed just before) whose own watch event would then look handled.
    reported: dict[str, Any] | None = None
    echo: dict[str, Any] | None = None  # the answer of the last write (in-process: its own watch event)
    exit_requests: dict[str, int] = field(default_factory=dict)  # exit API calls for unstarted containers


def _waiting(failed: tuple[str, str] | None) -> dict[str, str]:
    if failed is None:
        return {"reason": "ContainerCreating"}
    return {"reason": failed[0], "message": failed[1]}


def _cond(conds: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    for c in conds:
        if c.get("type") == type_:
            return c
    return None


class Kubelet:
    def __init__(
        self,
        name: str,
        index: int,
        backend: Backend,
        cfg: NodeConfig,
        *,
        labels: dict[str, str] | None = None,
        taints: list[dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.index = index
        self.labels = {**cfg.labels, **(labels or {})}  # on top of the kubelet's own (hostname, os, ...)
        self.taints = list(cfg.taints if taints is None else taints)  # registered with the node
        self.backend = backend
        self.cfg = cfg
        self.ip = f"10.0.{index // 250}.{index % 250 + 2}"
        self.images: dict[str, str] = {img: image_id(img) for img in cfg.preloaded_images}
        self._pulls: dict[str, asyncio.Task[str]] = {}
        self.pods: dict[str, PodState] = {}
        # (namespace, name) -> the uid `pod` last found for it: an exec probe looks its pod up by name,
        # a thousand times a second at 10,000 pods, and a scan of the node's pods each time would be
        # the busiest code of the node (checked against `pods` on use, so it is never wrong)
        self._uid_by_name: dict[tuple[str, str], str] = {}
        self._ip_counter = itertools.count(2)
        self.pull_count = 0
        self.stopped = False
        self._pull_slots = asyncio.Semaphore(cfg.max_parallel_pulls) if cfg.max_parallel_pulls > 0 else None
        self.pulls_active = 0  # pulls downloading right now (<= max_parallel_pulls)
        self.pulls_waiting = 0  # pulls queued for a slot
        self.max_pulls_seen = 0
        # What a benchmark or test asserts from the kubelet's own record, not from status: every pull
        # that ran (image, start, end on the loop clock) and every container start that had to wait for
        # an image that was not on the node yet (pod, container, image, seconds waited).
        self.pull_log: list[tuple[str, float, float]] = []
        self.pull_waits: list[tuple[str, str, str, float]] = []
        self.probe_overrides: dict[str, dict[str, Any]] = {}  # pod uid -> probes set via the runtime API
        self.net = PodNet(index) if cfg.pod_network else None
        self.pull_failures = 0  # pulls the registry refused
        self._pull_clock: dict[str, tuple[float, float]] = {}  # image downloading -> (start, seconds)
        # pod uid -> container ("*": any) -> exec outcome set via the runtime API
        self.exec_outcomes: dict[str, dict[str, dict[str, Any]]] = {}
        self.exec_calls: list[dict[str, Any]] = []  # every exec run: {namespace, pod, container, command}

    def tasks(self) -> list[asyncio.Task[Any]]:
        out: list[asyncio.Task[Any]] = list(self._pulls.values())
        for ps in self.pods.values():
            out.extend(ps.actions.values())
            if ps.terminating is not None:
                out.append(ps.terminating)
        return out

    # ---------------------------------------------------------------- node object

    def node_object(self) -> dict[str, Any]:
        cap = {
            "cpu": self.cfg.cpu,
            "memory": self.cfg.memory,
            "pods": str(self.cfg.max_pods),
            "ephemeral-storage": "100Gi",
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                    "type": "kruisebus-sim",
                    **self.labels,
                },
            },
            "spec": {
                "podCIDR": f"10.244.{self.index}.0/24",
                "podCIDRs": [f"10.244.{self.index}.0/24"],
                **({"taints": [dict(t) for t in self.taints]} if self.taints else {}),
            },
            "status": {
                "capacity": cap,
                "allocatable": dict(cap),
                "conditions": [
                    self._node_cond(t, s, r)
                    for t, s, r in (
                        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                        ("PIDPressure", "False", "KubeletHasSufficientPID"),
                        ("Ready", "True", "KubeletReady"),
                    )
                ],
                "addresses": [
                    {"type": "InternalIP", "address": self.ip},
                    {"type": "Hostname", "address": self.name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": hashlib.md5(self.name.encode()).hexdigest(),
                    "systemUUID": hashlib.md5(self.name.encode()).hexdigest(),
                    "bootID": secrets.token_hex(16),
                    "kernelVersion": "6.1.0-sim",
                    "osImage": "kruisebus sim",
                    "containerRuntimeVersion": "sim://1.0.0",
                    "kubeletVersion": "v1.32.0-sim",
                    "kubeProxyVersion": "v1.32.0-sim",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
                "images": self._images_status(),
            },
        }

    @staticmethod
    def _node_cond(type_: str, status: str, reason: str) -> dict[str, Any]:
        t = now_iso()
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": f"kubelet: {reason}",
            "lastHeartbeatTime": t,
            "lastTransitionTime": t,
        }

    def _images_status(self) -> list[dict[str, Any]]:
        return [
            {
                "names": [iid, img],
                "sizeBytes": self.cfg.image_size_bytes(img),
            }
            for img, iid in sorted(self.images.items())
        ]

    # ---------------------------------------------------------------- images

    def has_image(self, image: str) -> bool:
        return image in self.images

    def pulls_in_progress(self) -> list[str]:
        """Images being pulled (downloading, or queued for a pull slot)."""
        return sorted(self._pulls)

    def pull_percent(self, image: str) -> int | None:
        """How far the download of `image` is (0-100), None when it is not downloading."""
        clock = self._pull_clock.get(image)
        if clock is None:
            return None
        start, seconds = clock
        elapsed = asyncio.get_running_loop().time() - start
        return 100 if seconds <= 0 else min(99, int(100 * elapsed / seconds))

    async def pull_image(
        self, image: str, credentials: str | None = None, *, check_auth: bool = False
    ) -> str:
        """Pull (or join the pull in progress); returns the image ID. The runtime seam uses this too.
        Raises PullFailed, at once, for an image the simulated registry refuses."""
        if image in self.images:
            return self.images[image]
        refused = self.cfg.refusal(image, credentials, check_auth=check_auth)
        if refused is not None:
            self.pull_failures += 1
            raise refused
        task = self._pulls.get(image)
        if task is None:
            task = asyncio.ensure_future(self._pull(image))
            self._pulls[image] = task
        return await asyncio.shield(task)

    async def _pull(self, image: str) -> str:
        try:
            if self._pull_slots is not None:
                self.pulls_waiting += 1
                try:
                    await self._pull_slots.acquire()
                finally:
                    self.pulls_waiting -= 1
            self.pulls_active += 1
            self.max_pulls_seen = max(self.max_pulls_seen, self.pulls_active)
            seconds = self.cfg.pull_seconds(image)
            started = asyncio.get_running_loop().time()
            self._pull_clock[image] = (started, seconds)
            try:
                await asyncio.sleep(seconds)
            finally:
                self._pull_clock.pop(image, None)
                self.pulls_active -= 1
                if self._pull_slots is not None:
                    self._pull_slots.release()
            self.images[image] = image_id(image)
            self.pull_count += 1
            self.pull_log.append((image, started, asyncio.get_running_loop().time()))
            try:
                await self.backend.patch_node_status(self.name, {"status": {"images": self._images_status()}})
            except ApiError as e:
                log.debug("node %s image status: %s", self.name, e)
            return self.images[image]
        finally:
            self._pulls.pop(image, None)

    # ---------------------------------------------------------------- pods

    async def on_pod(self, type_: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if type_ == "DELETED":
            ps = self.pods.pop(uid, None)
            self.probe_overrides.pop(uid, None)
            if self.net is not None:
                self.net.release(uid)
            self.exec_outcomes.pop(uid, None)
            if ps:
                if self._uid_by_name.get((ps.ns, ps.name)) == uid:
                    del self._uid_by_name[(ps.ns, ps.name)]
                for t in ps.actions.values():
                    t.cancel()
            return
        ps = self.pods.get(uid)
        if (
            ps is not None
            and pod is not ps.pod
            and type_ == "MODIFIED"
            and not meta.get("deletionTimestamp")
            and pod.get("spec") == ps.pod.get("spec")
            and pod.get("status") == ps.pod.get("status")
            and meta.get("annotations") == ps.pod["metadata"].get("annotations")
        ):
            ps.pod = pod  # e.g. a label change: nothing for the kubelet to do
            return
        if ps is None:
            ps = PodState(
                uid,
                meta.get("namespace", ""),
                meta["name"],
                pod,
                ip=self.net.allocate(uid) if self.net is not None
                else f"10.244.{self.index}.{next(self._ip_counter) % 250 + 2}",
            )
            self.pods[uid] = ps
        old_ann = ps.pod["metadata"].get("annotations") or {}
        ps.pod = pod
        new_ann = meta.get("annotations") or {}
        probes_changed = any(old_ann.get(k) != new_ann.get(k) for k in (ANNOTATION_PROBES, ANNOTATION_READY))
        if meta.get("deletionTimestamp"):
            if ps.terminating is None:
                for t in ps.actions.values():
                    t.cancel()
                ps.terminating = asyncio.ensure_future(self._terminate(ps))
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        if not ps.initialized:
            if (pod.get("spec") or {}).get("initContainers"):
                if "$init" not in ps.actions:
                    ps.actions["$init"] = asyncio.ensure_future(self._run_init(ps))
                await self._publish(ps)
                return
            ps.initialized = True
        if probes_changed and ps.containers:
            before = dict(self.probes(ps))
            try:
                before.update(json.loads(old_ann.get(ANNOTATION_PROBES) or "{}"))
            except ValueError:
                pass
            for cname, c in ps.containers.items():
                if c.started:
                    c.ready = self._ready(ps, cname)
            after = self.probes(ps)
            for cname in ps.containers:
                if (
                    not _probe_ok(after.get("liveness", True), cname)
                    and _probe_ok(before.get("liveness", True), cname)
                    and cname not in ps.actions
                ):
                    ps.actions[cname] = asyncio.ensure_future(self._run_container(ps, cname, restart=True))
        fresh = not ps.containers
        for c in (pod.get("spec") or {}).get("containers") or []:
            cur = ps.containers.get(c["name"])
            if (cur is None or cur.image != c.get("image")) and c["name"] not in ps.actions:
                ps.actions[c["name"]] = asyncio.ensure_future(self._run_container(ps, c["name"]))
            if not self.has_image(str(c.get("image", ""))):
                fresh = False
        if fresh and not self.cfg.events and ps.actions:
            return  # images present: the containers are created right away and that write carries it all
        await self._publish(ps)

    async def _run_init(self, ps: PodState) -> None:
        """Init containers run one after the other to completion before the app containers start."""
        try:
            for c in (ps.pod.get("spec") or {}).get("initContainers") or []:
                image = str(c.get("image", ""))
                iid = await self._pull_for(ps, str(c["name"]), image, init=True)
                assert iid is not None
                ps.init_done[c["name"]] = Container(
                    image=image,
                    image_id=iid,
                    container_id=f"sim://{secrets.token_hex(32)}",
                    restart_count=0,
                    started_at=now_iso(),
                )
                await asyncio.sleep(self._start_delay(ps))
            ps.initialized = True
        except asyncio.CancelledError:
            return
        finally:
            if ps.actions.get("$init") is asyncio.current_task():
                del ps.actions["$init"]
        if not self.stopped and ps.terminating is None and self.pods.get(ps.uid) is ps:
            await self.on_pod("MODIFIED", ps.pod)

    def _spec_container(self, ps: PodState, name: str) -> dict[str, Any] | None:
        for c in (ps.pod.get("spec") or {}).get("containers") or []:
            if c.get("name") == name:
                return dict(c)
        return None

    def _stop_delay(self, ps: PodState) -> float:
        v = (ps.pod["metadata"].get("annotations") or {}).get(ANNOTATION_STOP_DELAY)
        try:
            return max(float(v), 0.0) if v is not None else self.cfg.stop_delay
        except ValueError:
            return self.cfg.stop_delay

    def probes(self, ps: PodState) -> dict[str, Any]:
        """Effective probe outcomes: the annotation, overridden key by key by the runtime API."""
        out: dict[str, Any] = {}
        raw = (ps.pod["metadata"].get("annotations") or {}).get(ANNOTATION_PROBES)
        if raw:
            try:
                parsed = json.loads(raw)
                if isinstance(parsed, dict):
                    out.update(parsed)
            except ValueError:
                log.debug("pod %s/%s: bad %s annotation", ps.ns, ps.name, ANNOTATION_PROBES)
        out.update(self.probe_overrides.get(ps.uid) or {})
        return out

    def _ready(self, ps: PodState, name: str) -> bool:
        if (ps.pod["metadata"].get("annotations") or {}).get(ANNOTATION_READY) == "false":
            return False
        return _probe_ok(self.probes(ps).get("readiness", True), name)

    async def set_probes(self, ns: str, name: str, probes: dict[str, Any]) -> dict[str, Any] | None:
        """Runtime API: set probe outcomes of a pod on this node (readiness/liveness/custom)."""
        ps = self.pod(ns, name)
        if ps is None:
            return None
        before = self.probes(ps)
        cur = self.probe_overrides.setdefault(ps.uid, {})
        for k, v in probes.items():
            if k == "custom" and isinstance(v, dict):
                cur["custom"] = {**(cur.get("custom") or before.get("custom") or {}), **v}
            else:
                cur[k] = v
        await self.apply_probes(ps, before)
        return self.probes(ps)

    async def apply_probes(self, ps: PodState, before: dict[str, Any]) -> None:
        after = self.probes(ps)
        for cname, c in ps.containers.items():
            if c.started:
                c.ready = self._ready(ps, cname)
            if not _probe_ok(after.get("liveness", True), cname) and _probe_ok(
                before.get("liveness", True), cname
            ):
                # a failing liveness probe: the kubelet kills and restarts the container (same image)
                if cname not in ps.actions and ps.terminating is None:
                    ps.actions[cname] = asyncio.ensure_future(self._run_container(ps, cname, restart=True))
        await self._publish(ps)

    def _start_delay(self, ps: PodState) -> float:
        v = (ps.pod["metadata"].get("annotations") or {}).get(ANNOTATION_START_DELAY)
        try:
            return float(v) if v is not None else self.cfg.start_delay
        except ValueError:
            return self.cfg.start_delay

    async def _run_container(self, ps: PodState, name: str, restart: bool = False) -> None:
        cancelled = False
        try:
            while True:
                spec = self._spec_container(ps, name)
                if spec is None or ps.terminating is not None:
                    return
                desired = str(spec.get("image", ""))
                cur = ps.containers.get(name)
                if cur is not None and cur.image == desired and not restart:
                    return
                restart = False
                if not self.has_image(desired):
                    await self._event(ps, name, "Normal", "Pulling", f'Pulling image "{desired}"')
                    t0 = asyncio.get_running_loop().time()
                    pulled = await self._pull_for(ps, name, desired)
                    if pulled is None:
                        continue  # the spec moved on while the pull was failing
                    iid = pulled
                    took = asyncio.get_running_loop().time() - t0
                    await self._event(
                        ps, name, "Normal", "Pulled", f'Successfully pulled image "{desired}" in {took:.3f}s'
                    )
                else:
                    iid = self.images[desired]
                    await self._event(
                        ps,
                        name,
                        "Normal",
                        "Pulled",
                        f'Container image "{desired}" already present on machine',
                    )
                spec = self._spec_container(ps, name)
                if spec is None or ps.terminating is not None:
                    return
                if str(spec.get("image", "")) != desired:
                    continue  # the spec moved on while we pulled
                last: dict[str, Any] | None = None
                if cur is not None and cur.exit_code is not None:
                    last = {"terminated": cur.terminated()}  # it exited: nothing to stop
                elif cur is not None:
                    last = {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "finishedAt": cur.started_at,
                            "startedAt": ps.start_time,
                        }
                    }
                    why = "definition changed" if cur.image != desired else "failed liveness probe"
                    await self._event(
                        ps, name, "Normal", "Killing", f"Container {name} {why}, will be restarted"
                    )
                    # The old container stops first, then the new one is created. No status write
                    # while it stops: a kubelet's pod worker is inside the sync that kills and starts
                    # the containers, so what it last wrote (the old container, as its prober last
                    # saw it) stands until the new container exists.
                    if self.net is not None:
                        self.net.container_stopped(ps.uid, name)
                    stop = self._stop_delay(ps)
                    if stop > 0:
                        await asyncio.sleep(stop)
                    if ps.terminating is not None:
                        return
                ps.containers[name] = Container(
                    image=desired,
                    image_id=iid,
                    container_id=f"sim://{secrets.token_hex(32)}",
                    restart_count=0 if cur is None else cur.restart_count + 1,
                    started_at=now_iso(),
                    last_state=last,
                )
                await self._event(ps, name, "Normal", "Created", f"Created container {name}")
                await self._publish(ps)
                await asyncio.sleep(self._start_delay(ps))
                c = ps.containers.get(name)
                if c is None or ps.terminating is not None:
                    return
                c.started = True
                c.ready = self._ready(ps, name)
                if self.net is not None and (running := self._spec_container(ps, name)) is not None:
                    await self.net.container_started(ps.uid, running)
                await self._event(ps, name, "Normal", "Started", f"Started container {name}")
                await self._publish(ps)
                secs = self._run_seconds(ps)
                if name in ps.exit_requests:
                    code = ps.exit_requests.pop(name)
                    if name + "$stop" not in ps.actions:
                        ps.actions[name + "$stop"] = asyncio.ensure_future(self._exit_task(ps, name, code))
                elif secs is not None:
                    key = name + "$exit"
                    prev = ps.actions.pop(key, None)
                    if prev is not None:
                        prev.cancel()
                    ps.actions[key] = asyncio.ensure_future(self._run_to_exit(ps, name, c.container_id, secs))
        except asyncio.CancelledError:
            cancelled = True
        except ApiError as e:
            log.debug("pod %s/%s container %s: %s", ps.ns, ps.name, name, e)
        except Exception:
            log.exception("kubelet %s: pod %s/%s container %s", self.name, ps.ns, ps.name, name)
        finally:
            task = ps.actions.get(name)
            if task is asyncio.current_task():
                del ps.actions[name]
            if not cancelled and not self.stopped and ps.terminating is None and self.pods.get(ps.uid) is ps:
                # the spec may have changed after our last check: look again
                spec = self._spec_container(ps, name)
                cur = ps.containers.get(name)
                if (
                    spec is not None
                    and (cur is None or cur.image != spec.get("image"))
                    and name not in ps.actions
                ):
                    ps.actions[name] = asyncio.ensure_future(self._run_container(ps, name))

    async def _pull_for(self, ps: PodState, name: str, image: str, *, init: bool = False) -> str | None:
        """A pod's pull, retried as the kubelet does while the registry refuses it: the container waits
        in ErrImagePull, then ImagePullBackOff, with the kubelet's Events, until a pull succeeds, the
        pod goes away (which cancels this) or an app container's spec names another image (None)."""
        while True:
            spec = None if init else self._spec_container(ps, name)
            if not init and (spec is None or str(spec.get("image", "")) != image):
                ps.waiting.pop(name, None)
                return None
            try:
                present = image in self.images
                t0 = asyncio.get_running_loop().time()
                iid = await self.pull_image(image)
                if not present:
                    waited = asyncio.get_running_loop().time() - t0
                    self.pull_waits.append((f"{ps.ns}/{ps.name}", name, image, waited))
                ps.waiting.pop(name, None)
                return iid
            except PullFailed as e:
                ps.waiting[name] = ("ErrImagePull", e.message)
                await self._event(
                    ps, name, "Warning", "Failed", f'Failed to pull image "{image}": {e.message}'
                )
                await self._event(ps, name, "Warning", "Failed", "Error: ErrImagePull")
                await self._publish(ps)
                await asyncio.sleep(self.cfg.pull_backoff)
                ps.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
                await self._event(ps, name, "Normal", "BackOff", f'Back-off pulling image "{image}"')
                await self._publish(ps)
                await asyncio.sleep(self.cfg.pull_backoff)

    # ---------------------------------------------------------------- exec (probes)

    def exec_outcome(self, uid: str, container: str) -> dict[str, Any]:
        per_pod = self.exec_outcomes.get(uid) or {}
        return dict(per_pod.get(container) or per_pod.get("*") or {})

    def set_exec_outcomes(
        self, ns: str, name: str, outcomes: dict[str, dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Runtime API: what exec in a pod's containers answers, per container ("*": any container)."""
        ps = self.pod(ns, name)
        if ps is None:
            return None
        cur = self.exec_outcomes.setdefault(ps.uid, {})
        cur.update(outcomes)
        return dict(cur)

    def pod(self, ns: str, name: str) -> PodState | None:
        """The pod `ns/name` on this node: the first one the node took on under that name (a pod being
        deleted and its namesake both here: the old one, as a scan in insertion order finds it)."""
        uid = self._uid_by_name.get((ns, name))
        ps = self.pods.get(uid) if uid is not None else None
        if ps is not None and ps.ns == ns and ps.name == name:
            return ps
        ps = next((p for p in self.pods.values() if p.ns == ns and p.name == name), None)
        if ps is None:
            self._uid_by_name.pop((ns, name), None)
        else:
            self._uid_by_name[(ns, name)] = ps.uid
        return ps

    async def exec_sync(
        self, ns: str, name: str, container: str, command: list[str], timeout: float
    ) -> dict[str, Any]:
        """Run a command in a container (an exec probe): answers with the outcome set for it (default:
        exit 0, no output); `hang` never finishes, so it times out. Raises LookupError, naming what is
        missing, for a pod, container or container not running here."""
        ps = self.pod(ns, name)
        if ps is None:
            raise LookupError(f"pod {ns}/{name} is not running on node {self.name}")
        c = ps.containers.get(container)
        if c is None or not c.started:
            names = [str(x.get("name")) for x in (ps.pod.get("spec") or {}).get("containers") or []]
            if container not in names:
                raise LookupError(f'container "{container}" not found in pod {ns}/{name}')
            raise LookupError(f'container "{container}" of pod {ns}/{name} is not running')
        out = self.exec_outcome(ps.uid, container)
        self.exec_calls.append(
            {"namespace": ns, "pod": name, "container": container, "command": list(command)}
        )
        delay = float(out.get("delay", 0.0))
        if out.get("hang") or delay > timeout:
            await asyncio.sleep(timeout)
            return {"exitCode": -1, "stdout": "", "stderr": "", "timedOut": True}
        if delay > 0:
            await asyncio.sleep(delay)
        return {
            "exitCode": int(out.get("exitCode", 0)),
            "stdout": str(out.get("stdout", "")),
            "stderr": str(out.get("stderr", "")),
            "timedOut": False,
        }

    # ---------------------------------------------------------------- run to completion

    def _run_seconds(self, ps: PodState) -> float | None:
        """How long a container runs before it exits: the annotation, else NodeConfig.run_seconds for
        restartPolicy Never/OnFailure pods; None: it runs until the pod is deleted."""
        v = (ps.pod["metadata"].get("annotations") or {}).get(ANNOTATION_RUN_SECONDS)
        if v is not None:
            try:
                return max(float(v), 0.0)
            except ValueError:
                log.warning("pod %s/%s: %s is not a number: %r", ps.ns, ps.name, ANNOTATION_RUN_SECONDS, v)
                return None
        if (ps.pod.get("spec") or {}).get("restartPolicy") in ("Never", "OnFailure"):
            return self.cfg.run_seconds
        return None

    def _exit_code(self, ps: PodState) -> int:
        v = (ps.pod["metadata"].get("annotations") or {}).get(ANNOTATION_EXIT_CODE)
        try:
            return int(v) if v is not None else 0
        except ValueError:
            log.warning("pod %s/%s: %s is not an integer: %r", ps.ns, ps.name, ANNOTATION_EXIT_CODE, v)
            return 0

    async def _run_to_exit(self, ps: PodState, name: str, container_id: str, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
            c = ps.containers.get(name)
            if c is not None and c.container_id == container_id and ps.terminating is None:
                await self.exit_container(ps, name, self._exit_code(ps))
        except asyncio.CancelledError:
            pass
        except ApiError as e:
            log.debug("pod %s/%s container %s exit: %s", ps.ns, ps.name, name, e)
        finally:
            if ps.actions.get(name + "$exit") is asyncio.current_task():
                del ps.actions[name + "$exit"]

    async def exit_container(self, ps: PodState, name: str, code: int) -> bool:
        """The container's process ends with `code`; the restart policy decides what the kubelet does:
        Always restarts it, OnFailure restarts it after a failure, Never leaves it terminated (the pod is
        then Succeeded or Failed once no container runs). Restarts back off like the kubelet's
        (immediately, then `crash_backoff` seconds doubling up to 300 s; CrashLoopBackOff meanwhile)."""
        c = ps.containers.get(name)
        if c is None or c.exit_code is not None or not c.started or ps.terminating is not None:
            return False
        timer = ps.actions.get(name + "$exit")
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
            del ps.actions[name + "$exit"]
        c.exit_code, c.finished_at, c.ready, c.started = code, now_iso(), False, False
        policy = (ps.pod.get("spec") or {}).get("restartPolicy") or "Always"
        if not (policy == "Always" or (policy == "OnFailure" and code != 0)):
            await self._publish(ps)
            return True
        delay = (
            0.0 if c.restart_count == 0 else min(self.cfg.crash_backoff * 2 ** (c.restart_count - 1), 300.0)
        )
        if delay > 0:
            c.waiting = "CrashLoopBackOff"
            await self._event(ps, name, "Warning", "BackOff", "Back-off restarting failed container")
            await self._publish(ps)
            await asyncio.sleep(delay)
            if ps.terminating is not None or ps.containers.get(name) is not c:
                return True
        if name not in ps.actions:
            ps.actions[name] = asyncio.ensure_future(self._run_container(ps, name, restart=True))
        return True

    async def exit_pod(self, ns: str, name: str, code: int, container: str | None = None) -> list[str] | None:
        """Runtime API: the running containers of a pod on this node (or one of them) exit with `code`.
        Returns the containers that exited; None when the pod is not here."""
        ps = self.pod(ns, name)
        if ps is None:
            return None
        spec_names = [c["name"] for c in (ps.pod.get("spec") or {}).get("containers") or []]
        names = [container] if container else spec_names
        done = []
        for n in names:
            c = ps.containers.get(n)
            if c is not None and c.started and c.exit_code is None:
                if n + "$stop" not in ps.actions:
                    ps.actions[n + "$stop"] = asyncio.ensure_future(self._exit_task(ps, n, code))
                done.append(n)
            elif n in spec_names and (c is None or c.exit_code is None):
                ps.exit_requests[n] = code  # not started yet: it exits as soon as it has
                done.append(n)
        return done

    async def _exit_task(self, ps: PodState, name: str, code: int) -> None:
        try:
            await self.exit_container(ps, name, code)
        except asyncio.CancelledError:
            pass
        except ApiError as e:
            log.debug("pod %s/%s container %s exit: %s", ps.ns, ps.name, name, e)
        finally:
            if ps.actions.get(name + "$stop") is asyncio.current_task():
                del ps.actions[name + "$stop"]

    async def _terminate(self, ps: PodState) -> None:
        try:
            for name in list(ps.containers):
                await self._event(ps, name, "Normal", "Killing", f"Stopping container {name}")
            for c in ps.containers.values():
                c.ready = False
            if self.net is not None:
                self.net.pod_stopped(ps.uid)
            await asyncio.sleep(self._stop_delay(ps))
            await self.backend.delete_pod(ps.ns, ps.name, ps.uid)
        except ApiError as e:
            if e.code not in (404, 409):
                log.warning("kubelet %s: delete %s/%s: %s", self.name, ps.ns, ps.name, e)
        except asyncio.CancelledError:
            pass

    def desired_status(self, ps: PodState) -> dict[str, Any]:
        pod = ps.pod
        spec = pod.get("spec") or {}
        cur_status = pod.get("status") or {}
        conds = cur_status.get("conditions") or []  # the server's: readiness gates, PodScheduled
        # The kubelet's own conditions keep the lastTransitionTime it wrote: taking it from whichever
        # watch event came last (possibly the echo of an older write) made two values a second apart
        # bounce between writes without end.
        own = (ps.reported or cur_status).get("conditions") or []
        statuses = []
        not_ready = []
        all_running = True  # every container exists (kubelet's getPhase: none waiting to be created)
        running = stopped = failed = 0
        for c in spec.get("containers") or []:
            st = ps.containers.get(c["name"])
            if st is None:
                all_running = False
                not_ready.append(c["name"])
                statuses.append(
                    {
                        "name": c["name"],
                        "image": c.get("image", ""),
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": {"waiting": _waiting(ps.waiting.get(c["name"]))},
                    }
                )
                continue
            if not st.ready:
                not_ready.append(c["name"])
            if st.waiting:
                state: dict[str, Any] = {
                    "waiting": {
                        "reason": st.waiting,
                        "message": f"back-off restarting failed container={c['name']} pod={ps.name}_{ps.ns}"
                        f"({ps.uid})",
                    }
                }
                stopped += 1
            elif st.exit_code is not None:
                state = {"terminated": st.terminated()}
                stopped += 1
                failed += st.exit_code != 0
            else:
                state = {"running": {"startedAt": st.started_at}}
                running += 1
            entry: dict[str, Any] = {
                "name": c["name"],
                "image": st.image,
                "imageID": st.image_id,
                "containerID": st.container_id,
                "ready": st.ready,
                "restartCount": st.restart_count,
                "started": st.started,
                "state": state,
            }
            if st.waiting and st.exit_code is not None:
                entry["lastState"] = {"terminated": st.terminated()}
            elif st.last_state:
                entry["lastState"] = st.last_state
            statuses.append(entry)
        gate_msgs = []
        for g in spec.get("readinessGates") or []:
            t = g.get("conditionType")
            c = _cond(conds, t)
            if c is None:
                gate_msgs.append(f'corresponding condition of pod readiness gate "{t}" does not exist.')
            elif c.get("status") != "True":
                gate_msgs.append(
                    f'the status of pod readiness gate "{t}" is not "True", but {c.get("status")}'
                )
        containers_ready = not not_ready
        phase = "Running" if all_running else "Pending"
        if all_running and not running and stopped:
            policy = spec.get("restartPolicy") or "Always"
            if policy != "Always" and not failed and not any(s.waiting for s in ps.containers.values()):
                phase = "Succeeded"
            elif policy == "Never":
                phase = "Failed"
        owned: list[dict[str, Any]] = []

        def add(type_: str, ok: bool, reason: str = "", message: str = "") -> None:
            status = "True" if ok else "False"
            old = _cond(own, type_)
            c: dict[str, Any] = {
                "type": type_,
                "status": status,
                "lastProbeTime": None,
                "lastTransitionTime": old.get("lastTransitionTime")
                if old and old.get("status") == status
                else now_iso(),
            }
            # explicit nulls: the strategic merge patch must drop a stale reason/message
            c["reason"] = reason if not ok and reason else None
            c["message"] = message if not ok and reason and message else None
            owned.append(c)

        add("PodReadyToStartContainers", True)
        if ps.initialized:
            add(CONDITION_INITIALIZED, True)
        else:
            add(
                CONDITION_INITIALIZED,
                False,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(c['name'] for c in spec.get('initContainers') or [] if c['name'] not in ps.init_done)}]",
            )
        unready_msg = f"containers with unready status: [{' '.join(not_ready)}]"
        if phase == "Succeeded":
            add(CONDITION_READY, False, "PodCompleted")
            add(CONDITION_CONTAINERS_READY, False, "PodCompleted")
        elif not containers_ready:
            add(CONDITION_READY, False, "ContainersNotReady", unready_msg)
        elif gate_msgs:
            add(CONDITION_READY, False, "ReadinessGatesNotReady", ", ".join(gate_msgs))
        else:
            add(CONDITION_READY, True)
        if phase != "Succeeded":
            add(CONDITION_CONTAINERS_READY, containers_ready, "ContainersNotReady", unready_msg)
        if _cond(conds, CONDITION_POD_SCHEDULED) is None or (
            ps.reported is not None and _cond(own, CONDITION_POD_SCHEDULED) is not None
        ):
            add(CONDITION_POD_SCHEDULED, True)  # pods bound without a scheduler; kept once written
        return {
            "phase": phase,
            "conditions": owned,
            "hostIP": self.ip,
            "hostIPs": [{"ip": self.ip}],
            "podIP": ps.ip,
            "podIPs": [{"ip": ps.ip}],
            "startTime": (ps.reported or {}).get("startTime") or cur_status.get("startTime") or ps.start_time,
            "containerStatuses": statuses,
            **(
                {"initContainerStatuses": [self._init_status(ps, c) for c in spec["initContainers"]]}
                if spec.get("initContainers")
                else {}
            ),
        }

    @staticmethod
    def _init_status(ps: PodState, c: dict[str, Any]) -> dict[str, Any]:
        done = ps.init_done.get(c["name"])
        if done is None:
            return {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"waiting": {"reason": "PodInitializing"}},
            }
        return {
            "name": c["name"],
            "image": done.image,
            "imageID": done.image_id,
            "containerID": done.container_id,
            "ready": True,
            "restartCount": 0,
            "started": False,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": done.started_at,
                    "finishedAt": done.started_at,
                    "containerID": done.container_id,
                }
            },
        }

    @staticmethod
    def _differs(cur: dict[str, Any], want: dict[str, Any]) -> bool:
        """Does the server's status `cur` lack something of `want`? Only what a server keeps counts:
        a field it does not know (`hostIPs` before 1.28) is absent from `cur`, a `lastState: {}` it
        fills in is the `lastState` the kubelet left out, conditions compare by type and content."""
        for k, v in want.items():
            if k == "conditions":
                have = cur.get("conditions") or []
                for c in v:
                    o = _cond(have, c["type"])
                    if (
                        o is None
                        or o.get("status") != c["status"]
                        or o.get("reason") != c.get("reason")
                        or o.get("message") != c.get("message")
                    ):
                        return True
            elif k in ("containerStatuses", "initContainerStatuses"):
                have_list = cur.get(k) or []
                if len(have_list) != len(v):
                    return True
                for h, w in zip(have_list, v, strict=True):
                    if any((h.get(f) or None) != (w.get(f) or None) for f in set(h) | set(w)):
                        return True
            elif k not in cur and k == "hostIPs":
                continue  # not a field of this server's Pod (Kubernetes < 1.28)
            elif cur.get(k) != v:
                return True
        return False

    @staticmethod
    def _saw_own_write(ps: PodState) -> bool:
        """Is the pod the kubelet last saw at least as new as its own last status write? (Otherwise
        the server's status may be older than what the kubelet wrote, and matching it proves nothing.)"""
        if ps.echo is None:
            return True
        try:
            return int(ps.pod["metadata"]["resourceVersion"]) >= int(ps.echo["metadata"]["resourceVersion"])
        except (KeyError, TypeError, ValueError):
            return False  # resourceVersions are opaque to clients; both servers here use integers

    async def _publish(self, ps: PodState) -> None:
        async with ps.publish_lock:
            if ps.terminating is not None or self.pods.get(ps.uid) is not ps:
                return
            want = self.desired_status(ps)
            if ps.reported is not None and want == ps.reported:
                return  # already written (its echo may not be back yet: that is no reason to repeat it)
            if self._saw_own_write(ps) and not self._differs(ps.pod.get("status") or {}, want):
                # The server has it already: after a kubelet restart, or when a controller wrote the
                # Ready condition the readiness gates give (Kruise's InPlaceUpdateReady=False write sets
                # Ready False itself). A kubelet sends no empty patch (PatchPodStatus: "unchanged"),
                # and it reconciles readiness only when Ready's status or message differ.
                ps.reported = want
                return
            try:
                ps.echo = await self.backend.patch_pod_status(
                    ps.ns, ps.name, {"metadata": {"uid": ps.uid}, "status": want}
                )
                ps.reported = want
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

    async def _event(self, ps: PodState, container: str, type_: str, reason: str, message: str) -> None:
        if not self.cfg.events:
            return
        ev = event_body({"metadata": {"name": ps.name, "namespace": ps.ns, "uid": ps.uid}}, kind="Pod",
                        api_version="v1", type_=type_, reason=reason, message=message, component="kubelet",
                        host=self.name, field_path=f"spec.containers{{{container}}}")
        try:
            await self.backend.create_event(ps.ns, ev)
        except ApiError as e:
            log.debug("event: %s", e)


class Scheduler:
    """Binds pending pods to the least-loaded node that passes kube-scheduler's filters (sim/placement.py);
    reports the ones no node takes as Unschedulable."""

    def __init__(self, backend: Backend, events: bool = True) -> None:
        self.backend = backend
        self.events = events
        self.nodes: dict[str, dict[str, Any]] = {}
        self.load: dict[str, int] = {}
        self.pod_node: dict[str, str] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self.unschedulable: dict[str, str] = {}  # pod uid -> the Unschedulable message last written
        self._rr = 0

    def on_node(self, type_: str, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        if type_ == "DELETED":
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = node
            self.load.setdefault(name, 0)

    async def on_pod(self, type_: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        node = (pod.get("spec") or {}).get("nodeName")
        old = self.pod_node.pop(uid, None)
        if old is not None:
            self.load[old] = self.load.get(old, 1) - 1
        if type_ == "DELETED":
            self.pending.pop(uid, None)
            self.unschedulable.pop(uid, None)
            return
        if node:
            self.pending.pop(uid, None)
            self.pod_node[uid] = node
            self.load[node] = self.load.get(node, 0) + 1
            return
        if pod["metadata"].get("deletionTimestamp"):
            self.pending.pop(uid, None)
            return
        if (pod.get("spec") or {}).get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        self.pending[uid] = pod
        await self._schedule(pod)

    def _fits(self, pod: dict[str, Any], node: dict[str, Any]) -> bool:
        return self._reason(pod, node) is None

    def _reason(self, pod: dict[str, Any], node: dict[str, Any]) -> str | None:
        return filter_reason(pod, node, self.load.get(node["metadata"]["name"], 0))

    async def _unschedulable(self, pod: dict[str, Any], reasons: list[str]) -> None:
        """What kube-scheduler does with a pod no node can take: PodScheduled False (Unschedulable) with
        the reasons, and a FailedScheduling Event; written again only when the message changes."""
        meta = pod["metadata"]
        msg = (
            unschedulable_message(len(reasons), reasons) if reasons else "no nodes available to schedule pods"
        )
        if self.unschedulable.get(meta["uid"]) == msg:
            return
        self.unschedulable[meta["uid"]] = msg
        ns = meta.get("namespace", "")
        try:
            await self.backend.patch_pod_status(
                ns,
                meta["name"],
                {
                    "status": {
                        "conditions": [
                            {
                                "type": CONDITION_POD_SCHEDULED,
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": msg,
                                "lastProbeTime": None,
                                "lastTransitionTime": now_iso(),
                            }
                        ]
                    }
                },
            )
        except ApiError as e:
            log.debug("unschedulable %s: %s", meta["name"], e)
            return
        await self._scheduler_event(pod, "Warning", "FailedScheduling", msg)

    async def _scheduler_event(self, pod: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if not self.events:
            return
        ev = event_body(pod, kind="Pod", api_version="v1", type_=type_, reason=reason, message=message,
                        component="default-scheduler")
        try:
            await self.backend.create_event(pod["metadata"].get("namespace", ""), ev)
        except ApiError:
            pass

    async def _schedule(self, pod: dict[str, Any]) -> None:
        names = sorted(self.nodes)
        reasons = {n: self._reason(pod, self.nodes[n]) for n in names}
        fitting = [n for n in names if reasons[n] is None]
        if not fitting:
            await self._unschedulable(pod, [r for r in reasons.values() if r is not None])
            return
        self._rr += 1
        best = min(fitting, key=lambda n: (self.load.get(n, 0), (names.index(n) - self._rr) % len(names)))
        meta = pod["metadata"]
        try:
            await self.backend.bind(meta.get("namespace", ""), meta["name"], best)
        except ApiError as e:
            log.debug("bind %s: %s", meta["name"], e)
            return
        self.pending.pop(meta["uid"], None)
        self.unschedulable.pop(meta["uid"], None)
        # count it now so a burst of creations spreads before the MODIFIED events come back
        self.pod_node[meta["uid"]] = best
        self.load[best] = self.load.get(best, 0) + 1
        ns = meta.get("namespace", "")
        await self._scheduler_event(
            pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{meta['name']} to {best}"
        )

    async def retry_pending(self) -> None:
        for pod in list(self.pending.values()):
            await self._schedule(pod)


class NodeFleet:
    """N kubelets + (optionally) the scheduler, fed by one pod watch and one node watch."""

    def __init__(
        self,
        backend: Backend,
        count: int,
        cfg: NodeConfig | None = None,
        *,
        scheduler: bool = True,
        name_prefix: str = "sim-node-",
        heartbeat: float | None = None,
    ) -> None:
        self.backend = backend
        self.heartbeat = heartbeat  # seconds between node Lease renewals + Ready heartbeats (None: off)
        self.cfg = cfg or NodeConfig()
        self.kubelets: dict[str, Kubelet] = {
            f"{name_prefix}{i}": Kubelet(f"{name_prefix}{i}", i, backend, self.cfg) for i in range(count)
        }
        self.scheduler = Scheduler(backend, self.cfg.events) if scheduler else None
        self._tasks: list[asyncio.Task[None]] = []

    async def add_node(
        self, name: str, labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None
    ) -> Kubelet:
        """A new node at run time: its kubelet registers it (Ready) and takes pods from then on."""
        if name in self.kubelets:
            raise ValueError(f"node {name} already exists")
        index = max((k.index for k in self.kubelets.values()), default=-1) + 1
        k = Kubelet(name, index, self.backend, self.cfg, labels=labels, taints=taints)
        self.kubelets[name] = k
        await self.backend.upsert_node(k.node_object())
        return k

    async def remove_node(self, name: str) -> None:
        """The node goes away: its kubelet stops and the Node object is deleted (its pods are then
        deleted by the pod garbage collector, `sim/node_lifecycle.py` in-process)."""
        k = self.kubelets.pop(name)
        k.stopped = True
        pending = k.tasks()
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self.backend.delete_node(name)
        except ApiError as e:
            if e.code != 404:
                raise

    async def start(self) -> None:
        for k in self.kubelets.values():
            await self.backend.upsert_node(k.node_object())
        self._tasks.append(asyncio.ensure_future(self._node_loop()))
        self._tasks.append(asyncio.ensure_future(self._pod_loop()))
        if self.scheduler is not None:
            self._tasks.append(asyncio.ensure_future(self._retry_loop()))
        if self.heartbeat:
            self._tasks.append(asyncio.ensure_future(self._heartbeat_loop(self.heartbeat)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        pending: list[asyncio.Task[Any]] = []
        for k in self.kubelets.values():
            k.stopped = True
            pending.extend(k.tasks())
            if k.net is not None:
                k.net.close()
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _node_loop(self) -> None:
        while True:
            try:
                async for type_, node in self.backend.watch_nodes():
                    if self.scheduler is not None:
                        self.scheduler.on_node(type_, node)
                        await self.scheduler.retry_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node watch failed; restarting")
                await asyncio.sleep(0.2)

    async def _pod_loop(self) -> None:
        while True:
            try:
                async for type_, pod in self.backend.watch_pods():
                    await self._dispatch(type_, pod)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod watch failed; restarting")
                await asyncio.sleep(0.2)

    async def _dispatch(self, type_: str, pod: dict[str, Any]) -> None:
        if self.scheduler is not None:
            await self.scheduler.on_pod(type_, pod)
        node = (pod.get("spec") or {}).get("nodeName")
        k = self.kubelets.get(node) if node else None
        if k is not None:
            ps = k.pods.get(pod["metadata"]["uid"])
            if ps is not None and pod is ps.echo and type_ != "DELETED":
                # the echo of the kubelet's own status write (in-process: the very object it committed,
                # after every earlier event; a status write changes no spec)
                ps.pod = pod
                return
            try:
                await k.on_pod(type_, pod)
            except ApiError as e:
                log.debug("kubelet %s: %s", node, e)

    async def _heartbeat_loop(self, every: float) -> None:
        """What keeps a node Ready on a real control plane: a renewed Lease and a fresh Ready heartbeat."""
        while True:
            for k in list(self.kubelets.values()):
                try:
                    await self.backend.renew_lease(k.name, int(max(every * 4, 40)))
                    await self.backend.patch_node_status(
                        k.name, {"status": {"conditions": [k._node_cond("Ready", "True", "KubeletReady")]}}
                    )
                except Exception as e:  # keep beating; the API server may be briefly unavailable
                    log.warning("heartbeat %s: %s", k.name, e)
            await asyncio.sleep(every)

    async def _retry_loop(self) -> None:
        assert self.scheduler is not None
        while True:
            await asyncio.sleep(0.5)
            if self.scheduler.pending:
                await self.scheduler.retry_pending()
