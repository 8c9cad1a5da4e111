"""The node agent: one per node, it performs the node work the planner sends to that node.

`kruisebus executor --node NAME` consumes only `kb.node.<NAME>.>` (KB_NODE, a work queue) and carries
out each command's `node_ops` through the runtime seam (`services.runtime`): the agent never knows
whether it pulls on a simulated node, through a short-lived pod or over the node's CRI socket.

It reports in two places, for two readers. Each pull's start and end is a `PullResult` on the state
stream (latest per node and image, replayed by a restarted planner), which the planner folds into
NodeImage status: the agent writes nothing through the API (the `kube` and `cri` runtimes read pull
secrets, and `kube` runs its pull pods), and a pull costs one status write, not one per
progress step (the per-node status churn that makes Kruise's daemon conflict-prone at a few hundred
nodes). Progress for people is a `pull` rollout event (`kruisebus events --type pull`), throttled.

A pull is started only until its command's `not_after` (the planner's deadline for this node to take
it up); one still queued after that is reported failed with reason `Expired`, not pulled.

A pull that fails is a result, not an error: retrying and backing off are the job's decisions (its
`backoffLimit`), taken by the planner from the results. Only a failure to report (NATS) makes the
command redeliver; a redelivered pull joins or repeats the pull, which the runtime makes cheap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from nats.aio.msg import Msg

from schemas.kube import ObjectMeta
from schemas.messages import COMMAND_DECODER, Command, PullResultState, RolloutEvent
from schemas.nodework import REASON_EXPIRED, PullOp, PullPhase, PullResult, pull_result_uid
from schemas.subjects import EVENT_PULL, STREAM_NODE, node_agent_durable
from schemas.timefmt import format_time, parse_time
from services import metrics
from services.bus import Bus
from services.errors import ImagePullError
from services.runtime import ImageRuntime, PullAuth, PullProgress, SecretRef

log = logging.getLogger("kruisebus.nodeagent")

PROGRESS_STEP = 10  # percent between two progress events of one pull
PROGRESS_MIN_INTERVAL = 1.0  # seconds between two progress events of one pull


consumer_name = node_agent_durable  # the durable of one node's agent (schemas.subjects)


class NodeAgent:
    def __init__(self, bus: Bus, node: str, runtime: ImageRuntime) -> None:
        self.bus = bus
        self.node = node
        self.runtime = runtime
        self.pulls = 0  # pulls started (for tests and metrics)

    def _result(self, op: PullOp, cmd: Command, phase: PullPhase, **fields: object) -> PullResult:
        meta = ObjectMeta(name=self.node, uid=pull_result_uid(self.node, op.image),
                          resource_version=str(time.time_ns()))
        return PullResult(metadata=meta, node=self.node, image=op.image, version=op.version, phase=phase,
                          command_id=cmd.id, **fields)  # type: ignore[arg-type]

    async def _report(self, result: PullResult) -> None:
        await self.bus.publish_state(PullResultState(object=result))

    async def _event(self, cmd: Command, op: PullOp, phase: str, message: str, progress: int = 0) -> None:
        ev = RolloutEvent(type=EVENT_PULL, namespace="", workload=self.node, message=message,
                          time=format_time(datetime.now(UTC)), command_id=cmd.id,
                          data={"image": op.image, "phase": phase, "progress": progress, "version": op.version})
        await self.bus.publish_event(ev, msg_id=f"{cmd.id}:{self.node}:{phase}:{progress}"[:250])

    async def handle(self, cmd: Command, msg: Msg) -> None:
        for op in cmd.node_ops:
            await self.pull(cmd, op)

    async def expire(self, cmd: Command, op: PullOp) -> None:
        """The pull was not started by its command's `not_after`: say so instead of pulling. The planner
        waited that long for this node and may already have decided anew; the result counts as one
        failed attempt of the tag, so its retries (or the tag's Failed status) follow from it."""
        metrics.IMAGE_PULLS.labels(self.node, "expired").inc()
        message = (f"pull of {op.image} was not started on node {self.node} before its deadline "
                   f"{cmd.not_after} (the node's queue of pulls or its agent was too slow)")
        await self._report(self._result(op, cmd, "failed", reason=REASON_EXPIRED, message=message,
                                        completion_time=format_time(datetime.now(UTC))))
        await self._event(cmd, op, "expired", message)

    async def pull(self, cmd: Command, op: PullOp) -> None:
        deadline = parse_time(cmd.not_after) if cmd.not_after else None
        if deadline is not None and datetime.now(UTC) > deadline:
            await self.expire(cmd, op)
            return
        started = format_time(datetime.now(UTC))
        self.pulls += 1
        await self._report(self._result(op, cmd, "pulling", start_time=started))
        await self._event(cmd, op, "pulling", f"pulling image {op.image} on node {self.node}")
        last = [0, time.monotonic()]
        pending: set[asyncio.Task[None]] = set()

        def on_progress(progress: PullProgress) -> None:
            percent, now = progress.percent, time.monotonic()
            if percent - last[0] < PROGRESS_STEP or now - last[1] < PROGRESS_MIN_INTERVAL or percent >= 100:
                return
            last[:] = [percent, now]
            t = asyncio.ensure_future(self._event(cmd, op, "pulling", f"pulling image {op.image}: {percent}%",
                                                  percent))
            pending.add(t)
            t.add_done_callback(pending.discard)

        auth = PullAuth(secrets=tuple(SecretRef(namespace=s.namespace, name=s.name) for s in op.secrets))
        try:
            pulled = await self.runtime.pull(op.image, auth=auth, policy="Always" if op.always else "IfNotPresent",
                                             timeout=float(op.timeout_seconds), on_progress=on_progress)
        except ImagePullError as err:  # a timeout too: the job decides whether to try again
            metrics.IMAGE_PULLS.labels(self.node, "failed").inc()
            done = format_time(datetime.now(UTC))
            await self._report(self._result(op, cmd, "failed", reason=err.reason, message=str(err),
                                            start_time=started, completion_time=done))
            await self._event(cmd, op, "failed", f"pull of {op.image} failed on node {self.node}: {err}")
            return
        except Exception as err:
            # The runtime itself failed (its socket is down, a bug): say so, so the planner does not wait
            # on a "pulling" that will never end, then let the bus deliver the command again (after the
            # last delivery this failed result stands and the job's backoff decides).
            metrics.IMAGE_PULLS.labels(self.node, "failed").inc()
            await self._report(self._result(op, cmd, "failed", reason=type(err).__name__, message=str(err),
                                            start_time=started, completion_time=format_time(datetime.now(UTC))))
            raise
        finally:
            for t in pending:
                t.cancel()
        metrics.IMAGE_PULLS.labels(self.node, "succeeded").inc()
        done = format_time(datetime.now(UTC))
        await self._report(self._result(op, cmd, "succeeded", progress=100, image_id=pulled.image_id,
                                        start_time=started, completion_time=done))
        await self._event(cmd, op, "succeeded", f"pulled image {op.image} on node {self.node}", 100)


async def run_node_agent(bus: Bus, node: str, runtime: ImageRuntime, *, stop: asyncio.Event,
                         concurrency: int = 2, ack_wait: float = 30.0, max_deliver: int = 5,
                         agent: NodeAgent | None = None, ready: asyncio.Event | None = None) -> None:
    """Consume this node's work until `stop`; `concurrency` pulls at once (the kubelet's default of
    serialized pulls is 1; runtimes limit further on their own)."""
    agent = agent or NodeAgent(bus, node, runtime)
    await bus.consume(
        STREAM_NODE, consumer_name(node), filter_subject=bus.subjects.node_all(node), decoder=COMMAND_DECODER,
        handler=agent.handle, stop=stop, max_deliver=max_deliver, ack_wait=ack_wait,
        concurrency=concurrency, batch=concurrency, max_ack_pending=4 * concurrency, ready=ready,
    )


__all__ = ["NodeAgent", "consumer_name", "run_node_agent"]
