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
import hashlib
import logging
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.msg import Msg
from opentelemetry.util.types import AttributeValue

from schemas.constants import COMPONENT
from schemas.kube import ObjectMeta
from schemas.messages import (
    COMMAND_DECODER,
    EVENTS,
    UNLOGGED_VERBS,
    Command,
    CreateOp,
    DeleteOp,
    KubeEvent,
    OwnerCurrent,
    PatchOp,
    RolloutEvent,
)
from schemas.subjects import EXECUTOR_DURABLE, REASON_NAME_TAKEN, STREAM_CMD
from schemas.timefmt import format_micro, format_time, parse_time
from services import metrics, telemetry
from services.bus import Bus, outcome_msg_id
from services.errors import PermanentError, StaleError, TransientError
from services.kube import (
    Kube,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeNotFound,
    KubeServerError,
    is_precondition_failure,
)
from services.settings import ExecutorSettings

log = logging.getLogger("kruisebus.executor")

CONSUMER = EXECUTOR_DURABLE


class _Meta(msgspec.Struct):
    metadata: ObjectMeta


_META = msgspec.json.Decoder(_Meta)


def event_name(cmd: Command, event: KubeEvent) -> str:
    """`<workload>.<16 hex>`: Kubernetes' own Event naming, with the suffix derived from the command
    (id and reason) instead of the clock."""
    digest = hashlib.sha256(f"{cmd.id}\n{event.reason}".encode()).hexdigest()[:16]
    name = event.involved.name if event.involved is not None else cmd.workload.name
    return f"{name}.{digest}"


def _body_name(op: CreateOp) -> str:
    """The name a create's body gives its object ("" when the server is to generate one)."""
    meta = op.body.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return str(name) if name else ""


def _tested(op: CreateOp | PatchOp | DeleteOp) -> bool:
    """A JSON patch with `test` operations (a 422 may then mean a failed precondition)."""
    return isinstance(op, PatchOp) and op.patch_type == "json" and isinstance(op.patch, list) and any(
        isinstance(p, dict) and p.get("op") == "test" for p in op.patch)


def _delivery(msg: Msg) -> int:
    """Which delivery of its message this is (1: the first)."""
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # not a JetStream message (a direct call in a test)
        return 1


def _queued(msg: Msg) -> str:
    """When the message entered its stream (its JetStream timestamp), with microseconds; "" outside
    JetStream (a direct call in a test)."""
    try:
        stamp = msg.metadata.timestamp
    except Exception:
        return ""
    return format_micro(stamp) if isinstance(stamp, datetime) else ""


def span_attributes(cmd: Command) -> dict[str, AttributeValue]:
    """What the API calls of a command carry on their CLIENT spans (beside Kube's own)."""
    attrs: dict[str, AttributeValue] = {
        telemetry.K8S_NAMESPACE: cmd.namespace,
        telemetry.KB_WORKLOAD: cmd.workload.name,
        telemetry.KB_VERB: cmd.verb,
        telemetry.KB_COMMAND_ID: cmd.id,
    }
    if cmd.revision:
        attrs[telemetry.KB_REVISION] = cmd.revision
    return attrs


