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
from sim.selectors import match_label_selector_obj
from sim.store import now_iso

log = logging.getLogger("sim.nodes")

# Per-pod knobs (annotations) for tests: force readiness off, override start delay.
ANNOTATION_READY = "sim.kruisebus.io/ready"  # "false": containers never become ready (failing probe)
ANNOTATION_START_DELAY = "sim.kruisebus.io/start-delay"  # seconds, overrides NodeConfig.start_delay
ANNOTATION_STOP_DELAY = "sim.kruisebus.io/stop-delay"  # seconds a container takes to stop (restart/delete)
# probe outcomes, JSON: {"readiness": bool | {container: bool}, "liveness": bool | {container: bool},
#  "custom": {probe name: bool}}; the runtime API POST /sim/pods/{ns}/{name}/probes overrides it
ANNOTATION_PROBES = "sim.kruisebus.io/probes"


def _probe_ok(spec: Any, container: str) -> bool:
    """A readiness/liveness entry: a bool for every container or a {container: bool} map (missing: ok)."""
    if isinstance(spec, bool):
        return spec
    if isinstance(spec, dict):
        v = spec.get(container, spec.get("*", True))
        return v is not False and str(v).lower() not in ("false", "failure", "failed")
    return True


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
    cpu: str = "8"
    memory: str = "32Gi"
    max_pods: int = 110
    events: bool = True  # write Kubernetes Events (Scheduled, Pulling, Pulled, Created, Started, Killing)

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
    initialized: bool = False


