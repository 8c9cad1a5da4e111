"""The planner service through its bus contract: state messages in, commands out (no cluster).

Also: a malformed state message is rejected without stopping the planner, and a restarted planner
rebuilds its view from the state stream and re-issues byte-identical command ids, which JetStream's
duplicate window drops.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from schemas.cloneset import CloneSet
from schemas.kinds import CLONESET, NODE, PVC
from schemas.kube import ControllerRevision, Node, ObjectMeta, OwnerReference, PersistentVolumeClaim, Pod
from schemas.messages import (
    COMMAND_DECODER,
    PROBE_DECODER,
    CloneSetState,
    Command,
    CreateOp,
    Expectation,
    NodeState,
    PodState,
    ProbeResult,
    PvcState,
    RevisionState,
    RolloutEvent,
)
from schemas.subjects import EVENT_STREAM_LOST, STREAM_EVENTS
from services.bus import Bus
from services.demo import load_sample
from services.lease import LeaseStore
from services.natsd import NatsServer
from services.planner.cloneset.revision import build_revision
from services.planner.kit.gates import FeatureGates
from services.planner.kit.workload import Input, Shared
from services.planner.service import Planner, run_planner
from tests.component.helpers import all_events, eventually, stream_messages


def sample_cloneset(name: str = "sample") -> CloneSet:
    body = load_sample()
    body["metadata"] = {"name": name, "namespace": "default", "uid": str(uuid.uuid4()), "generation": 1,
                        "resourceVersion": "10", "labels": {"app": "sample"}}
    return msgspec.convert(body, CloneSet)


def pod_from(create: Command) -> Pod:
    """The pod a create command asks for, as the watcher would report it once the API server made it."""
    body = create.ops[-1].body  # type: ignore[union-attr]
    meta = {**body["metadata"], "uid": f"uid-{create.pod}", "resourceVersion": "20",
            "creationTimestamp": "2026-01-01T00:00:00Z"}
    return msgspec.convert({**body, "metadata": meta, "status": {"phase": "Pending"}}, Pod)


async def commands(bus: Bus, workload_uid: str) -> list[Command]:
    """Every command for this workload still in the work queue (no executor consumes them here)."""
    cmds = [COMMAND_DECODER.decode(msg.data or b"") for msg in await stream_messages(bus, "CMD")]
    return [cmd for cmd in cmds if cmd.workload_uid == workload_uid]


@asynccontextmanager
async def planner_running(url: str, prefix: str) -> AsyncIterator[tuple[Bus, Planner]]:
    bus = await Bus.connect(url, name="test-planner", prefix=prefix)
    await bus.ensure_streams()
    stop = asyncio.Event()
    planner = Planner(bus, expectation_timeout=60)
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        yield bus, planner
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


async def test_state_in_commands_out_and_restart_dedup(nats_server: NatsServer, uid: str) -> None:
    prefix = f"p{uid}"
    cs = sample_cloneset()
    async with planner_running(nats_server.url, prefix) as (bus, _):
        await bus.publish_state(CloneSetState(object=cs))
        first = await eventually(lambda: commands(bus, cs.metadata.uid),
                                 lambda cmds: any(c.verb == "revision-create" for c in cmds),
                                 what="a revision-create command")
        create_rev = next(c for c in first if c.verb == "revision-create")
        op = create_rev.ops[0]
        assert isinstance(op, CreateOp) and op.resource.plural == "controllerrevisions"
        revision = msgspec.convert({**op.body, "metadata": {**op.body["metadata"], "uid": "rev-uid",
                                                            "resourceVersion": "11"}}, ControllerRevision)

        # The revision is observed: the next passes create the 5 pods, named from the revision, in
        # Kruise's slow-start batches (1, 2, then the 2 left of a batch of 4): each batch is planned
        # once the pods of the one before are observed.
        await bus.publish_state(RevisionState(object=revision))
        seen: set[str] = set()
        for size in (1, 2, 2):
            # the commands of one pass land one by one: wait for the whole batch, then check that
            # it is exactly that big (a bigger one would also show up in the next batch's count)
            def new(cmds: list[Command]) -> list[Command]:
                return [c for c in cmds if c.verb == "create" and c.pod not in seen]

            cmds = await eventually(lambda: commands(bus, cs.metadata.uid),
                                    lambda cmds, size=size: len(new(cmds)) >= size,
                                    what=f"a batch of {size} creates after {len(seen)} pods")
            batch = new(cmds)
            assert len(batch) == size, [c.pod for c in batch]
            assert all(c.revision == revision.metadata.name for c in batch)
            for c in batch:
                seen.add(c.pod)
                await bus.publish_state(PodState(object=pod_from(c)))
        assert sum(c.verb == "create" for c in await commands(bus, cs.metadata.uid)) == 5

        # Garbage on a state subject is rejected; the planner keeps serving other workloads.
        await bus.js.publish(bus.subjects.state("default", cs.metadata.uid, "pod", "junk"), b"\x00not json",
                             headers={"Nats-Msg-Id": "junk-1"})
        other = sample_cloneset("other")
        await bus.publish_state(CloneSetState(object=other))
        await eventually(lambda: commands(bus, other.metadata.uid), lambda c: c, what="the other workload's plan")
        rejected = await eventually(lambda: all_events(bus, f"{prefix}.events.*.*.rejected"), lambda e: e,
                                    what="a rejected event for the junk")
        assert "junk" in rejected[0].subject and rejected[0].reason == "malformed"
        before = await bus.js.stream_info(bus.subjects.stream("CMD"))

    # A new planner replays the state stream and decides the same things: same ids, so JetStream
    # drops every re-sent command as a duplicate and the work queue does not grow. (The other
    # workload's revision-create is still queued: the new planner takes over its expectation and
    # waits for it rather than planning that workload again.)
    async with planner_running(nats_server.url, prefix) as (bus, planner):
        await eventually(lambda: asyncio.sleep(0, (planner.plans, planner.recovered)),
                         lambda n: n[0] >= 1 and n[1] is not None and n[1] > 0,
                         what="the restarted planner to take over the queue and re-plan")
        assert planner.workloads[other.metadata.uid].revisions_expected
        after = await bus.js.stream_info(bus.subjects.stream("CMD"))
        assert after.state.messages == before.state.messages
        assert set(planner.workloads) >= {cs.metadata.uid, other.metadata.uid}


async def first_create(bus: Bus, cs: CloneSet, revision_uid: str) -> Command:
    """Drive a new CloneSet to its first pod create: its revision-create, the revision observed, then
    the create of the first slow-start batch (no executor runs: the commands stay queued)."""
    await bus.publish_state(CloneSetState(object=cs))
    first = await eventually(lambda: commands(bus, cs.metadata.uid),
                             lambda cmds: any(c.verb == "revision-create" for c in cmds),
                             what="a revision-create command")
    op = next(c for c in first if c.verb == "revision-create").ops[0]
    assert isinstance(op, CreateOp)
    await bus.publish_state(RevisionState(object=msgspec.convert(
        {**op.body, "metadata": {**op.body["metadata"], "uid": revision_uid, "resourceVersion": "11"}},
        ControllerRevision)))
    cmds = await eventually(lambda: commands(bus, cs.metadata.uid),
                            lambda cmds: any(c.verb == "create" for c in cmds), what="the first create")
    (create,) = [c for c in cmds if c.verb == "create"]
    return create


async def msg_ids(bus: Bus) -> list[str]:
    """The Nats-Msg-Id of every command in the work queue, in order."""
    return [(msg.headers or {}).get("Nats-Msg-Id", "") for msg in await stream_messages(bus, "CMD")]


async def test_refused_create_is_retried_after_a_backoff_one_pod_at_a_time(nats_server: NatsServer,
                                                                          uid: str) -> None:
    """A create the API server refused for good (quota, admission) has no newer view to wait for: the
    planner re-sends it after a backoff, as `<id>@retry1`, and slow start drops back to one pod, so
    the refusal is not repeated for every missing replica."""
    cs = sample_cloneset("refused")
    async with planner_running(nats_server.url, f"p{uid}") as (bus, _):
        create = await first_create(bus, cs, "rev-uid")

        # what the executor publishes when the API server answers 403
        await bus.publish_event(RolloutEvent(
            type="rejected", namespace="default", workload=cs.metadata.name, time="2026-01-01T00:00:00Z",
            message="pods is forbidden: exceeded quota", command_id=create.id, reason="forbidden"),
            msg_id=f"rejected:{create.id}")
        ids = await eventually(lambda: msg_ids(bus), lambda ids: f"{create.id}@retry1" in ids, timeout=15,
                               what="the refused create to be re-sent after its backoff")
        creates = [c for c in await commands(bus, cs.metadata.uid) if c.verb == "create"]
        assert [c.pod for c in creates] == [create.pod, create.pod], "slow start is back to one pod"
        assert ids.count(f"{create.id}@retry1") == 1


async def test_a_restarted_planner_waits_for_the_commands_still_queued(nats_server: NatsServer, uid: str) -> None:
    """The first planner's create is still in the work queue when a second planner starts on a view
    that has moved (the CloneSet's resourceVersion changed, so a create decided now gets another id
    and is not dropped as a duplicate): the second planner takes over the queued command's
    expectation instead of deciding that pod again."""
    prefix = f"p{uid}"
    cs = sample_cloneset("queued")
    other = sample_cloneset("sentinel")
    async with planner_running(nats_server.url, prefix) as (bus, _):
        create = await first_create(bus, cs, "rev-q")
        assert [(e.pod, e.kind) for e in create.expects] == [(create.pod, "present")]

    moved = msgspec.structs.replace(cs, metadata=msgspec.structs.replace(cs.metadata, resource_version="12"))
    async with planner_running(nats_server.url, prefix) as (bus, planner):
        await bus.publish_state(CloneSetState(object=moved))
        await bus.publish_state(CloneSetState(object=other))
        await eventually(lambda: asyncio.sleep(0, planner.recovered), lambda n: n is not None and n >= 2,
                         what="the queued commands to be taken over")
        # the sentinel is planned, so the loop has looked at every dirty workload at least once
        await eventually(lambda: commands(bus, other.metadata.uid), lambda c: c, what="the sentinel's plan")
        creates = [c for c in await commands(bus, cs.metadata.uid) if c.verb == "create"]
        assert [c.id for c in creates] == [create.id], "the queued create must not be decided again"

        # once its pod is observed, planning goes on: the next batch, and never that pod again
        await bus.publish_state(PodState(object=pod_from(create)))
        creates = await eventually(lambda: commands(bus, cs.metadata.uid),
                                   lambda cmds: sum(c.verb == "create" for c in cmds) >= 2,
                                   what="the next batch of creates")
        names = [c.pod for c in creates if c.verb == "create"]
        assert names.count(create.pod) == 1 and len(set(names)) == len(names), names


class _ToyPlan(msgspec.Struct):
    commands: list[Command]
    events: list[RolloutEvent] = []
    expectations: list[Expectation] = []
    requeue_after: float | None = None
    accepted: bool = True
    current_revision: str = ""
    update_revision: str = ""


class _ToyPlanner:
    """A workload planner that knows nothing of CloneSets: it reports what its view holds."""

    kind = CLONESET
    owned = (PVC,)
    shared: tuple[Shared, ...] = ()

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> _ToyPlan:
        claims = [c.metadata.name for c in owned.get(PVC.token, ())]
        return _ToyPlan(commands=[Command(
            id=f"toy/{obj.metadata.uid}/{len(pods)}/{','.join(claims)}", verb="toy",
            workload=self.kind.ref(obj.metadata), ops=[])])


async def test_the_engine_plans_any_registered_workload_planner(nats_server: NatsServer, uid: str) -> None:
    """The service routes by the table of kinds and plans through the registry: a planner registered
    for a kind gets its workload, the pods it controls and the objects of the kinds it owns."""
    bus = await Bus.connect(nats_server.url, name="test-toy", prefix=f"p{uid}")
    await bus.ensure_streams()
    stop = asyncio.Event()
    planner = Planner(bus, registry={CLONESET.token: _ToyPlanner()})
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        cs = sample_cloneset("toy")
        ref = [OwnerReference(api_version="apps.kruise.io/v1alpha1", kind="CloneSet", name="toy",
                              uid=cs.metadata.uid, controller=True)]
        await bus.publish_state(CloneSetState(object=cs))
        await bus.publish_state(PvcState(object=PersistentVolumeClaim(metadata=ObjectMeta(
            name="data-toy-a", namespace="default", uid="pvc-1", resource_version="3", owner_references=ref))))
        await bus.publish_state(PodState(object=Pod(metadata=ObjectMeta(
            name="toy-a", namespace="default", uid="pod-1", resource_version="4", owner_references=ref))))
        cmds = await eventually(lambda: commands(bus, cs.metadata.uid),
                                lambda cmds: any(c.id == f"toy/{cs.metadata.uid}/1/data-toy-a" for c in cmds),
                                what="the toy planner's command over the whole view")
        assert {c.verb for c in cmds} == {"toy"}, "only the registered planner planned"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


class _NodeReader(_ToyPlanner):
    """Reads every node (like a DaemonSet) and the claims whose name ends in its own (keyed)."""

    owned = ()
    shared = (Shared(NODE), Shared(PVC, key=lambda pvc: pvc.metadata.name.rsplit("-", 1)[-1]))

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> _ToyPlan:
        nodes = ",".join(n.metadata.name for n in owned.get(NODE.token, ()))
        claims = ",".join(c.metadata.name for c in owned.get(PVC.token, ()))
        return _ToyPlan(commands=[Command(id=f"nodes/{obj.metadata.uid}/{nodes}/{claims}", verb="toy",
                                          workload=self.kind.ref(obj.metadata), ops=[])])


async def test_shared_kinds_reach_every_workload_that_reads_them(nats_server: NatsServer, uid: str) -> None:
    """Objects no workload controls (nodes) reach the planners that declare them shared, in name
    order; a keyed share re-plans only the workload the object names, and a deletion re-plans too."""
    bus = await Bus.connect(nats_server.url, name="test-shared", prefix=f"p{uid}")
    await bus.ensure_streams()
    stop = asyncio.Event()
    planner = Planner(bus, registry={CLONESET.token: _NodeReader()})
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))

    def node(name: str, uid_: str) -> Node:
        return Node(metadata=ObjectMeta(name=name, uid=uid_, resource_version="1"))

    def claim(name: str) -> PersistentVolumeClaim:
        return PersistentVolumeClaim(metadata=ObjectMeta(name=name, namespace="default", uid=f"pvc-{name}",
                                                         resource_version="1"))

    try:
        a, b = sample_cloneset("a"), sample_cloneset("b")
        for cs in (a, b):
            await bus.publish_state(CloneSetState(object=cs))
        await bus.publish_state(NodeState(object=node("n2", "node-2")))
        await bus.publish_state(NodeState(object=node("n1", "node-1")))

        async def ids(cs: Any) -> set[str]:
            return {c.id for c in await commands(bus, cs.metadata.uid)}

        for cs in (a, b):
            await eventually(lambda cs=cs: ids(cs), lambda got, cs=cs: f"nodes/{cs.metadata.uid}/n1,n2/" in got,
                             what=f"{cs.metadata.name} planned over both nodes")
        await bus.publish_state(PvcState(object=claim("data-b")))
        await eventually(lambda: ids(b), lambda got: f"nodes/{b.metadata.uid}/n1,n2/data-b" in got,
                         what="the keyed claim re-plans b")
        await bus.publish_state(NodeState(object=node("n2", "node-2"), deleted=True))
        await eventually(lambda: ids(a), lambda got: f"nodes/{a.metadata.uid}/n1/data-b" in got,
                         what="a node deletion re-plans a")
        assert f"nodes/{a.metadata.uid}/n1,n2/data-b" not in await ids(a), \
            "the claim keyed to b must not re-plan a"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


async def test_a_rejection_releases_only_that_commands_expectations(nats_server: NatsServer, uid: str) -> None:
    """A stale status write must not release the creates still in flight (the next pass would decide
    those pods again); a rejected pod command releases that pod's expectations."""
    bus = await Bus.connect(nats_server.url, name="test-reject", prefix=f"p{uid}")
    try:
        planner = Planner(bus)
        cs = sample_cloneset("rej")
        await planner.on_state(CloneSetState(object=cs))
        wl = planner.workloads[cs.metadata.uid]
        wl.expectations = [(Expectation(pod="rej-a", kind="present"), 1e12),
                           (Expectation(pod="rej-b", kind="present"), 1e12)]

        def rejected(command_id: str, pod: str = "") -> RolloutEvent:
            return RolloutEvent(type="rejected", namespace="default", workload="rej", time="2026-01-01T00:00:00Z",
                                message="stale", reason="stale", command_id=command_id, pod=pod,
                                workload_uid=cs.metadata.uid)

        await planner.on_event(rejected(f"{cs.metadata.uid}/status/10/x"))
        assert [e.pod for e, _ in wl.expectations] == ["rej-a", "rej-b"]
        await planner.on_event(rejected(f"{cs.metadata.uid}/create/rej-a/r/10", pod="rej-a"))
        assert [e.pod for e, _ in wl.expectations] == ["rej-b"]
        assert cs.metadata.uid in planner.dirty, "a rejection plans the workload again"
    finally:
        await bus.close()