class Executor:
    def __init__(self, kube: Kube, bus: Bus) -> None:
        self.kube = kube
        self.bus = bus

    async def check_owner(self, owner: OwnerCurrent, namespace: str | None,
                          attributes: Mapping[str, AttributeValue]) -> None:
        """Raise `StaleError` unless the create's owner is still the object, at the spec, it was
        decided for (see `OwnerCurrent`). One GET per create; creates are rare next to the writes of
        a rollout, and a stale one costs a whole surplus pod."""
        try:
            raw = await self.kube.get(owner.resource, namespace, owner.name, attributes=attributes)
        except KubeNotFound:
            raise StaleError(f"{owner.resource.plural} {owner.name} is gone") from None
        meta = _META.decode(raw).metadata
        if meta.uid != owner.uid:
            raise StaleError(f"{owner.resource.plural} {owner.name} was re-created (uid {meta.uid})")
        if meta.deletion_timestamp:
            raise StaleError(f"{owner.resource.plural} {owner.name} is being deleted")
        if meta.generation != owner.generation:
            raise StaleError(f"{owner.resource.plural} {owner.name} is at generation {meta.generation}, "
                             f"the create was decided at {owner.generation}")

    async def made_for(self, op: CreateOp, owner: OwnerCurrent, namespace: str | None,
                       attributes: Mapping[str, AttributeValue]) -> bool:
        """Whether the object the create names already exists, owned by `owner` (by uid).

        Asked only when the owner has moved on since the create was decided. A redelivered create
        whose first delivery made the object (the ack lost in a NATS restart) is then done, not stale:
        rejecting it would tell the planner the pod will never appear, and the planner, not seeing the
        pod in its view yet, would create a replacement beside it (one pod above maxSurge, seen in the
        chaos soak). An object that is not there, or is another owner's, leaves the create stale.
        """
        name = _body_name(op)
        if not name:
            return False
        try:
            raw = await self.kube.get(op.resource, namespace, name, attributes=attributes)
        except KubeNotFound:
            return False
        found = _META.decode(raw).metadata
        ref = found.controller_ref()
        return not found.deletion_timestamp and ref is not None and ref.uid == owner.uid

    async def perform(self, op: CreateOp | PatchOp | DeleteOp,
                      attributes: Mapping[str, AttributeValue] | None = None) -> bool:
        """One operation: each API call a CLIENT span (from `Kube`) with the command's `attributes`.

        Returns False when the change was already there (a create met AlreadyExists, a delete found
        nothing): the operation is done, but not by this call.
        """
        ns = op.namespace or None
        attrs = attributes or {}
        if isinstance(op, CreateOp):
            if op.owner is not None:
                try:
                    await self.check_owner(op.owner, ns, attrs)
                except StaleError:
                    if await self.made_for(op, op.owner, ns, attrs):
                        return False
                    raise
            return await self.create(op, ns, attrs)
        elif isinstance(op, PatchOp):
            await self.kube.patch(op.resource, ns, op.name, op.patch, op.patch_type, op.subresource,
                                  attributes=attrs)
        else:
            try:
                await self.kube.delete(op.resource, ns, op.name, uid=op.uid,
                                       resource_version=op.resource_version,
                                       grace_period_seconds=op.grace_period_seconds,
                                       propagation_policy=op.propagation_policy, attributes=attrs)
            except KubeNotFound:
                return False  # already gone: the delete is done
        return True

    async def create(self, op: CreateOp, ns: str | None, attributes: Mapping[str, AttributeValue]) -> bool:
        """Create; False when an object of that name was already there (a duplicate command: done).

        kube-apiserver reports a clash as 409 AlreadyExists only when the body has no `generateName`;
        with one (even beside an explicit `name`, as Kruise's pod bodies have) it is a "please try
        again" 500 ServerTimeout, which would be retried for as long as the command lives. A named body
        is therefore sent without `generateName` (the server ignores it then anyway), and a 500 for a
        named body is settled by reading the object.
        """
        body = op.body
        meta = body.get("metadata")
        name = _body_name(op)
        if name and isinstance(meta, dict) and "generateName" in meta:
            body = {**body, "metadata": {k: v for k, v in meta.items() if k != "generateName"}}
        try:
            await self.kube.create(op.resource, ns, body, attributes=attributes)
        except KubeConflict as e:
            if not e.already_exists:
                raise
            await self.check_holder(op, ns, name, attributes)
            return False
        except KubeServerError as e:
            if not (name and e.status_reason == "ServerTimeout"):
                raise
            try:
                raw = await self.kube.get(op.resource, ns, name, attributes=attributes)
            except KubeNotFound:
                raise e from None
            await self.check_holder(op, ns, name, attributes, held=raw)
            return False
        return True

    async def check_holder(self, op: CreateOp, namespace: str | None, name: str,
                           attributes: Mapping[str, AttributeValue], *, held: bytes | None = None) -> None:
        """After AlreadyExists: raise unless the object holding the name has the body's controller.

        An object of that name made by an earlier command for the same owner is the create done. One
        of another owner, or of none, is not: the planner cannot see it (it sees what its workloads
        own), so calling the create done would leave it waiting for an object that never turns up,
        re-deciding the same name for ever. A `name-taken` rejection tells it the name is taken; for a
        ControllerRevision it then hashes again with the next collision count, as Kubernetes'
        ``CreateControllerRevision`` does. One exception: a ControllerRevision of no controller holding
        the very data (a workload deleted with `--cascade=orphan` and applied again) is adopted, as
        Kubernetes' controllers adopt orphaned history: hashing again would roll every pod for nothing.
        A body without a controller reference keeps the old rule. ``held``: the holder, when read already.
        """
        meta = op.body.get("metadata")
        refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
        controller = next((r for r in refs if isinstance(r, dict) and r.get("controller")), None) \
            if isinstance(refs, list) else None
        if not name or controller is None:
            return
        if held is None:
            try:
                held = await self.kube.get(op.resource, namespace, name, attributes=attributes)
            except KubeNotFound:
                return  # gone again since: the create's retry will tell
        found = _META.decode(held).metadata
        holder = found.controller_ref()
        if holder is not None and holder.uid == controller.get("uid"):
            return
        if holder is None and "data" in op.body and msgspec.json.decode(held).get("data") == op.body["data"]:
            # adopt: the uid and resourceVersion tests make a concurrent change fail the patch (stale)
            await self.kube.patch(op.resource, namespace, name, [
                {"op": "test", "path": "/metadata/uid", "value": found.uid},
                {"op": "test", "path": "/metadata/resourceVersion", "value": found.resource_version},
                {"op": "add", "path": "/metadata/ownerReferences",
                 "value": [*(msgspec.to_builtins(r) for r in found.owner_references), controller]},
            ], "json", attributes=attributes)
            return
        shown = f"{holder.kind} {holder.name}" if holder is not None else "no controller"
        raise PermanentError(
            f"{op.resource.plural} {name} already exists and is controlled by {shown}, not by "
            f"{controller.get('kind')} {controller.get('name')}", reason=REASON_NAME_TAKEN)

    async def record(self, cmd: Command, event: KubeEvent, *, once: bool = False) -> None:
        """A Kubernetes Event on the workload, as Kruise writes them (best effort).

        `once`: the Event states the outcome of this command, so its name is derived from the command
        id: a redelivered command (its first delivery done, the executor killed before the ack) meets
        AlreadyExists instead of writing a second "succeed to update pod" for one update.
        """
        now = format_time(datetime.now(UTC))
        ref = cmd.workload
        involved = {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name,
                    "namespace": ref.namespace, "uid": ref.uid}
        if event.involved is not None:  # an Event of another object (a pod a PodProbeMarker marked)
            target = event.involved
            involved = {"apiVersion": target.api_version, "kind": target.kind, "name": target.name,
                        "namespace": target.namespace or ref.namespace, "uid": target.uid}
        # an Event lives in its object's namespace; a cluster-scoped workload's in "default", as
        # kube-apiserver files them (a SidecarSet's Event of a pod goes to the pod's namespace)
        namespace = (event.involved.namespace if event.involved is not None and event.involved.namespace
                     else cmd.namespace) or "default"
        meta: dict[str, str] = {"namespace": namespace}
        if once:
            meta["name"] = event_name(cmd, event)
        else:
            meta["generateName"] = f"{involved['name']}."
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": meta,
            "involvedObject": involved,
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
            await self.kube.create(EVENTS, namespace, body)
        except KubeConflict as e:
            if not (once and e.already_exists):
                log.warning("could not record event %s on %s %s/%s: %s", event.reason, ref.kind,
                            cmd.namespace, ref.name, e)
        except KubeError as e:
            log.warning("could not record event %s on %s %s/%s: %s", event.reason, ref.kind,
                        cmd.namespace, ref.name, e)

    async def handle(self, cmd: Command, msg: Msg) -> None:
        """Carry out one command (`_handle`), counted by verb and outcome."""
        started = time.perf_counter()
        outcome = "error"
        try:
            outcome = "done" if await self._handle(cmd, msg) else "already_done"
        except StaleError:
            outcome = "stale"
            raise
        except TransientError:
            outcome = "transient"
            raise
        except PermanentError:
            outcome = "permanent"
            raise
        finally:
            metrics.EXECUTOR_COMMANDS.labels(cmd.verb, outcome).inc()
            metrics.EXECUTOR_COMMAND_DURATION.labels(cmd.verb).observe(time.perf_counter() - started)

    async def _handle(self, cmd: Command, msg: Msg) -> bool:
        """True when this command made its change, False when it was already made by another."""
        if cmd.not_after and (deadline := parse_time(cmd.not_after)) is not None \
                and datetime.now(UTC) > deadline:
            raise StaleError(f"command {cmd.id} expired at {cmd.not_after}: the planner no longer waits for "
                             "its effect and plans again")
        attributes = span_attributes(cmd)
        made = not cmd.ops
        for index, op in enumerate(cmd.ops):
            try:
                made = await self.perform(op, attributes) or made
            except StaleError as e:
                raise StaleError(f"command {cmd.id} op {index} ({op.resource.plural}): {e}") from None
            except TransientError as e:  # 429 (after its Retry-After), 5xx, transport: redelivered later
                raise TransientError(f"command {cmd.id} op {index}: {e}", delay=max(e.delay, 2.0)) from None
            except KubeError as e:
                if is_precondition_failure(e, tested=_tested(op)):
                    raise StaleError(f"command {cmd.id} op {index} ({op.resource.plural} "
                                     f"{getattr(op, 'name', '')}): precondition failed: {e.message}") from None
                if cmd.on_failure is not None:
                    # the planner's Event with the API server's reason appended, its type kept (most failures
                    # are Warnings, FailedCreateImagePullJob is Normal) and its involved object kept (a
                    # SidecarSet's pod Event is the pod's, in the pod's namespace)
                    await self.record(cmd, msgspec.structs.replace(
                        cmd.on_failure, message=f"{cmd.on_failure.message}: {e.message}"))
                kind = "forbidden" if isinstance(e, KubeForbidden) else "invalid"
                raise PermanentError(f"command {cmd.id} op {index} {kind}: {e.message}") from None
        if not made and _delivery(msg) == 1:
            # Everything was already there on a first delivery: another command made this change (the
            # same decision taken again under a newer id). Its outcome was reported by that command;
            # reporting it again would show one create or delete twice. (On a redelivery it may have
            # been this command itself, killed before it reported: then report, once by Event name.)
            log.debug("command %s: already done by another command; nothing to report", cmd.id)
            return False
        # microseconds, as the `rejected` outcomes: a marker's label follows its probe result within a
        # second, and the log must be able to tell the stages apart (docs/probemarker.md, "Latency")
        event = RolloutEvent(
            type=cmd.verb, namespace=cmd.namespace, workload=cmd.workload.name,
            message=cmd.on_success.message if cmd.on_success else f"{cmd.verb} done",
            time=format_micro(datetime.now(UTC)), pod=cmd.pod, revision=cmd.revision, command_id=cmd.id,
            data=cmd.data,  # the decision's evidence (kit.budget) goes to the log with its outcome
            queued=_queued(msg),
        )
        # The Kubernetes Event and the rollout event are independent: write both at once.
        done: list[Awaitable[Any]] = []
        if cmd.on_success is not None:
            done.append(self.record(cmd, cmd.on_success, once=True))
        if cmd.verb not in UNLOGGED_VERBS:
            done.append(self.bus.publish_event(event, msg_id=outcome_msg_id(msg)))
        await asyncio.gather(*done)
        return True


async def run_executor(kube: Kube, bus: Bus, *, stop: Any, settings: ExecutorSettings | None = None) -> None:
    executor = Executor(kube, bus)
    cfg = settings or ExecutorSettings()
    await bus.consume(
        STREAM_CMD, CONSUMER, filter_subject=bus.subjects.command_all(), decoder=COMMAND_DECODER,
        handler=executor.handle, stop=stop, max_deliver=cfg.max_deliver, ack_wait=cfg.ack_wait,
        concurrency=cfg.concurrency, batch=cfg.concurrency, max_ack_pending=4 * cfg.concurrency,
    )


__all__ = ["Executor", "run_executor"]
