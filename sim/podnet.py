"""Simulated pod networking and exec: real sockets for tcpSocket/httpGet probes, scripted exec outcomes.

A PodProbeMarker's network probes must really connect, so with `NodeConfig.pod_network` on each
simulated pod gets its own loopback address (127.0.0.0/8 is all local on Linux: node `i` hands out
`127.<b + i // 256>.<i % 256>.<1..254>` (`b` random per process), reused once a pod is gone), reported as `status.podIP`, and
each running container listens there on the TCP ports it declares. A connection is accepted (a
tcpSocket probe succeeds); one that sends an HTTP request gets the status code and body set for the pod
(default 200 "ok"), so an httpGet probe sees what the test or the demo chose. The listeners close when
the container stops (restart, deletion), so probes then fail the way they would against a real pod.

The HTTP answer is set per pod through the sim's control API (`/sim/pods/{ns}/{name}/http`, see
docs/sim.md) or `Kubelet.net.outcomes_of(uid)` in-process. (Exec outcomes are the kubelet's own:
`/sim/pods/{ns}/{name}/exec-outcomes`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.http import Handler, Request, Response
from sim.server import json_response

log = logging.getLogger(__name__)

HTTP_REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
                400: "Bad Request", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error",
                503: "Service Unavailable"}
REQUEST_WAIT = 5.0  # seconds a connection may take to send its request head
_BASE = random.randrange(254)  # this process's second octet (see PodNet)


@dataclass
class HttpOutcome:
    status: int = 200
    body: str = "ok"


@dataclass
class PodOutcomes:
    http: HttpOutcome = field(default_factory=HttpOutcome)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.http.status, "body": self.http.body}


def parse_outcomes(body: Any, into: PodOutcomes) -> PodOutcomes:
    """Merge a control-API body (`{"status": 503, "body": "busy"}`) into `into`; ValueError names the field."""
    if not isinstance(body, dict) or not set(body) <= {"status", "body"}:
        raise ValueError("expected an object with status and/or body")
    if "status" in body:
        status = body["status"]
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError("status: expected an HTTP status code (100-599)")
        into.http.status = status
    if "body" in body:
        into.http.body = str(body["body"])
    return into


class PodNet:
    """One node's pod addresses, container listeners and scripted outcomes."""

    def __init__(self, index: int, base: int | None = None) -> None:
        # A random second octet per cluster: two sims on one machine (parallel test runs) rarely share
        # an address, and a bind failure is logged, never fatal.
        base = base if base is not None else _BASE
        self.prefix = f"127.{(base + index // 256) % 254 + 1}.{index % 256}"
        self.ips: dict[str, str] = {}  # pod uid -> address
        self.free = list(range(254, 0, -1))
        self.servers: dict[tuple[str, str], list[asyncio.Server]] = {}  # (uid, container) -> listeners
        self.outcomes: dict[str, PodOutcomes] = {}  # pod uid -> outcomes

    def allocate(self, uid: str) -> str:
        ip = self.ips.get(uid)
        if ip is None:
            ip = self.ips[uid] = f"{self.prefix}.{self.free.pop() if self.free else 254}"
        return ip

    def outcomes_of(self, uid: str) -> PodOutcomes:
        return self.outcomes.setdefault(uid, PodOutcomes())

    async def container_started(self, uid: str, container: dict[str, Any]) -> None:
        name = str(container.get("name", ""))
        ip = self.ips.get(uid)
        if ip is None or (uid, name) in self.servers:
            return
        servers: list[asyncio.Server] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(uid, reader, writer)

        for port in container.get("ports") or []:
            if (port.get("protocol") or "TCP") != "TCP" or not isinstance(port.get("containerPort"), int):
                continue
            try:
                servers.append(await asyncio.start_server(serve, ip, port["containerPort"]))
            except OSError as e:
                log.warning("pod %s container %s: cannot listen on %s:%s: %s", uid, name, ip,
                            port["containerPort"], e)
        self.servers[(uid, name)] = servers

    def container_stopped(self, uid: str, container: str) -> None:
        for server in self.servers.pop((uid, container), []):
            server.close()

    def pod_stopped(self, uid: str) -> None:
        for uid_, name in [k for k in self.servers if k[0] == uid]:
            self.container_stopped(uid_, name)

    def close(self) -> None:
        """The node stops: every listener closes."""
        for uid in {k[0] for k in self.servers}:
            self.pod_stopped(uid)

    def release(self, uid: str) -> None:
        """The pod is gone: close what is left, free its address, forget its outcomes."""
        self.pod_stopped(uid)
        self.outcomes.pop(uid, None)
        ip = self.ips.pop(uid, None)
        if ip is not None:
            self.free.append(int(ip.rsplit(".", 1)[1]))

    async def _serve(self, uid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_WAIT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                return  # a plain TCP connect (tcpSocket probe) or a client that went away
            if b" HTTP/" not in head.split(b"\r\n", 1)[0]:
                return
            http = self.outcomes_of(uid).http
            body = http.body.encode()
            writer.write(f"HTTP/1.1 {http.status} {HTTP_REASONS.get(http.status, 'Status')}\r\n"
                         f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


Locate = Callable[[str, str], "tuple[PodNet, str] | None"]
"""(namespace, pod name) -> (the PodNet of the pod's node, pod uid), None when no simulated node runs it."""


def routes(locate: Locate) -> list[tuple[str, str, Handler]]:
    """The control API: `GET|POST /sim/pods/{ns}/{name}/http` reads / merges what the pod's containers
    answer to HTTP (`{"status": 503, "body": "busy"}`; default 200 "ok")."""

    def _find(request: Request) -> tuple[PodNet, str] | Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        found = locate(ns, name)
        if found is None:
            return json_response({"message": f"pod {ns}/{name} is not on a simulated node with pod_network on"},
                                 404)
        return found

    def http_outcome(request: Request) -> Response:
        found = _find(request)
        if isinstance(found, Response):
            return found
        net, uid = found
        if request.method == "GET":
            return json_response(net.outcomes_of(uid).as_json())
        try:
            outcomes = parse_outcomes(request.json(), PodOutcomes(**vars(net.outcomes_of(uid))))
        except ValueError as e:
            return json_response({"message": str(e)}, 400)
        net.outcomes[uid] = outcomes
        return json_response(outcomes.as_json())

    return [
        ("GET", "/sim/pods/{ns}/{name}/http", http_outcome),
        ("POST", "/sim/pods/{ns}/{name}/http", http_outcome),
    ]


__all__ = ["HttpOutcome", "PodNet", "PodOutcomes", "parse_outcomes", "routes"]
