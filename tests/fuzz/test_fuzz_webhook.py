"""Hostile CR specs of every served kind through the admission webhook's real HTTPS endpoint.

The webhook server runs in-process on a random loopback port with its own certificate; each example
POSTs an AdmissionReview (CREATE, and UPDATE against the valid object) to the kind's mutating and
validating paths. Property: the answer is an AdmissionReview within the deadline, allowed or denied with
a 4xx code and a message naming a field (`spec...`/`metadata...`, Kubernetes' field-error style), never
a 500; and after every example the server still admits the valid object of another kind.
"""

from __future__ import annotations

import copy
import re
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.admission import REVIEW_DECODER
from schemas.constants import MAX_OBJECT_BYTES
from schemas.kinds import Kind
from services.planner.kit.gates import parse_feature_gates
from services.webhook.endpoints import ENDPOINTS, Endpoint
from services.webhook.server import MAX_BODY, WebhookOptions, WebhookServer
from sim.patch import json_patch
from tests.fuzz.strategies import SAMPLES, budget, hostile_object, paths, sample, served_kinds

pytestmark = pytest.mark.timeout(120)
KINDS = served_kinds()
FIELD = re.compile(r"(^|[^\w])\$?\.?(spec|metadata)([.\[:]|\b)")
GATES = "ImagePullJobGate=true,KruiseDaemon=true"  # every kind's admission on
ANSWER_DEADLINE = 5.0  # the webhook's own timeoutSeconds is 10: answer well within it


class Client:
    def __init__(self, server: WebhookServer, session: aiohttp.ClientSession) -> None:
        self.base = f"https://127.0.0.1:{server.port}"
        self.session = session

    async def review(self, endpoint: Endpoint, obj: Any, *, operation: str = "CREATE",
                     old: Any = None) -> tuple[int, dict[str, Any] | str]:
        res = endpoint.resource
        body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "fuzz", "kind": {"group": res.group, "version": res.version, "kind": endpoint.kind_name},
            "resource": {"group": res.group, "version": res.version, "resource": res.plural},
            "operation": operation, "namespace": "default" if res.namespaced else "",
            "name": "fuzz", "object": obj, "oldObject": old}}
        data = msgspec.json.encode(body)
        async with self.session.post(self.base + endpoint.path, data=data,
                                     headers={"Content-Type": "application/json"},
                                     timeout=aiohttp.ClientTimeout(total=ANSWER_DEADLINE)) as resp:
            raw = await resp.read()
            if resp.status != 200:
                return resp.status, raw.decode(errors="replace")
            review = REVIEW_DECODER.decode(raw)
            assert review.response is not None
            r = review.response
            return 200, {"allowed": r.allowed, "code": r.status.code if r.status else 0,
                         "message": r.status.message if r.status else "",
                         "patch": msgspec.json.decode(r.patch) if r.patch else None}

    async def chain(self, kind: Kind, obj: Any, *, operation: str = "CREATE",
                    old: Any = None) -> list[tuple[Endpoint, int, dict[str, Any] | str]]:
        """What the API server does: the mutating webhook, its patch applied, then the validating one."""
        out: list[tuple[Endpoint, int, dict[str, Any] | str]] = []
        for endpoint in sorted(endpoints_of(kind), key=lambda e: not e.mutating):
            status, answer = await self.review(endpoint, obj, operation=operation, old=old)
            out.append((endpoint, status, answer))
            if status != 200 or not isinstance(answer, dict) or not answer["allowed"]:
                break
            if answer["patch"]:
                obj = json_patch(copy.deepcopy(obj), answer["patch"])
        return out


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    server = WebhookServer(WebhookOptions(url_host="127.0.0.1", gates=parse_feature_gates(GATES)))
    server.view.ready = True
    await server.start()
    assert server.bundle is not None
    ctx = ssl.create_default_context(cadata=server.bundle.ca_pem.decode())
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
            yield Client(server, session)
    finally:
        await server.close()


def endpoints_of(kind: Kind) -> list[Endpoint]:
    return [e for e in ENDPOINTS if e.resource is kind.resource]


