"""Hostile bus messages on every consumed subject, against a real nats-server and the real consumers.

The executor (KB_CMD), a node agent (KB_NODE), the planner (KB_STATE, KB_PROBE) and a prober (KB_STATE)
run in-process against the embedded cluster. Each example publishes one broken message on each
subject they consume: truncated JSON, another schema version, a wrong type, bytes that are not JSON or
not UTF-8, near-`max_payload` junk. Property: every message that does not decode is settled with a
`rejected` rollout event whose `subject` is the one it came on, and a good command published right
after is still carried out (the executor creates its pod, the node agent pulls its image): no consumer
stalls or dies.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.cloneset import CloneSet
from schemas.constants import BUS_MAX_PAYLOAD_BYTES
from schemas.kinds import CLONESET, PODPROBEMARKER
from schemas.kube import Pod
from schemas.messages import (
    CLONESETS,
    COMMAND_DECODER,
    ENCODER,
    PODS,
    PROBE_DECODER,
    STATE_DECODER,
    Command,
    CreateOp,
    PodState,
    ProbeResult,
    PullResultState,
    WorkloadRef,
)
from schemas.nodework import PullOp, pull_result_uid
from services.bus import UNDECODABLE, Bus
from services.demo import load_sample
from services.executor.service import run_executor
from services.kube import Kube, KubeNotFound
from services.natsd import NatsServer
from services.nodeagent.service import run_node_agent
from services.planner.podprobemarker.planner import PROBE_INPUT
from services.planner.service import Planner, run_planner
from services.prober.service import Prober
from services.runtime import open_runtime
from sim.cluster import SimCluster
from sim.nodes import NodeConfig
from tests.component.helpers import all_events, eventually, last_state
from tests.fuzz.strategies import HOSTILE, budget

pytestmark = pytest.mark.timeout(180)
NODE = "sim-node-0"
COUNTER = itertools.count()


@dataclass
class Env:
    kube: Kube
    bus: Bus
    cs: CloneSet
    planner: Planner
    prober: Prober

    def pod_command(self, name: str) -> Command:
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": {"app": "sample"},
                             "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                                                  "name": self.cs.metadata.name, "uid": self.cs.metadata.uid,
                                                  "controller": True}]},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.20"}]}}
        return Command(id=f"fuzz-{name}", verb="create", workload=CLONESET.ref(self.cs.metadata), pod=name,
                       ops=[CreateOp(resource=PODS, namespace="default", body=body)])

    def samples(self) -> dict[str, tuple[bytes, msgspec.json.Decoder[Any]]]:
        """A valid message of every consumed subject: (its subject -> JSON, the consumers' decoder)."""
        s = self.bus.subjects
        cmd = self.pod_command("never")
        pull = pull_command("valid:1")
        pod_state = PodState(object=msgspec.convert({"metadata": {"name": "p", "namespace": "default", "uid": "pu"},
                                                     "spec": {"nodeName": NODE}}, Pod))
        probe = ProbeResult(namespace="default", pod="p", pod_uid="pu", probe="m#check", state="Succeeded",
                            time="2026-12-02T10:00:00Z")
        return {
            s.command("default", self.cs.metadata.uid, "create"): (ENCODER.encode(cmd), COMMAND_DECODER),
            s.node(NODE, "pull"): (ENCODER.encode(pull), COMMAND_DECODER),
            s.state("default", None, "pod", "fuzz-pod"): (ENCODER.encode(pod_state), STATE_DECODER),
            s.probe("default", "pu", "m#check"): (ENCODER.encode(probe), PROBE_DECODER),
        }


def pull_command(image: str) -> Command:
    ref = WorkloadRef(api_version="apps.kruise.io/v1alpha1", kind="NodeImage", resource=CLONESETS,
                      namespace="", name=NODE, uid=f"ni-{NODE}")
    return Command(id=f"ni-{NODE}/pull/{image}", verb="pull", workload=ref, node=NODE,
                   node_ops=[PullOp(image=image, version=1, timeout_seconds=30)])


@pytest.fixture
async def env(tmp_path: Path, nats_server: NatsServer, uid: str) -> AsyncIterator[Env]:
    cfg = NodeConfig(bandwidth_mb_s=1000.0, default_image_size_mb=1.0, start_delay=0.01, pod_network=True)
    async with SimCluster(nodes=1, tmpdir=tmp_path, node_config=cfg) as sim:
        kube = await Kube.connect(str(sim.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="fuzz-bus", prefix=f"f{uid}")
        await bus.ensure_streams()
        sample_cs = load_sample()
        sample_cs["spec"]["replicas"] = 0  # type: ignore[index]
        cs = msgspec.json.decode(await kube.create(CLONESETS, "default", sample_cs), type=CloneSet)
        stop = asyncio.Event()
        agent_ready = asyncio.Event()
        agent_rt = await open_runtime("sim", node=NODE, kube=kube)
        prober = Prober(bus, {NODE: await open_runtime("sim", node=NODE, sim_url=sim.url)})
        planner = Planner(bus)
        tasks = [asyncio.create_task(run_executor(kube, bus, stop=stop)),
                 asyncio.create_task(run_node_agent(bus, NODE, agent_rt, stop=stop, ready=agent_ready)),
                 asyncio.create_task(run_planner(bus, stop=stop, planner=planner)),
                 asyncio.create_task(prober.run(stop))]
        try:
            await asyncio.wait_for(agent_ready.wait(), 10)
            yield Env(kube, bus, cs, planner, prober)
            for t in tasks:
                assert not t.done(), f"a consumer stopped: {t!r}"
        finally:
            stop.set()
            await asyncio.wait(tasks, timeout=15)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await agent_rt.close()
            await bus.close(drain=False)
            await kube.close()


@st.composite
def broken(draw: Any, valid: bytes) -> bytes:
    """One way to break a valid message."""
    how = draw(st.sampled_from(["truncated", "schema", "wrong-type", "not-json", "not-utf8", "huge"]))
    if how == "truncated":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if how == "not-json":
        return draw(st.binary(min_size=1, max_size=64).filter(lambda b: b.strip()[:1] not in (b"{",)))
    if how == "not-utf8":
        return b'{"kind": "\xff\xfe", "id": "\xc3\x28"}'
    if how == "huge":
        return b"[" * (BUS_MAX_PAYLOAD_BYTES - 4096)
    doc = msgspec.json.decode(valid)
    if how == "schema":
        doc["schema"] = draw(st.sampled_from([0, 2, 999, -1]))
    else:
        key = draw(st.sampled_from(sorted(k for k in doc if k not in ("schema",))))
        doc[key] = draw(HOSTILE.filter(lambda v: type(v) is not type(doc[key])))
    return msgspec.json.encode(doc)


def undecodable(decoder: msgspec.json.Decoder[Any], payload: bytes) -> bool:
    try:
        decoder.decode(payload)
    except UNDECODABLE:
        return True
    return False


async def rejected_subjects(bus: Bus) -> list[str]:
    return [e.subject for e in await all_events(bus, bus.subjects.events_of_type("rejected"))]


async def pod_exists(kube: Kube, name: str) -> bool:
    try:
        await kube.get(PODS, "default", name)
    except KubeNotFound:
        return False
    return True


@budget(6)
@given(data=st.data())
async def test_bad_messages_are_rejected_naming_their_subject_and_nothing_stalls(
        env: Env, data: st.DataObject) -> None:
    bus = env.bus
    expected: list[str] = []
    before = len(await rejected_subjects(bus))
    for subject, (valid, decoder) in env.samples().items():
        payload = data.draw(broken(valid), label=subject)
        await bus.publish_raw(subject, payload, {"Nats-Msg-Id": f"fuzz-{next(COUNTER)}"})
        if undecodable(decoder, payload):
            expected.append(subject)

    def all_rejected(subjects: list[str]) -> bool:
        return all(s in subjects[before:] for s in expected)

    await eventually(lambda: rejected_subjects(bus), all_rejected, timeout=20,
                     what=f"a rejected event naming each of {expected}")

    # Good work right after is still done: the executor creates a pod, the node agent pulls an image.
    n = next(COUNTER)
    await bus.publish_command(env.pod_command(f"good-{n}"))
    await bus.publish_command(pull_command(f"good-{n}:1"))
    await eventually(lambda: pod_exists(env.kube, f"good-{n}"), bool, timeout=20,
                     what="the executor to carry out the good command after the bad ones")
    subject = bus.subjects.state(None, None, "pullresult", pull_result_uid(NODE, f"good-{n}:1"))

    def pulled(state: Any) -> bool:
        return isinstance(state, PullResultState) and state.object.done

    await eventually(lambda: last_state(bus, subject), pulled, timeout=20,
                     what="the node agent to pull the good image after the bad messages")

    # ... and the watches go on: the planner reads a new workload and a probe result, the prober a pod.
    cs = msgspec.structs.replace(env.cs, metadata=msgspec.structs.replace(
        env.cs.metadata, name=f"good-{n}", uid=f"good-cs-{n}", resource_version="1"))
    await bus.publish_state(CLONESET.wrap(cs))
    pod = msgspec.convert({"metadata": {"name": f"good-{n}", "namespace": "default", "uid": f"good-pod-{n}"},
                           "spec": {"nodeName": NODE}}, Pod)
    await bus.publish_state(PodState(object=pod))
    await bus.publish(bus.subjects.probe("default", f"good-pod-{n}", "m#check"),
                      ProbeResult(namespace="default", pod=f"good-{n}", pod_uid=f"good-pod-{n}", probe="m#check",
                                  state="Succeeded", time="2026-12-02T10:00:00Z"), msg_id=f"good-probe-{n}")

    async def seen() -> tuple[bool, bool, bool]:
        return ((CLONESET.token, "default", f"good-{n}") in env.planner.by_name,
                (f"good-pod-{n}", "m#check") in env.planner.input_items[(PODPROBEMARKER.token, PROBE_INPUT.token)]
                .get(("default", "m"), {}),
                f"good-pod-{n}" in env.prober.pods)

    await eventually(seen, all, timeout=20, what="the planner and the prober to read good states after bad ones")


async def test_a_message_over_max_payload_is_refused_before_it_reaches_the_bus(env: Env) -> None:
    """`BUS_MAX_PAYLOAD_BYTES` is the server's limit: the client refuses to publish more."""
    assert env.bus.nc.max_payload == BUS_MAX_PAYLOAD_BYTES
    with pytest.raises(nats.errors.MaxPayloadError):
        await env.bus.publish_raw(env.bus.subjects.node(NODE, "pull"), b"x" * (BUS_MAX_PAYLOAD_BYTES + 1), {})


async def test_a_planner_starts_over_undecodable_commands_left_in_the_queue(nats_server: NatsServer, uid: str) -> None:
    """A restarted planner reads the commands still queued (to take over their expectations); one that
    is not UTF-8 inside a JSON string, queued while no executor ran, must not stop it from starting."""
    bus = await Bus.connect(nats_server.url, name="fuzz-planner", prefix=f"q{uid}")
    await bus.ensure_streams()
    stop = asyncio.Event()
    planner = Planner(bus)
    try:
        await bus.publish_raw(bus.subjects.command("default", "w-uid", "create"), b'{"id": "\xc3\x28"}',
                              {"Nats-Msg-Id": "bad-utf8"})
        task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
        await eventually(lambda: _value(planner.recovered), lambda n: n is not None or task.done(), timeout=20,
                         what="the planner to take over the queued commands")
        assert not task.done(), task
        assert planner.recovered == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


async def _value(x: object) -> object:
    return x