async def test_a_rejection_is_not_blamed_on_a_recreated_workload_of_the_same_name(
        nats_server: NatsServer, uid: str) -> None:
    """CloneSet `web` is deleted and created again (a new uid) while a command of the old one is still
    queued; that command's rejection belongs to the old uid, so the new workload keeps its expectations
    (by name it would lose them and decide its pods a second time)."""
    bus = await Bus.connect(nats_server.url, name="test-reject", prefix=f"p{uid}")
    try:
        planner = Planner(bus)
        old = sample_cloneset("web")
        await planner.on_state(CloneSetState(object=old))
        old_wl = planner.workloads[old.metadata.uid]
        old_create = Command(id=f"{old.metadata.uid}/create/web-a/r/10", verb="create",
                             workload=CLONESET.ref(old.metadata), pod="web-a")
        planner.sendable(old_wl, [old_create])  # sent for the old uid
        await planner.on_state(CloneSetState(object=old, deleted=True))
        new = msgspec.structs.replace(old, metadata=msgspec.structs.replace(old.metadata, uid="cs-web-2"))
        await planner.on_state(CloneSetState(object=new))
        wl = planner.workloads["cs-web-2"]
        wl.expectations = [(Expectation(pod="web-a", kind="present"), 1e12)]
        planner.dirty.clear()

        # as the executor reports it (bus.reject): the rejected command's workload, by name and uid
        def rejected(command_id: str, workload_uid: str) -> RolloutEvent:
            return RolloutEvent(type="rejected", namespace="default", workload="web", time="2026-01-01T00:00:00Z",
                                message="stale", reason="stale", command_id=command_id, pod="web-a",
                                workload_uid=workload_uid)

        await planner.on_event(rejected(old_create.id, ""))  # uid known from what this planner sent
        await planner.on_event(rejected(f"{old.metadata.uid}/delete/web-b", old.metadata.uid))  # a predecessor's
        assert [e.pod for e, _ in wl.expectations] == ["web-a"] and not planner.dirty
        await planner.on_event(rejected("cs-web-2/create/web-a/r/11", "cs-web-2"))
        assert wl.expectations == [] and "cs-web-2" in planner.dirty
    finally:
        await bus.close()


