"""Planner replicas split the workloads by partition leases: each workload is planned by the one
replica holding its partition, a replica that stops hands its partitions back, and a replica that
takes a partition over waits for the commands its predecessor left queued (real nats-server)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from schemas.kinds import CLONESET, PVC
from schemas.kube import Pod
from schemas.messages import CloneSetState, Command, Expectation
from services.bus import Bus
from services.lease import LeaseStore
from services.natsd import NatsServer
from services.planner.kit.gates import FeatureGates
from services.planner.kit.workload import Shared
from services.planner.partitions import partition_of
from services.planner.service import Planner, run_planner
from tests.component.helpers import eventually
from tests.component.test_planner_service import _ToyPlan, sample_cloneset

PARTITIONS = 8
TTL = 2


class _Recorder:
    """Plans nothing; records which replica planned which workload."""

    kind = CLONESET
    owned = (PVC,)
    shared: tuple[Shared, ...] = ()

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self.log = log

    def plan(
        self,
        obj: Any,
        pods: Sequence[Pod],
        owned: Mapping[str, Sequence[Any]],
        previous: Any,
        *,
        now: datetime,
        gates: FeatureGates,
        create_limit: int | None,
    ) -> _ToyPlan:
        self.log.append((self.name, obj.metadata.uid))
        return _ToyPlan(commands=[])


class Replica:
    def __init__(self, url: str, prefix: str, name: str, log: list[tuple[str, str]], *,
                 state_sync_timeout: float = 0.0) -> None:
        self.url, self.prefix, self.name, self.log = url, prefix, name, log
        self.state_sync_timeout = state_sync_timeout
        self.stop = asyncio.Event()

    async def start(self) -> Replica:
        self.bus = await Bus.connect(self.url, name=f"test-{self.name}", prefix=self.prefix)
        self.planner = Planner(self.bus, registry={CLONESET.token: _Recorder(self.name, self.log)},
                               state_sync_timeout=self.state_sync_timeout)
        self.planner.claim_partitions(await LeaseStore.open(self.bus), self.name, PARTITIONS, TTL)
        self.task = asyncio.create_task(run_planner(self.bus, stop=self.stop, planner=self.planner))
        return self

    def held(self) -> list[int]:
        assert self.planner.claims is not None
        return self.planner.claims.held()

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)
        await self.bus.close()


async def test_each_workload_is_planned_by_the_holder_of_its_partition(
    nats_server: NatsServer, uid: str
) -> None:
    prefix = f"pp{uid}"
    bus = await Bus.connect(nats_server.url, name="test-publisher", prefix=prefix)
    await bus.ensure_streams()
    log: list[tuple[str, str]] = []
    clonesets = [sample_cloneset(f"cs-{i}") for i in range(12)]
    uids = {cs.metadata.uid for cs in clonesets}
    for cs in clonesets:
        await bus.publish_state(CloneSetState(object=cs))
    a = await Replica(nats_server.url, prefix, "a", log).start()
    b: Replica | None = None
    try:
        await eventually(
            lambda: _now(len(a.held())), lambda n: n == PARTITIONS, what="a to hold every partition"
        )
        await eventually(lambda: _now({u for _, u in log}), lambda seen: seen == uids, what="a to plan all")

        b = await Replica(nats_server.url, prefix, "b", log).start()
        await eventually(
            lambda: _now((len(a.held()), len(b.held()))),
            lambda n: n == (4, 4),
            timeout=15,
            what="the partitions split 4/4",
        )
        owner = {p: "a" for p in a.held()} | {p: "b" for p in b.held()}
        log.clear()
        for r in (a, b):
            r.planner.mark(r.planner.workloads)
        await eventually(
            lambda: _now({u for _, u in log}), lambda seen: seen == uids, what="every workload planned"
        )
        for who, workload in log:
            assert who == owner[partition_of(workload, PARTITIONS)], (who, workload)
        assert {who for who, _ in log} == {"a", "b"}

        await b.close()  # a graceful stop: b hands its partitions back at once
        b = None
        await eventually(
            lambda: _now(len(a.held())),
            lambda n: n == PARTITIONS,
            timeout=TTL * 2,
            what="a to take every partition back",
        )
        log.clear()
        a.planner.mark(a.planner.workloads)
        await eventually(
            lambda: _now({u for _, u in log}), lambda seen: seen == uids, what="a to plan all again"
        )
        assert {who for who, _ in log} == {"a"}
    finally:
        if b is not None:
            await b.close()
        await a.close()
        await bus.close()


async def test_a_partition_taken_over_waits_for_the_commands_left_queued(
    nats_server: NatsServer, uid: str
) -> None:
    """What the previous owner decided and no executor has done yet holds the workload, as after a
    planner restart: the new owner does not decide it a second time."""
    prefix = f"pq{uid}"
    bus = await Bus.connect(nats_server.url, name="test-publisher", prefix=prefix)
    await bus.ensure_streams()
    log: list[tuple[str, str]] = []
    a = await Replica(nats_server.url, prefix, "a", log).start()
    b = await Replica(nats_server.url, prefix, "b", log).start()
    try:
        await eventually(
            lambda: _now((len(a.held()), len(b.held()))),
            lambda n: n == (4, 4),
            timeout=15,
            what="the partitions split 4/4",
        )
        cs = next(
            c
            for c in (sample_cloneset("queued") for _ in range(100))
            if partition_of(c.metadata.uid, PARTITIONS) in b.held()
        )
        # b's decision, still queued for an executor, about a workload of b's partition
        await bus.publish_command(
            Command(
                id="left-behind",
                verb="create",
                workload=CLONESET.ref(cs.metadata),
                pod="queued-abc",
                expects=[Expectation(pod="queued-abc", kind="present")],
            )
        )
        await bus.publish_state(CloneSetState(object=cs))
        await eventually(
            lambda: _now(cs.metadata.uid in a.planner.workloads), bool, what="a to see the workload"
        )
        await b.close()
        await eventually(
            lambda: _now(len(a.held())),
            lambda n: n == PARTITIONS,
            timeout=TTL * 2,
            what="a to take b's partitions over",
        )
        wl = a.planner.workloads[cs.metadata.uid]
        assert [e.pod for e, _ in wl.expectations] == ["queued-abc"]
        assert ("a", cs.metadata.uid) not in log, "a planned while its predecessor's create was still queued"
    finally:
        if not b.stop.is_set():
            await b.close()
        await a.close()
        await bus.close()


async def test_a_partition_taken_over_is_planned_only_after_the_state_barrier(
    nats_server: NatsServer, uid: str
) -> None:
    """A replica that died with the watcher leaves a stream that may lack what its last commands did;
    the replica taking its partitions over asks the watcher again and plans nothing until answered."""
    prefix = f"pb{uid}"
    bus = await Bus.connect(nats_server.url, name="test-watcher", prefix=prefix)
    await bus.ensure_streams()
    asked, answering, stop_serving = [0], asyncio.Event(), asyncio.Event()
    answering.set()

    async def answer(_msg: object) -> bytes:
        asked[0] += 1
        await answering.wait()
        return b'{"schema": 1, "seq": 0}'

    serving = asyncio.create_task(bus.serve(bus.subjects.state_sync(), answer, stop=stop_serving))
    log: list[tuple[str, str]] = []
    clonesets = [sample_cloneset(f"cs-{i}") for i in range(12)]
    uids = {cs.metadata.uid for cs in clonesets}
    for cs in clonesets:
        await bus.publish_state(CloneSetState(object=cs))
    a = await Replica(nats_server.url, prefix, "a", log, state_sync_timeout=30).start()
    b = await Replica(nats_server.url, prefix, "b", log, state_sync_timeout=30).start()
    try:
        await eventually(lambda: _now((len(a.held()), len(b.held()))), lambda n: n == (4, 4), timeout=15,
                         what="the partitions split 4/4")
        await eventually(lambda: _now({u for _, u in log}), lambda seen: seen == uids, what="every workload planned")
        answering.clear()  # the watcher is down from now on
        before = asked[0]
        await b.close()
        await eventually(lambda: _now(len(a.held())), lambda n: n == PARTITIONS, timeout=TTL * 2,
                         what="a to take b's partitions over")
        await eventually(lambda: _now(asked[0]), lambda n: n > before, what="a to ask the barrier again")
        assert not a.planner.view_current.is_set(), "a plans the partitions taken over before the barrier"
        log.clear()
        answering.set()  # the watcher is back
        await eventually(lambda: _now({u for _, u in log}), lambda seen: seen == uids,
                         what="a to plan every workload once answered")
        assert {who for who, _ in log} == {"a"}
    finally:
        answering.set()
        if not b.stop.is_set():
            await b.close()
        await a.close()
        stop_serving.set()
        await serving
        await bus.close()


async def _now(value: Any) -> Any:
    return value