def _cond(conds: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    for c in conds:
        if c.get("type") == type_:
            return c
    return None


class Kubelet:
    def __init__(self, name: str, index: int, backend: Backend, cfg: NodeConfig) -> None:
        self.name = name
        self.index = index
        self.backend = backend
        self.cfg = cfg
        self.ip = f"10.0.{index // 250}.{index % 250 + 2}"
        self.images: dict[str, str] = {img: image_id(img) for img in cfg.preloaded_images}
        self._pulls: dict[str, asyncio.Task[str]] = {}
        self.pods: dict[str, PodState] = {}
        self._ip_counter = itertools.count(2)
        self.pull_count = 0
        self.stopped = False
        self._pull_slots = asyncio.Semaphore(cfg.max_parallel_pulls) if cfg.max_parallel_pulls > 0 else None
        self.pulls_active = 0  # pulls downloading right now (<= max_parallel_pulls)
        self.pulls_waiting = 0  # pulls queued for a slot
        self.max_pulls_seen = 0
        self.probe_overrides: dict[str, dict[str, Any]] = {}  # pod uid -> probes set via the runtime API

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
                },
            },
            "spec": {"podCIDR": f"10.244.{self.index}.0/24", "podCIDRs": [f"10.244.{self.index}.0/24"]},
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
                "sizeBytes": int(
                    self.cfg.image_sizes_mb.get(img, self.cfg.default_image_size_mb) * 1024 * 1024
                ),
            }
            for img, iid in sorted(self.images.items())
        ]

    # ---------------------------------------------------------------- images

    def has_image(self, image: str) -> bool:
        return image in self.images

    async def pull_image(self, image: str) -> str:
        """Pull (or join the pull in progress); returns the image ID. The runtime seam uses this too."""
        if image in self.images:
            return self.images[image]
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
            try:
                await asyncio.sleep(self.cfg.pull_seconds(image))
            finally:
                self.pulls_active -= 1
                if self._pull_slots is not None:
                    self._pull_slots.release()
            self.images[image] = image_id(image)
            self.pull_count += 1
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
            if ps:
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
                ip=f"10.244.{self.index}.{next(self._ip_counter) % 250 + 2}",
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
                iid = await self.pull_image(image)
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
        ps = next((p for p in self.pods.values() if p.ns == ns and p.name == name), None)
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
                    iid = await self.pull_image(desired)
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
                if cur is not None:
                    why = "definition changed" if cur.image != desired else "failed liveness probe"
                    await self._event(
                        ps, name, "Normal", "Killing", f"Container {name} {why}, will be restarted"
                    )
                    # the old container stops first (not ready meanwhile), then the new one is created
                    cur.ready = False
                    stop = self._stop_delay(ps)
                    if stop > 0:
                        await self._publish(ps)
                        await asyncio.sleep(stop)
                    if ps.terminating is not None:
                        return
                ps.containers[name] = Container(
                    image=desired,
                    image_id=iid,
                    container_id=f"sim://{secrets.token_hex(32)}",
                    restart_count=0 if cur is None else cur.restart_count + 1,
                    started_at=now_iso(),
                )
                await self._event(ps, name, "Normal", "Created", f"Created container {name}")
                await self._publish(ps)
                await asyncio.sleep(self._start_delay(ps))
                c = ps.containers.get(name)
                if c is None or ps.terminating is not None:
                    return
                c.started = True
                c.ready = self._ready(ps, name)
                await self._event(ps, name, "Normal", "Started", f"Started container {name}")
                await self._publish(ps)
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

    async def _terminate(self, ps: PodState) -> None:
        try:
            for name in list(ps.containers):
                await self._event(ps, name, "Normal", "Killing", f"Stopping container {name}")
            for c in ps.containers.values():
                c.ready = False
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
        conds = cur_status.get("conditions") or []
        statuses = []
        not_ready = []
        all_running = True
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
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                )
                continue
            if not st.ready:
                not_ready.append(c["name"])
            entry: dict[str, Any] = {
                "name": c["name"],
                "image": st.image,
                "imageID": st.image_id,
                "containerID": st.container_id,
                "ready": st.ready,
                "restartCount": st.restart_count,
                "started": st.started,
                "state": {"running": {"startedAt": st.started_at}},
            }
            if st.restart_count:
                entry["lastState"] = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "finishedAt": st.started_at,
                        "startedAt": ps.start_time,
                    }
                }
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
        owned: list[dict[str, Any]] = []

        def add(type_: str, ok: bool, reason: str = "", message: str = "") -> None:
            status = "True" if ok else "False"
            old = _cond(conds, type_)
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
        if not containers_ready:
            add(CONDITION_READY, False, "ContainersNotReady", unready_msg)
        elif gate_msgs:
            add(CONDITION_READY, False, "ReadinessGatesNotReady", "; ".join(gate_msgs))
        else:
            add(CONDITION_READY, True)
        add(CONDITION_CONTAINERS_READY, containers_ready, "ContainersNotReady", unready_msg)
        if _cond(conds, CONDITION_POD_SCHEDULED) is None:
            add(CONDITION_POD_SCHEDULED, True)
        return {
            "phase": "Running" if all_running else "Pending",
            "conditions": owned,
            "hostIP": self.ip,
            "hostIPs": [{"ip": self.ip}],
            "podIP": ps.ip,
            "podIPs": [{"ip": ps.ip}],
            "startTime": cur_status.get("startTime") or ps.start_time,
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
            elif cur.get(k) != v:
                return True
        return False

    async def _publish(self, ps: PodState) -> None:
        async with ps.publish_lock:
            if ps.terminating is not None or self.pods.get(ps.uid) is not ps:
                return
            want = self.desired_status(ps)
            if not self._differs(ps.pod.get("status") or {}, want):
                return
            try:
                ps.pod = await self.backend.patch_pod_status(
                    ps.ns, ps.name, {"metadata": {"uid": ps.uid}, "status": want}
                )
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

    async def _event(self, ps: PodState, container: str, type_: str, reason: str, message: str) -> None:
        if not self.cfg.events:
            return
        ts = now_iso()
        ev = {
            "metadata": {"name": f"{ps.name}.{secrets.token_hex(8)}", "namespace": ps.ns},
            "involvedObject": {
                "kind": "Pod",
                "namespace": ps.ns,
                "name": ps.name,
                "uid": ps.uid,
                "apiVersion": "v1",
                "fieldPath": f"spec.containers{{{container}}}",
            },
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet", "host": self.name},
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
            "type": type_,
            "reportingComponent": "kubelet",
            "reportingInstance": self.name,
        }
        try:
            await self.backend.create_event(ps.ns, ev)
        except ApiError as e:
            log.debug("event: %s", e)


class Scheduler:
    """Binds pending pods to the least-loaded ready node that matches their nodeSelector."""

    def __init__(self, backend: Backend, events: bool = True) -> None:
        self.backend = backend
        self.events = events
        self.nodes: dict[str, dict[str, Any]] = {}
        self.load: dict[str, int] = {}
        self.pod_node: dict[str, str] = {}
        self.pending: dict[str, dict[str, Any]] = {}
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
        if (node.get("spec") or {}).get("unschedulable"):
            return False
        conds = (node.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
            return False
        labels = node["metadata"].get("labels") or {}
        sel = (pod.get("spec") or {}).get("nodeSelector") or {}
        if any(labels.get(k) != v for k, v in sel.items()):
            return False
        terms = (
            (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
            or {}
        ).get("nodeSelectorTerms")
        if terms:
            ok = False
            for t in terms:
                exprs = t.get("matchExpressions") or []
                if match_label_selector_obj({"matchExpressions": exprs}, labels):
                    ok = True
            if not ok:
                return False
        cap = int(((node.get("status") or {}).get("allocatable") or {}).get("pods", "110"))
        return self.load.get(node["metadata"]["name"], 0) < cap

    async def _schedule(self, pod: dict[str, Any]) -> None:
        names = sorted(self.nodes)
        if not names:
            return
        fitting = [n for n in names if self._fits(pod, self.nodes[n])]
        if not fitting:
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
        # count it now so a burst of creations spreads before the MODIFIED events come back
        self.pod_node[meta["uid"]] = best
        self.load[best] = self.load.get(best, 0) + 1
        if self.events:
            ts = now_iso()
            ns = meta.get("namespace", "")
            try:
                await self.backend.create_event(
                    ns,
                    {
                        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": ns},
                        "involvedObject": {
                            "kind": "Pod",
                            "namespace": ns,
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "apiVersion": "v1",
                        },
                        "reason": "Scheduled",
                        "message": f"Successfully assigned {ns}/{meta['name']} to {best}",
                        "source": {"component": "default-scheduler"},
                        "firstTimestamp": ts,
                        "lastTimestamp": ts,
                        "count": 1,
                        "type": "Normal",
                        "reportingComponent": "default-scheduler",
                    },
                )
            except ApiError:
                pass

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
            if ps is not None and pod is ps.pod and type_ != "DELETED":
                return  # the echo of the kubelet's own status write (in-process: the object it committed)
            try:
                await k.on_pod(type_, pod)
            except ApiError as e:
                log.debug("kubelet %s: %s", node, e)

    async def _heartbeat_loop(self, every: float) -> None:
        """What keeps a node Ready on a real control plane: a renewed Lease and a fresh Ready heartbeat."""
        while True:
            for k in self.kubelets.values():
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