async def test_a_restarted_planner_knows_its_predecessors_rejections(nats_server: NatsServer, uid: str) -> None:
    """The first planner's create was rejected and it died before re-sending it. The new planner decides
    the same create; under its old id the duplicate window would drop it (the pod would wait for a create
    that never comes), so it must re-send it as `<id>@retry1`."""
    prefix = f"p{uid}"
    cs = sample_cloneset("again")
    async with planner_running(nats_server.url, prefix) as (bus, _):
        create = await first_create(bus, cs, "rev-again")
    # what the executor does when the API server refuses it, after that planner is gone: the command
    # leaves the work queue (term) and a rejected event says why
    publisher = await Bus.connect(nats_server.url, name="test-executor-stand-in", prefix=prefix)
    try:
        for raw in await publisher.stream_messages("CMD"):
            if (raw.headers or {}).get("Nats-Msg-Id") == create.id:
                assert raw.seq is not None
                await publisher.js.delete_msg(publisher.subjects.stream("CMD"), raw.seq)
        await publisher.publish_event(RolloutEvent(
            type="rejected", namespace="default", workload=cs.metadata.name, time="2026-01-01T00:00:00Z",
            message="pods is forbidden: exceeded quota", command_id=create.id, reason="forbidden",
            pod=create.pod), msg_id=f"rejected:{create.id}")
    finally:
        await publisher.close()
    async with planner_running(nats_server.url, prefix) as (bus, _):
        await eventually(lambda: msg_ids(bus), lambda ids: f"{create.id}@retry1" in ids, timeout=15,
                         what="the rejected create to be re-sent under a new id")


