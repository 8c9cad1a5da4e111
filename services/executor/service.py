"""The executor: commands from KB_CMD -> Kubernetes API calls.

It holds no rollout logic. A command lists the exact operations the planner decided (with their
preconditions); the executor performs them in order and settles the message by what the API server
said. A failed precondition means the planner decided on a view that is no longer true: the command
is dropped (term + `rejected` rollout event with reason "stale") and the planner re-plans from fresh
state. Throttling and server errors are transient (nak with a delay); anything else that can never
succeed is recorded as a Warning Event on the workload and a `rejected` rollout event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from opentelemetry.trace import SpanKind, Status, StatusCode

from schemas.constants import API_VERSION, COMPONENT
from schemas.messages import (
    COMMAND_DECODER,
    EVENTS,
    UNLOGGED_VERBS,
    Command,
    CreateOp,
    DeleteOp,
    KubeEvent,
    PatchOp,
    RolloutEvent,
)
from schemas.subjects import STREAM_CMD
from services import telemetry
from services.bus import Bus
from services.errors import PermanentError, StaleError, TransientError
from services.kube import (
    Kube,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeServerError,
    KubeTooManyRequests,
)

log = logging.getLogger("kruisebus.executor")

CONSUMER = "executor"
# Commands handled at once. Each is a few API round trips (the op, the Event) and a NATS publish, so
# the rate is concurrency / round-trip time: 16 capped a 1,000-pod rollout at ~60 updates/s. The API
# write rate is bounded by Kube's token bucket (`qps`/`burst`), not by this.
CONCURRENCY = 64


def rfc3339(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _has_test_ops(op: PatchOp) -> bool:
    return op.patch_type == "json" and isinstance(op.patch, list) and any(
        isinstance(p, dict) and p.get("op") == "test" for p in op.patch)


def _is_precondition_failure(op: Any, err: KubeError) -> bool:
    """Does this error say the command's view of the object was stale?"""
    if isinstance(err, KubeNotFound):
        return True  # the object is gone (deletes treat 404 as done before getting here)
    if isinstance(err, KubeConflict):
        return True  # stale resourceVersion, uid precondition, or a concurrent writer
    if isinstance(err, KubeInvalid) and isinstance(op, PatchOp) and _has_test_ops(op):
        # A failed JSON-patch `test` is a 422 whose message is not a field validation error.
        msg = err.message.lower()
        return "test" in msg or "rejected our request" in msg
    return False


