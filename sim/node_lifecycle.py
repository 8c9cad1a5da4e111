"""kube-controller-manager's node-side controllers the embedded cluster needs, in-process.

On a real cluster a pod does not outlive its node's changes by itself: the **taint manager** (part of
the node lifecycle controller, `pkg/controller/nodelifecycle/scheduler/taint_manager.go`) deletes pods
that do not tolerate a `NoExecute` taint of their node (at once, or after the smallest
`tolerationSeconds` of the tolerations that match), and the **pod garbage collector**
(`pkg/controller/podgc`) force-deletes pods bound to a node that no longer exists. kruisebus's node
workloads (DaemonSets, BroadcastJobs) depend on both, so the sim runs them on its store. Differences:
the pod GC acts as soon as the Node is deleted (1.20 waits for its 40 s quarantine and 20 s period) and
leaves pods bound to a node that never existed alone (tests create those on purpose), and a
pod's `tolerationSeconds` count from when the sim saw the taint (1.20: from the taint's `timeAdded` or
when it saw it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sim.errors import ApiError
from sim.events import event_body
from sim.placement import tolerates
from sim.store import Store, WatchEvent

log = logging.getLogger("sim.node_lifecycle")


def eviction_delay(pod: dict[str, Any], taints: list[dict[str, Any]]) -> float | None:
    """None: the pod may stay; 0: evict now; s > 0: evict after s seconds. As the taint manager: each
    NoExecute taint is matched by the first toleration that tolerates it, and the smallest
    `tolerationSeconds` among those (where set) is the delay (getMinTolerationTime)."""
    no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
    if not no_execute:
        return None
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    used = []
    for taint in no_execute:
        first = next((t for t in tolerations if tolerates(t, taint)), None)
        if first is None:
            return 0.0
        used.append(first)
    secs = [float(t["tolerationSeconds"]) for t in used if t.get("tolerationSeconds") is not None]
    if not secs:
        return None
    return max(min(secs), 0.0)


class NodeLifecycle:
    """The taint manager's NoExecute evictions and the pod GC of deleted nodes, on `store`."""

    def __init__(self, store: Store, *, events: bool = True) -> None:
        self.store = store
        self.events = events
        self.nodes = store.rt("nodes")
        self.pods = store.rt("pods")
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}  # pod uid -> (delay, timer)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._watch(self.nodes, self._on_node)),
            asyncio.ensure_future(self._watch(self.pods, self._on_pod)),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for _, h in self._timers.values():
            h.cancel()
        self._timers.clear()

    async def _watch(self, rt: Any, handle: Any) -> None:
        w = self.store.watch(rt)
        try:
            while not w.closed:
                for ev in await w.next_batch():
                    try:
                        handle(ev)
                    except Exception:
                        log.exception("node lifecycle: %s event", rt.plural)
        finally:
            w.close()

    def _pods_on(self, node: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.store.bucket(self.pods).iter(None)
            if (p.get("spec") or {}).get("nodeName") == node
        ]

    def _on_node(self, ev: WatchEvent) -> None:
        name = ev.obj["metadata"]["name"]
        if ev.type == "DELETED":
            for p in self._pods_on(name):
                self._force_delete(p)
            return
        taints = (ev.obj.get("spec") or {}).get("taints") or []
        old = ((ev.old or {}).get("spec") or {}).get("taints") or []
        if ev.type == "MODIFIED" and taints == old:
            return
        for p in self._pods_on(name):
            self._check(p, taints)

    def _on_pod(self, ev: WatchEvent) -> None:
        uid = ev.obj["metadata"]["uid"]
        if ev.type == "DELETED" or ev.obj["metadata"].get("deletionTimestamp"):
            timer = self._timers.pop(uid, None)
            if timer is not None:
                timer[1].cancel()
            return
        node_name = (ev.obj.get("spec") or {}).get("nodeName")
        if not node_name or (ev.old is not None and (ev.old.get("spec") or {}).get("nodeName") == node_name):
            return  # only a newly bound pod needs a look (taint changes come as node events)
        node = self.store.try_get(self.nodes, "", node_name)
        if node is None:
            return  # bound to a node that never was: the pod GC acts only on a node's deletion here
        self._check(ev.obj, (node.get("spec") or {}).get("taints") or [])

    def _check(self, pod: dict[str, Any], taints: list[dict[str, Any]]) -> None:
        uid = pod["metadata"]["uid"]
        delay = eviction_delay(pod, taints)
        timer = self._timers.get(uid)
        if delay is None:
            if timer is not None:
                timer[1].cancel()
                del self._timers[uid]
                self._event(pod, "TaintManagerEviction", f"Cancelling deletion of Pod {self._key(pod)}")
            return
        if delay == 0:
            self._evict(pod)
            return
        if timer is not None and timer[0] <= delay:
            return
        if timer is not None:
            timer[1].cancel()
        loop = asyncio.get_running_loop()
        self._timers[uid] = (
            delay,
            loop.call_later(
                delay, self._evict_later, pod["metadata"].get("namespace", ""), pod["metadata"]["name"], uid
            ),
        )

    @staticmethod
    def _key(pod: dict[str, Any]) -> str:
        return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"

    def _evict_later(self, ns: str, name: str, uid: str) -> None:
        self._timers.pop(uid, None)
        pod = self.store.try_get(self.pods, ns, name)
        if pod is not None and pod["metadata"]["uid"] == uid:
            self._evict(pod)

    def _evict(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return
        self._event(pod, "TaintManagerEviction", f"Marking for deletion Pod {self._key(pod)}")
        try:
            self.store.delete(
                self.pods, meta.get("namespace", ""), meta["name"], preconditions={"uid": meta["uid"]}
            )
        except ApiError as e:
            log.debug("evict %s: %s", self._key(pod), e)

    def _force_delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.store.delete(
                self.pods,
                meta.get("namespace", ""),
                meta["name"],
                grace_period=0,
                preconditions={"uid": meta["uid"]},
            )
        except ApiError as e:
            log.debug("pod gc %s: %s", self._key(pod), e)

    def _event(self, pod: dict[str, Any], reason: str, message: str) -> None:
        if not self.events:
            return
        ev = event_body(pod, kind="Pod", api_version="v1", type_="Normal", reason=reason, message=message,
                        component="taint-controller")
        try:
            self.store.create(self.store.rt("events"), pod["metadata"].get("namespace", ""), ev, owned=True)
        except ApiError:
            pass