async def test_the_planner_goes_on_after_nats_is_killed_and_restarted(tmp_path: Path, uid: str) -> None:
    """Every long-lived consumer of the planner must survive a NATS restart (same port and store). One
    that started at a time could not be re-created after the reconnect (the server refused the client's
    reset) and the planner stopped planning for good."""
    server = NatsServer(tmp_path / "nats", port=-1)
    (tmp_path / "nats").mkdir()
    server.start()
    try:
        async with planner_running(server.url, f"p{uid}") as (bus, planner):
            first, second = sample_cloneset("before"), sample_cloneset("after")
            await bus.publish_state(CloneSetState(object=first))
            await eventually(lambda: commands(bus, first.metadata.uid), lambda c: c, what="a plan before the restart")
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)
            await bus.publish_state(CloneSetState(object=second))
            await eventually(lambda: commands(bus, second.metadata.uid), lambda c: c, timeout=30,
                             what="a plan after NATS came back")
            # and the rejections still arrive: without them a rejected decision is re-sent under its
            # old id, which the duplicate window drops (the soak's 60 s stalls after a NATS restart)
            await bus.publish_event(RolloutEvent(
                type="rejected", namespace="default", workload="after", time="2026-01-01T00:00:00Z",
                message="stale", reason="stale", command_id="after/x"), msg_id="rejected:after/x")
            await eventually(lambda: asyncio.sleep(0, planner.rejected), lambda r: "after/x" in r, timeout=30,
                             what="a rejection after NATS came back")
    finally:
        await asyncio.to_thread(server.cleanup)