class Executor:
    def __init__(self, kube: Kube, bus: Bus) -> None:
        self.kube = kube
        self.bus = bus

    async def perform(self, op: CreateOp | PatchOp | DeleteOp) -> None:
        ns = op.namespace or None
        if isinstance(op, CreateOp):
            try:
                await self.kube.create(op.resource, ns, op.body)
            except KubeConflict as e:
                if not e.already_exists:
                    raise
        elif isinstance(op, PatchOp):
            await self.kube.patch(op.resource, ns, op.name, op.patch, op.patch_type, op.subresource)
        else:
            try:
                await self.kube.delete(op.resource, ns, op.name, uid=op.uid,
                                       resource_version=op.resource_version,
                                       grace_period_seconds=op.grace_period_seconds)
            except KubeNotFound:
                pass  # already gone: the delete is done

    async def perform_traced(self, cmd: Command, op: CreateOp | PatchOp | DeleteOp) -> None:
        """One API call as a CLIENT span under the command's process span (so, in the rollout trace)."""
        verb = type(op).__name__.removesuffix("Op").lower()
        name = getattr(op, "name", "") or cmd.pod
        attributes: dict[str, str] = {
            telemetry.K8S_NAMESPACE: op.namespace or cmd.namespace,
            telemetry.KB_WORKLOAD: cmd.workload,
            telemetry.KB_VERB: cmd.verb,
            telemetry.KB_COMMAND_ID: cmd.id,
            "k8s.resource": op.resource.plural,
        }
        if op.resource.plural == "pods" and name:
            attributes[telemetry.K8S_POD_NAME] = name
        if cmd.revision:
            attributes[telemetry.KB_REVISION] = cmd.revision
        subresource = f"/{op.subresource}" if isinstance(op, PatchOp) and op.subresource else ""
        # API errors are outcomes the executor handles (stale, throttled, refused): recorded without a
        # traceback (see telemetry.error_event); anything else is a bug and keeps it.
        with self.bus.tracer.start_as_current_span(
                f"{verb} {op.resource.plural}{subresource}", kind=SpanKind.CLIENT, attributes=attributes,
                record_exception=False, set_status_on_exception=False) as span:
            try:
                await self.perform(op)
            except KubeError as e:
                span.set_attribute("http.response.status_code", e.status)
                span.set_status(Status(StatusCode.ERROR, e.message[:200]))
                telemetry.error_event(span, e)
                raise
            except Exception as e:
                span.set_status(Status(StatusCode.ERROR, str(e)[:200]))
                span.record_exception(e)
                raise

    async def record(self, cmd: Command, event: KubeEvent) -> None:
        """A Kubernetes Event on the workload, as Kruise writes them (best effort)."""
        now = rfc3339(datetime.now(UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{cmd.workload}.", "namespace": cmd.namespace},
            "involvedObject": {"apiVersion": API_VERSION, "kind": "CloneSet", "name": cmd.workload,
                               "namespace": cmd.namespace, "uid": cmd.workload_uid},
            "reason": event.reason,
            "message": event.message,
            "type": event.type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.create(EVENTS, cmd.namespace, body)
        except KubeError as e:
            log.warning("could not record event %s on %s/%s: %s", event.reason, cmd.namespace,
                        cmd.workload, e)

    async def handle(self, cmd: Command, msg: Msg) -> None:
        for index, op in enumerate(cmd.ops):
            try:
                await self.perform_traced(cmd, op)
            except (KubeTooManyRequests, KubeServerError) as e:
                raise TransientError(f"command {cmd.id} op {index}: {e}", delay=2.0) from None
            except KubeError as e:
                if _is_precondition_failure(op, e):
                    raise StaleError(f"command {cmd.id} op {index} ({op.resource.plural} "
                                     f"{getattr(op, 'name', '')}): precondition failed: {e.message}") from None
                if cmd.on_failure is not None:
                    await self.record(cmd, KubeEvent(type="Warning", reason=cmd.on_failure.reason,
                                                     message=f"{cmd.on_failure.message}: {e.message}"))
                kind = "forbidden" if isinstance(e, KubeForbidden) else "invalid"
                raise PermanentError(f"command {cmd.id} op {index} {kind}: {e.message}") from None
        event = RolloutEvent(
            type=cmd.verb, namespace=cmd.namespace, workload=cmd.workload,
            message=cmd.on_success.message if cmd.on_success else f"{cmd.verb} done",
            time=rfc3339(datetime.now(UTC)), pod=cmd.pod, revision=cmd.revision, command_id=cmd.id,
        )
        # The Kubernetes Event and the rollout event are independent: write both at once.
        done: list[Awaitable[Any]] = []
        if cmd.on_success is not None:
            done.append(self.record(cmd, cmd.on_success))
        if cmd.verb not in UNLOGGED_VERBS:
            done.append(self.bus.publish_event(event, msg_id=f"done:{cmd.id}"))
        await asyncio.gather(*done)


async def run_executor(kube: Kube, bus: Bus, *, stop: Any) -> None:
    executor = Executor(kube, bus)
    await bus.consume(
        STREAM_CMD, CONSUMER, filter_subject=bus.subjects.command_all(), decoder=COMMAND_DECODER,
        handler=executor.handle, stop=stop, max_deliver=8, ack_wait=30,
        concurrency=CONCURRENCY, batch=CONCURRENCY, max_ack_pending=4 * CONCURRENCY,
    )


__all__ = ["Executor", "run_executor"]
