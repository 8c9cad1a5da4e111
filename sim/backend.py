"""Backends the simulated nodes act through: the in-process store, or any API server over HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp

from sim.errors import ApiError
from sim.store import MERGE_PATCH, STRATEGIC_PATCH, Store

log = logging.getLogger("sim.backend")


def micro_now() -> str:
    """metav1.MicroTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StoreBackend:
    """Direct calls into the in-process store (same semantics as HTTP, no serialization)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pods = store.rt("pods")
        self.nodes = store.rt("nodes")
        self.events = store.rt("events")

    async def _watch(self, rt: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        w = self.store.watch(rt)
        try:
            while True:
                batch = await w.next_batch()
                for ev in batch:
                    yield ev.type, ev.obj
                if w.closed and not w.queue:
                    return
        finally:
            w.close()

    def watch_pods(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return self._watch(self.pods)

    def watch_nodes(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return self._watch(self.nodes)

    async def upsert_node(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        if self.store.try_get(self.nodes, "", name) is None:
            self.store.create(self.nodes, "", node)
        else:
            self.store.patch(
                self.nodes,
                "",
                name,
                STRATEGIC_PATCH,
                {"metadata": node["metadata"], "spec": node.get("spec", {})},
            )
        self.store.patch(
            self.nodes, "", name, STRATEGIC_PATCH, {"status": node["status"]}, subresource="status"
        )

    async def patch_node_status(self, name: str, patch: dict[str, Any]) -> None:
        self.store.patch(self.nodes, "", name, STRATEGIC_PATCH, patch, subresource="status")

    async def patch_pod_status(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        uid = (patch.get("metadata") or {}).get("uid")
        if uid and set(patch) <= {"metadata", "status"} and set(patch["metadata"]) == {"uid"}:
            # the kubelets' own write (uid precondition + status): a fast path with the same result
            return self.store.kubelet_pod_status(ns, name, uid, patch.get("status") or {})
        return self.store.patch(self.pods, ns, name, STRATEGIC_PATCH, patch, subresource="status")

    async def delete_pod(self, ns: str, name: str, uid: str) -> None:
        self.store.delete(self.pods, ns, name, grace_period=0, preconditions={"uid": uid})

    async def delete_node(self, name: str) -> None:
        self.store.delete(self.nodes, "", name)

    async def bind(self, ns: str, name: str, node: str) -> None:
        self.store.bind(ns, name, node)

    async def create_event(self, ns: str, event: dict[str, Any]) -> None:
        self.store.create(self.events, ns, event)

    async def renew_lease(self, node: str, duration: int) -> None:
        leases = self.store.rt("leases", "coordination.k8s.io")
        spec = {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": micro_now()}
        if self.store.try_get(leases, "kube-node-lease", node) is None:
            self.store.create(leases, "kube-node-lease", {"metadata": {"name": node}, "spec": spec})
        else:
            self.store.patch(leases, "kube-node-lease", node, MERGE_PATCH, {"spec": spec})


class HttpBackend:
    """The same operations against any Kubernetes API server (kwok-style nodes for a real cluster).

    Authentication: none, a bearer token, or TLS client certificates via an `ssl` context / aiohttp session
    the caller builds (e.g. from a kubeconfig).
    """

    def __init__(
        self,
        server: str,
        *,
        session: aiohttp.ClientSession | None = None,
        headers: dict[str, str] | None = None,
        ssl: Any = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._session = session
        self._own_session = session is None
        self.headers = headers or {}
        self.ssl = ssl

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self.headers)
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def _req(
        self,
        method: str,
        path: str,
        body: Any = None,
        ctype: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        s = await self.session()
        data = None if body is None else json.dumps(body)
        async with s.request(
            method,
            self.server + path,
            data=data,
            params=params,
            ssl=self.ssl,
            headers={"Content-Type": ctype, "Accept": "application/json"},
        ) as r:
            text = await r.text()
            payload = json.loads(text) if text else {}
            if r.status >= 400:
                raise ApiError(
                    r.status, payload.get("reason", ""), payload.get("message", text), payload.get("details")
                )
            return payload

    async def _watch(self, path: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        s = await self.session()
        lst = await self._req("GET", path)
        for o in lst.get("items") or []:
            yield "ADDED", o
        rv = lst["metadata"]["resourceVersion"]
        while True:
            params = {
                "watch": "true",
                "resourceVersion": rv,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "300",
            }
            async with s.get(
                self.server + path,
                params=params,
                ssl=self.ssl,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=400),
            ) as r:
                if r.status >= 400:
                    raise ApiError(r.status, "", await r.text())
                async for line in r.content:
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        return  # 410: caller relists by restarting the iterator
                    rv = ev["object"]["metadata"]["resourceVersion"]
                    if ev["type"] != "BOOKMARK":
                        yield ev["type"], ev["object"]
            await asyncio.sleep(0)

    def watch_pods(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return self._watch("/api/v1/pods")

    def watch_nodes(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return self._watch("/api/v1/nodes")

    async def upsert_node(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        try:
            await self._req("POST", "/api/v1/nodes", node)
        except ApiError as e:
            if e.code != 409:
                raise
        await self._req("PATCH", f"/api/v1/nodes/{name}/status", {"status": node["status"]}, MERGE_PATCH)

    async def patch_node_status(self, name: str, patch: dict[str, Any]) -> None:
        await self._req("PATCH", f"/api/v1/nodes/{name}/status", patch, STRATEGIC_PATCH)

    async def patch_pod_status(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self._req("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", patch, STRATEGIC_PATCH)

    async def delete_pod(self, ns: str, name: str, uid: str) -> None:
        await self._req(
            "DELETE",
            f"/api/v1/namespaces/{ns}/pods/{name}",
            {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid},
            },
        )

    async def delete_node(self, name: str) -> None:
        await self._req("DELETE", f"/api/v1/nodes/{name}")

    async def bind(self, ns: str, name: str, node: str) -> None:
        await self._req(
            "POST",
            f"/api/v1/namespaces/{ns}/pods/{name}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
        )

    async def create_event(self, ns: str, event: dict[str, Any]) -> None:
        await self._req("POST", f"/api/v1/namespaces/{ns}/events", event)

    async def renew_lease(self, node: str, duration: int) -> None:
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        spec = {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": micro_now()}
        try:
            await self._req("PATCH", f"{path}/{node}", {"spec": spec}, MERGE_PATCH)
        except ApiError as e:
            if e.code != 404:
                raise
            await self._req(
                "POST",
                path,
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": node},
                    "spec": spec,
                },
            )
