"""The sim's pod network (sim/podnet.py): a pod's own loopback address, its containers listening there,
the HTTP answer set per pod, and nothing listening once the container stops."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from sim.podnet import PodNet, PodOutcomes, parse_outcomes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_container_answers_http_as_set_and_stops_listening_when_stopped() -> None:
    net = PodNet(7)
    ip = net.allocate("uid-1")
    assert ip.startswith("127.") and ip.endswith(".1") and net.allocate("uid-2") != ip
    port = free_port()
    await net.container_started("uid-1", {"name": "main", "ports": [{"containerPort": port}]})
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{ip}:{port}/idle") as r:
                assert (r.status, await r.text()) == (200, "ok")
            net.outcomes_of("uid-1").http.status = 503
            net.outcomes_of("uid-1").http.body = "busy"
            async with http.get(f"http://{ip}:{port}/idle") as r:
                assert (r.status, await r.text()) == (503, "busy")
        _, writer = await asyncio.open_connection(ip, port)  # a plain TCP connect is accepted
        writer.close()
    finally:
        net.container_stopped("uid-1", "main")
    with pytest.raises(OSError):
        await asyncio.open_connection(ip, port)
    net.release("uid-1")
    assert net.allocate("uid-3") == ip, "a gone pod's address is reused"


@pytest.mark.parametrize(("body", "error"), [
    ({"status": 42}, "status: expected an HTTP status code"),
    ({"exec": {}}, "expected an object with status and/or body"),
], ids=["bad-status", "unknown-field"])
def test_control_api_body_errors_name_the_field(body: object, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_outcomes(body, PodOutcomes())