class _Expecting(_ToyPlanner):
    """Expects a pod that never comes."""

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> _ToyPlan:
        plan = super().plan(obj, pods, owned, previous, now=now, gates=gates, create_limit=create_limit)
        plan.expectations = [Expectation(pod=f"{obj.metadata.name}-never", kind="present")]
        return plan


async def test_a_workload_held_by_expectations_has_one_timer_however_often_it_changes(
        nats_server: NatsServer, uid: str) -> None:
    """While its expectations are pending a workload is not planned; every change meanwhile used to
    schedule a loop callback of its own for the expectations' deadline. It is one entry of the timer heap,
    and the workload is planned again once the expectation expired."""
    bus = await Bus.connect(nats_server.url, name="test-held", prefix=f"p{uid}")
    await bus.ensure_streams()
    stop = asyncio.Event()
    planner = Planner(bus, registry={CLONESET.token: _Expecting()}, expectation_timeout=5.0)
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        cs = sample_cloneset("held")
        await bus.publish_state(CloneSetState(object=cs))
        await eventually(lambda: asyncio.sleep(0, planner.plans), lambda n: n == 1, what="the first pass")
        for rv in range(11, 21):
            cs = msgspec.structs.replace(cs, metadata=msgspec.structs.replace(cs.metadata, resource_version=str(rv)))
            await bus.publish_state(CloneSetState(object=cs))
        await eventually(lambda: asyncio.sleep(0, planner.workloads[cs.metadata.uid].obj.metadata.resource_version),
                         lambda v: v == "20", what="the changes to arrive")
        await eventually(lambda: asyncio.sleep(0, planner.dirty), lambda d: not d, what="the changes looked at")
        assert planner.plans == 1, "planned while its expectation was pending"
        assert planner.timers.when(cs.metadata.uid) is not None and len(planner.timers) == 1
        await eventually(lambda: asyncio.sleep(0, planner.plans), lambda n: n == 2, timeout=10,
                         what="the pass once the expectation expired")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