def test_every_served_kind_has_a_sample() -> None:
    assert {k.kind for k in KINDS} <= {k.kind for k in SAMPLES}, "add a valid sample to tests/fuzz/strategies.py"


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
async def test_the_samples_are_admitted(client: Client, kind: Kind) -> None:
    for endpoint, status, answer in await client.chain(kind, sample(kind)):
        assert status == 200 and isinstance(answer, dict) and answer["allowed"], (endpoint.path, answer)


def names_a_field(message: str, kind: Kind, broken: str) -> bool:
    """A field path (`spec.x`, `metadata.name`), or a field of the kind by its name, as Kruise's own
    messages name them (`completionPolicy.activeDeadlineSeconds must be ...`, `image can not be empty`)."""
    keys = {p for path in paths(sample(kind)) for p in path if isinstance(p, str)}
    keys |= {k for k in re.split(r"[.\[\]]", broken) if k and not k.isdigit()}
    return bool(FIELD.search(message)) or any(re.search(rf"\b{re.escape(k)}\b", message, re.I) for k in keys)


def check_answer(status: int, answer: dict[str, Any] | str, kind: Kind, broken: str, endpoint: Endpoint) -> None:
    assert status == 200, f"{endpoint.path}: HTTP {status} for a broken {broken}: {answer!s:.300}"
    assert isinstance(answer, dict)
    if answer["allowed"]:
        return
    message = str(answer["message"])
    assert 400 <= int(answer["code"]) < 500, f"{endpoint.path}: {answer['code']} for {broken}: {message:.300}"
    assert len(message) <= 4096, f"{endpoint.path}: a {len(message)}-byte message for {broken}"
    assert names_a_field(message, kind, broken), f"{endpoint.path}: the denial of a broken {broken} names no field: {message:.300}"


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
@budget(25)
@given(data=st.data())
async def test_hostile_specs_are_answered_cleanly_and_the_webhook_keeps_serving(
        client: Client, kind: Kind, data: st.DataObject) -> None:
    obj, broken = data.draw(hostile_object(kind), label="object")
    operation = data.draw(st.sampled_from(["CREATE", "UPDATE"]), label="operation")
    old = sample(kind) if operation == "UPDATE" else None
    for endpoint, status, answer in await client.chain(kind, obj, operation=operation, old=old):
        check_answer(status, answer, kind, broken, endpoint)
    other = KINDS[(KINDS.index(kind) + 1) % len(KINDS)]
    for endpoint, status, answer in await client.chain(other, sample(other)):
        assert status == 200 and isinstance(answer, dict) and answer["allowed"], f"{endpoint.path} stopped serving"


async def test_an_oversized_or_undecodable_review_is_a_400_not_a_crash(client: Client) -> None:
    endpoint = endpoints_of(KINDS[0])[0]
    for body in (b"{", b"\xff\xfe", b'{"request": 1}', b"[" * 100_000, b'{"request": {"uid": "\xc3\x28"}}'):
        async with client.session.post(client.base + endpoint.path, data=body) as resp:
            assert resp.status == 400, (body[:20], resp.status)
            assert "AdmissionReview" in await resp.text()
    async with client.session.post(client.base + endpoint.path, data=b" " * (MAX_BODY + 1)) as resp:
        assert resp.status == 413
    status, answer = await client.review(endpoint, sample(KINDS[0]))
    assert status == 200 and isinstance(answer, dict) and answer["allowed"]


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
async def test_an_object_over_the_spec_size_limit_is_denied_naming_the_big_field(client: Client, kind: Kind) -> None:
    obj = sample(kind)
    obj["metadata"]["annotations"] = {"blob": "x" * (MAX_OBJECT_BYTES + 1)}
    [(endpoint, status, answer), *_] = await client.chain(kind, obj)
    assert status == 200 and isinstance(answer, dict) and not answer["allowed"], (endpoint.path, answer)
    assert answer["code"] == 422
    assert answer["message"].startswith(f"metadata.annotations.blob: Too long: may not be more than {MAX_OBJECT_BYTES} bytes")
