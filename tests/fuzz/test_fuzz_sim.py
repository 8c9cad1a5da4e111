"""Hostile CR bodies through the sim's API (what `kubectl create` sends), and an object too big for the bus.

Every served kind's create endpoint gets broken bodies (the strategies of `tests/fuzz/strategies.py`,
plus bytes that are not JSON at all) over real HTTP. Property: the answer is a 2xx (the CRD schema
allows it; it is pruned or defaulted) or a 4xx Status whose message names the problem, never a 5xx or
a dropped connection, and the sim still serves the next request.

An object admitted while no webhook ran that is too big for a bus message (its state cannot be
published) must not stall the watcher: the other objects of its kind are still published, and a
`rejected` rollout event names the object and the field holding the bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.constants import BUS_MAX_PAYLOAD_BYTES, MAX_OBJECT_BYTES, REASON_TOO_LARGE
from schemas.kinds import CLONESET, Kind
from schemas.subjects import Subjects
from services.bus import REASON_MALFORMED, UNDECODABLE, Bus
from services.kube import Kube
from services.natsd import NatsServer
from services.watcher.service import run_watcher, undecodable_report
from sim.cluster import SimCluster
from sim.testing import FAST
from tests.component.helpers import all_events, eventually, last_state
from tests.fuzz.strategies import budget, hostile_object, sample, served_kinds

pytestmark = pytest.mark.timeout(120)
KINDS = served_kinds()
NAMES = itertools.count()  # every example creates objects of its own


class Api:
    def __init__(self, sim: SimCluster, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    def collection(self, kind: Kind) -> str:
        res = kind.api_resource
        ns = "/namespaces/default" if res.namespaced else ""
        return f"{self.sim.url}/apis/{res.group}/{res.version}{ns}/{res.plural}"

    async def post(self, kind: Kind, body: bytes) -> tuple[int, dict[str, Any]]:
        async with self.session.post(self.collection(kind), data=body,
                                     headers={"Content-Type": "application/json"},
                                     timeout=aiohttp.ClientTimeout(total=10)) as resp:
            raw = await resp.read()
            return resp.status, msgspec.json.decode(raw) if raw else {}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with SimCluster(nodes=1, tmpdir=tmp_path, **FAST) as sim:  # type: ignore[arg-type]
        async with aiohttp.ClientSession() as session:
            yield Api(sim, session)


def check_status(status: int, answer: dict[str, Any], what: str) -> None:
    assert status < 500, f"{what}: {status} {str(answer)[:300]}"
    if status >= 400:
        assert answer.get("kind") == "Status", f"{what}: {status} without a Status: {str(answer)[:300]}"
        assert answer.get("message"), f"{what}: {status} Status without a message"
    if status == 422:  # a field error, as kube-apiserver words it: names the field
        assert re.search(r"\b(spec|metadata)\b", answer["message"]), f"{what}: names no field: {answer['message']:.300}"


@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
@budget(15)
@given(data=st.data())
async def test_hostile_bodies_get_a_4xx_naming_the_problem_and_the_sim_stays_up(
        api: Api, kind: Kind, data: st.DataObject) -> None:
    obj, broken = data.draw(hostile_object(kind), label="object")
    name = f"f{next(NAMES)}"
    if isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {**obj["metadata"], "name": name}
        obj["metadata"].pop("uid", None)
        obj["metadata"].pop("resourceVersion", None)
    raw = msgspec.json.encode(obj)
    cut = data.draw(st.sampled_from([None, 1, len(raw) // 2, len(raw) - 1]), label="truncated at")
    status, answer = await api.post(kind, raw if cut is None else raw[:cut])
    check_status(status, answer, f"{kind.kind} {broken} (cut at {cut})")
    if cut is not None:
        assert status == 400, f"a truncated body was answered {status}"
    if status < 300:  # stored: what the watcher reads back, and reports when it cannot decode it
        stored = msgspec.json.encode(answer)
        try:
            kind.decoder.decode(stored)
        except UNDECODABLE as e:
            subject, event = undecodable_report(kind, stored, e, Subjects())
            assert subject is not None and event.workload == name, event
            assert event.field and event.field in event.message, event
    good = sample(kind)
    good["metadata"] = {"name": f"ok-{name}", **({"namespace": "default"} if kind.api_resource.namespaced else {})}
    status, answer = await api.post(kind, msgspec.json.encode(good))
    assert status == 201, f"the sim stopped serving {kind.kind}: {status} {str(answer)[:300]}"


async def test_bytes_that_are_not_json_are_a_400(api: Api) -> None:
    for body in (b"", b"\xff\xfe\x00", b"{" * 10_000, b'{"apiVersion": 1}', b"null", b"[]", b'"x"',
                 b'{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "metadata": {"name": "\xc3\x28"}}'):
        status, answer = await api.post(KINDS[0], body)
        check_status(status, answer, repr(body[:20]))
        assert 400 <= status < 500, (body[:20], status)


def big_cloneset(name: str, blob_bytes: int) -> dict[str, Any]:
    obj = sample(CLONESET)
    obj["metadata"] = {"name": name, "namespace": "default"}
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "BLOB", "value": "x" * blob_bytes}]
    return obj


def null_template_cloneset(name: str) -> dict[str, Any]:
    obj = big_cloneset(name, 1)
    obj["spec"]["template"]["spec"] = None  # stored as is (the template preserves unknown fields)
    return obj


BAD_OBJECTS = {
    "too-big-for-the-bus": (lambda: big_cloneset("huge", BUS_MAX_PAYLOAD_BYTES + 1000), REASON_TOO_LARGE,
                            "spec.template.spec.containers[0].env[0].value",
                            f"may not be more than {MAX_OBJECT_BYTES} bytes"),
    "undecodable": (lambda: null_template_cloneset("huge"), REASON_MALFORMED, "spec.template.spec",
                    "Expected `object`, got `null`"),
}


@pytest.mark.parametrize("case", list(BAD_OBJECTS))
async def test_an_object_the_bus_cannot_carry_is_rejected_and_the_watcher_goes_on(
        tmp_path: Path, nats_server: NatsServer, uid: str, case: str) -> None:
    make, reason, field, text = BAD_OBJECTS[case]
    async with SimCluster(nodes=1, tmpdir=tmp_path, **FAST) as sim:  # type: ignore[arg-type]
        kube = await Kube.connect(str(sim.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="fuzz-watcher", prefix=f"z{uid}")
        await bus.ensure_streams()
        ready = asyncio.Event()
        watcher = asyncio.create_task(run_watcher(kube, bus, ready=ready))
        try:
            await kube.create(CLONESET.api_resource, "default", make())
            await asyncio.wait_for(ready.wait(), 20)
            small = await kube.create(CLONESET.api_resource, "default", big_cloneset("small", 10))
            small_uid = msgspec.json.decode(small)["metadata"]["uid"]
            subject = bus.subjects.state("default", small_uid, CLONESET.token, small_uid)
            await eventually(lambda: last_state(bus, subject), lambda s: s is not None, timeout=20,
                             what="the small CloneSet on the state stream next to the huge one")
            events = await eventually(lambda: all_events(bus, bus.subjects.events_of_type("rejected")),
                                      lambda evs: any(e.workload == "huge" for e in evs), timeout=20,
                                      what="a rejected event for the huge CloneSet")
            [ev] = [e for e in events if e.workload == "huge"]
            assert ev.reason == reason
            assert ev.field == field, ev.field
            assert ev.subject.startswith(f"z{uid}.state.default.") and f".{CLONESET.token}." in ev.subject
            assert text in ev.message, ev.message
            assert not watcher.done(), "the watcher stopped"
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await bus.close(drain=False)
            await kube.close()