class _LapsingPlanner(_Expecting):
    """Plans while the partition's lease runs out (the clock jumps past its deadline)."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> _ToyPlan:
        self.clock[0] += 3600.0
        plan = super().plan(obj, pods, owned, previous, now=now, gates=gates, create_limit=create_limit)
        plan.commands.append(Command(id=f"{obj.metadata.uid}/create/{obj.metadata.name}-a", verb="create",
                                     workload=CLONESET.ref(obj.metadata), pod=f"{obj.metadata.name}-a"))
        return plan


async def test_a_pass_whose_lease_ran_out_leaves_nothing_behind(nats_server: NatsServer, uid: str) -> None:
    """The partition's lease lapses while a pass plans: another replica decides now, so this pass
    publishes nothing and remembers nothing (no accepted spec, no sent commands, no expectations, no
    slow-start batch), or this replica would act on stale bookkeeping when it gets the partition back."""
    bus = await Bus.connect(nats_server.url, name="test-lapse", prefix=f"p{uid}")
    await bus.ensure_streams()
    clock = [0.0]
    try:
        planner = Planner(bus, registry={CLONESET.token: _LapsingPlanner(clock)})
        claims = planner.claim_partitions(await LeaseStore.open(bus), "lapsing", 1, 15)
        claims.clock = claims.member.clock = lambda: clock[0]  # the leases' clock, which the pass moves on
        await claims.step()
        assert claims.held() == [0]
        cs = sample_cloneset("lapse")
        await planner.on_state(CloneSetState(object=cs))
        wl = planner.workloads[cs.metadata.uid]
        assert await planner.plan_one(wl) is None
        assert (wl.previous, wl.expectations, wl.created, planner.sent, planner.plans) == (None, [], [], {}, 0)
        assert await stream_messages(bus, "CMD") == []
    finally:
        await bus.close()


class _Following(_ToyPlanner):
    """A CloneSet planner that also consumes KB_PROBE as an extra input (items routed by the
    `<workload>#...` probe name), to show the engine follows any planner's declared inputs."""

    inputs = (Input(token="notes", subject=lambda s: s.probe_all(), decoder=PROBE_DECODER,
                    route=lambda r: (r.namespace, r.probe.split("#", 1)[0]), key=lambda r: (r.pod_uid, r.probe),
                    order=lambda r: (r.pod, r.probe), pod=lambda r: r.pod_uid),)

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> _ToyPlan:
        self.seen.append([f"{r.pod}:{r.state}" for r in owned.get("notes", ())])
        return _ToyPlan(commands=[])


