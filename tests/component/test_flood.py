"""A flood of pod changes on a workload whose commands always fail: the planner (in this process, on a
real nats-server) must not turn every pod change into another attempt of the failing command.

The workload is scaled in; every delete is refused for good by a stand-in executor (as an admission
webhook denying it would), while thousands of state messages about its pods arrive (a kubelet
reporting status, probes flapping). Each of them is a newer view of the pod, which lets a rejected
decision be re-sent at once; without a backoff across views, the command was re-sent as fast as the
executor could refuse it. Checked: the re-sends back off (counted in `kruisebus_planner_retries_total`),
the work queue stays short and what the planner remembers per command stays bounded.
"""

from __future__ import annotations

import asyncio
import math
import time
import tracemalloc
from typing import Any

import msgspec
from nats.aio.msg import Msg

from schemas.messages import COMMAND_DECODER, CloneSetState, Command, PodState
from schemas.subjects import STREAM_CMD
from services import metrics
from services.bus import Bus
from services.errors import PermanentError
from services.natsd import NatsServer
from tests.component.helpers import all_events, eventually
from tests.component.test_planner_service import (
    commands,
    first_create,
    planner_running,
    pod_from,
    sample_cloneset,
)

PODS = 3
FLOOD = 6000  # state messages, spread over the pods
REASON = "forbidden"


def counter(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())


async def test_a_flood_of_pod_changes_does_not_storm_a_command_that_always_fails(
        nats_server: NatsServer, uid: str) -> None:
    prefix = f"p{uid}"
    cs = sample_cloneset("stuck")
    cs = msgspec.structs.replace(cs, spec=msgspec.structs.replace(cs.spec, replicas=PODS))
    async with planner_running(nats_server.url, prefix) as (bus, planner):
        # the pods exist: created batch by batch, each observed
        pods: dict[str, Any] = {}
        create = await first_create(bus, cs, "rev-stuck")
        while True:
            pods[create.pod] = pod_from(create)
            await bus.publish_state(PodState(object=pods[create.pod]))
            if len(pods) == PODS:
                break
            cmds = await eventually(lambda: commands(bus, cs.metadata.uid),
                                    lambda c: any(x.verb == "create" and x.pod not in pods for x in c),
                                    what="the next create")
            create = next(x for x in cmds if x.verb == "create" and x.pod not in pods)
        # an executor that refuses every delete for good, and does nothing else
        refused: list[str] = []

        async def refuse(cmd: Command, msg: Msg) -> None:
            if cmd.verb == "delete":
                refused.append(cmd.id)
                raise PermanentError("admission webhook denied the delete", reason=REASON)

        stop = asyncio.Event()
        executor_bus = await Bus.connect(nats_server.url, name="test-refusing-executor", prefix=prefix)
        executor = asyncio.create_task(executor_bus.consume(
            STREAM_CMD, "executor", filter_subject=bus.subjects.command_all(), decoder=COMMAND_DECODER,
            handler=refuse, stop=stop))
        try:
            sent_before = counter(metrics.PLANNER_RETRIES, "delete", "sent")
            held_before = counter(metrics.PLANNER_RETRIES, "delete", "held")
            scaled = msgspec.structs.replace(cs, spec=msgspec.structs.replace(cs.spec, replicas=0),
                                             metadata=msgspec.structs.replace(cs.metadata, generation=2,
                                                                              resource_version="30"))
            await bus.publish_state(CloneSetState(object=scaled))
            await eventually(lambda: asyncio.sleep(0, len(refused)), lambda n: n >= PODS, timeout=30,
                             what="every delete refused once")

            refused_before = len(refused)
            began = time.monotonic()
            tracemalloc.start()
            try:
                # the flood: every pod's state again and again, each a new resourceVersion
                names = sorted(pods)
                window = 200
                for start in range(0, FLOOD, window):
                    batch = []
                    for i in range(start, min(start + window, FLOOD)):
                        pod = pods[names[i % PODS]]
                        rv = str(1000 + i)
                        batch.append(bus.publish_state(PodState(object=msgspec.structs.replace(
                            pod, metadata=msgspec.structs.replace(pod.metadata, resource_version=rv)))))
                    await asyncio.gather(*batch)
                # the planner has taken every message in (its view holds the last one of each pod)
                last = {names[i % PODS]: str(1000 + i) for i in range(FLOOD - PODS, FLOOD)}
                wl = planner.workloads[cs.metadata.uid]
                await eventually(lambda: asyncio.sleep(0, {n: p.metadata.resource_version for n, p in wl.by_name.items()}),
                                 lambda seen: all(seen.get(n) == rv for n, rv in last.items()), timeout=30,
                                 what="the flood to reach the planner's view")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            lasted = time.monotonic() - began
            attempts = len(refused) - refused_before
            queued = (await bus.js.stream_info(bus.subjects.stream(STREAM_CMD))).state.messages
        finally:
            stop.set()
            await asyncio.wait_for(executor, 15)
            await executor_bus.close()

        sent = counter(metrics.PLANNER_RETRIES, "delete", "sent") - sent_before
        held = counter(metrics.PLANNER_RETRIES, "delete", "held") - held_before
        print(f"flood of {FLOOD} pod states in {lasted:.1f}s: {attempts} deletes refused meanwhile, {sent:.0f} "
              f"re-sent, {held:.0f} held back; {queued} commands queued; peak traced memory {peak / 1e6:.1f} MB")
        # the re-sends back off (2 s, 4 s, 8 s, ... per command from its second rejection) however often
        # the pods change: about log2(duration) attempts per pod, not one per pod change
        assert held > sent, (sent, held)
        bound = PODS * (2 + math.ceil(math.log2(max(lasted, 2.0))))
        assert attempts <= bound, f"{attempts} attempts of {PODS} deletes in {lasted:.1f}s (at most {bound})"
        assert queued <= 2 * PODS, f"{queued} commands queued"
        # what the planner remembers is per command, not per attempt
        assert len(planner.rejected) <= PODS + 5 and len(planner.sent) <= 4 * PODS + 5
        assert peak < 200e6, f"peak traced memory {peak / 1e6:.1f} MB"
        # the user sees the refusals, at most the event rate's worth
        events = await all_events(bus, f"{prefix}.events.*.*.rejected")
        assert {e.reason for e in events} == {REASON}