async def test_a_planner_gets_the_items_of_the_inputs_it_declares(nats_server: NatsServer, uid: str) -> None:
    """Extra streams are a planner's declaration (`Input`), not the engine's knowledge of a kind: the
    items replayed before the first pass and those arriving later reach the workload they are routed to,
    re-plan it, and are forgotten with their pod."""
    bus = await Bus.connect(nats_server.url, name="test-inputs", prefix=f"p{uid}")
    await bus.ensure_streams()
    following = _Following()
    cs = sample_cloneset("web")

    def note(pod: str, state: str, workload: str = "web") -> ProbeResult:
        return ProbeResult(namespace="default", pod=pod, pod_uid=f"{pod}-uid", probe=f"{workload}#ready",
                           state=state, time="2026-01-01T00:00:00Z")

    async def publish(r: ProbeResult) -> None:
        await bus.publish(bus.subjects.probe(r.namespace, r.pod_uid, r.probe), r, msg_id=f"{r.pod_uid}/{r.state}")

    await publish(note("web-a", "Succeeded"))
    await publish(note("db-a", "Succeeded", workload="db"))  # another workload's
    await bus.publish_state(CloneSetState(object=cs))
    stop = asyncio.Event()
    planner = Planner(bus, registry={CLONESET.token: following})
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        await eventually(lambda: asyncio.sleep(0, following.seen), lambda s: s, what="the first pass")
        assert following.seen[0] == ["web-a:Succeeded"], "planned before its input was replayed"
        await publish(note("web-b", "Failed"))
        await eventually(lambda: asyncio.sleep(0, following.seen), lambda s: s[-1] == ["web-a:Succeeded", "web-b:Failed"],
                         what="the new item to re-plan it")
        gone = Pod(metadata=ObjectMeta(name="web-a", namespace="default", uid="web-a-uid", resource_version="9"))
        await bus.publish_state(PodState(object=gone, deleted=True))
        await bus.publish_state(CloneSetState(object=msgspec.structs.replace(
            cs, metadata=msgspec.structs.replace(cs.metadata, resource_version="11"))))
        await eventually(lambda: asyncio.sleep(0, following.seen), lambda s: s[-1] == ["web-b:Failed"],
                         what="the pod's item forgotten")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()


async def test_a_lost_stream_is_reported_once_on_every_workloads_log(nats_server: NatsServer, uid: str) -> None:
    """The loss of the rollout log cannot be undone; the user is told on each workload's own log, once
    per new stream however many times it is reported (replicas, retries: the msg id carries the new
    stream's creation time)."""
    bus = await Bus.connect(nats_server.url, name="test-lost", prefix=f"p{uid}")
    try:
        await bus.ensure_streams()
        planner = Planner(bus)
        for name in ("one", "two"):
            await planner.on_state(CloneSetState(object=sample_cloneset(name)))
        await bus.js.delete_stream(bus.subjects.stream(STREAM_EVENTS))
        info = (await bus.ensure_streams())[bus.subjects.stream(STREAM_EVENTS)]
        await planner.stream_lost(STREAM_EVENTS, info)
        await planner.stream_lost(STREAM_EVENTS, info)
        events = await all_events(bus)
        assert sorted(e.workload for e in events) == ["one", "two"]
        assert {(e.type, e.reason) for e in events} == {(EVENT_STREAM_LOST, STREAM_EVENTS)}
        assert all("events before this one are gone" in e.message for e in events)
        assert events[0].data["stream"] == bus.subjects.stream(STREAM_EVENTS)
    finally:
        await bus.close()


async def test_a_planner_plans_only_once_the_watcher_says_the_state_stream_is_current(
        nats_server: NatsServer, uid: str) -> None:
    """A planner restarted together with the watcher must not plan on what the dead watcher last
    published: it asks the state barrier and plans once it has read as far as the answer names.
    Here the stream lacks the CloneSet's revision when the planner starts (planned at once it would
    decide a revision-create); the watcher's relist publishes it before answering."""
    prefix = f"p{uid}"
    bus = await Bus.connect(nats_server.url, name="test-planner", prefix=prefix)
    watcher = await Bus.connect(nats_server.url, name="test-watcher", prefix=prefix)
    await bus.ensure_streams()
    cs = sample_cloneset("barrier")
    await bus.publish_state(CloneSetState(object=cs))
    asked, relisted = asyncio.Event(), asyncio.Event()
    seq = 0

    async def answer(_msg: object) -> bytes:
        asked.set()
        await relisted.wait()
        return msgspec.json.encode({"seq": seq})

    stop, serving_stop = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(watcher.serve(watcher.subjects.state_sync(), answer, stop=serving_stop))
    planner = Planner(bus, expectation_timeout=60, state_sync_timeout=60)
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        await eventually(lambda: asyncio.sleep(0, asked.is_set()), bool, what="the planner to ask the barrier")
        # parked on the barrier: the replayed view is not planned
        assert planner.plans == 0 and not await commands(bus, cs.metadata.uid)

        # the "relist": the revision the stream lacked, then the answer naming it
        revision = build_revision(cs, 1, None)
        revision_name = revision.metadata.name
        revision = msgspec.structs.replace(revision, metadata=msgspec.structs.replace(
            revision.metadata, uid="rev-barrier", resource_version="11"))
        seq = (await bus.publish_state(RevisionState(object=revision))).seq
        relisted.set()
        cmds = await eventually(lambda: commands(bus, cs.metadata.uid), lambda c: c, what="the first plan")
        assert [c.verb for c in cmds if c.verb == "revision-create"] == [], \
            "planned on the view from before the barrier (no revision)"
        assert any(c.verb == "create" and c.revision == revision_name for c in cmds), [c.verb for c in cmds]
    finally:
        relisted.set()
        stop.set()
        serving_stop.set()
        await asyncio.wait_for(task, 15)
        await serving
        await watcher.close()
        await bus.close()


async def test_a_planner_that_no_watcher_answers_plans_after_the_timeout(nats_server: NatsServer, uid: str) -> None:
    """No watcher: the planner waits `state_sync_timeout`, then plans on the stream as it is."""
    prefix = f"p{uid}"
    bus = await Bus.connect(nats_server.url, name="test-planner", prefix=prefix)
    await bus.ensure_streams()
    cs = sample_cloneset("alone")
    await bus.publish_state(CloneSetState(object=cs))
    stop = asyncio.Event()
    planner = Planner(bus, expectation_timeout=60, state_sync_timeout=1.0)
    task = asyncio.create_task(run_planner(bus, stop=stop, planner=planner))
    try:
        cmds = await eventually(lambda: commands(bus, cs.metadata.uid), lambda c: c, what="a plan after the timeout")
        assert "revision-create" in [c.verb for c in cmds]
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await bus.close()
