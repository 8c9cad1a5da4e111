"""Turning a workload's decisions into executor commands: ids, API operations, Events, expectations.

One builder for every workload planner: it knows the workload only by its `WorkloadRef` (plus the
generation and resourceVersion its preconditions name).

Command ids are the NATS dedup ids, so they are derived from the *decision and the state it was based
on*, never from a counter or a clock:

* pod writes carry the pod uid (a re-created pod with the same name is another pod) and, where the same
  decision may legitimately recur for one pod (lifecycle moves, refresh writes), the pod's
  resourceVersion, so a retried decision dedups while a later identical one does not;
* ``update-in-place`` is ``<cs-uid>/update-in-place/<pod-uid>/<revision>``: one update per pod per
  revision, whatever happens (the ops also test the old revision label);
* creates are ``<cs-uid>/create/<pod-name>/<revision>/<cs-resourceVersion>``: a restarted planner
  re-plans the same name (deterministic instance ids) and the API server answers AlreadyExists;
* status writes include the CloneSet resourceVersion, so A->B->A status changes are never swallowed.

Preconditions live in the operations (JSON-patch ``test`` of uid and labels; ``metadata.uid`` in
strategic-merge status writes; ``metadata.resourceVersion`` in CloneSet merge patches; uid on deletes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from schemas.constants import EVENT_INVALID_SPEC, REASON_INVALID_SPEC
from schemas.kinds import Kind
from schemas.kube import JsonObject, OwnerReference, Pod
from schemas.messages import (
    CONTROLLER_REVISIONS,
    PODS,
    ApiOp,
    Command,
    CreateOp,
    DeleteOp,
    Expectation,
    ExpectationKind,
    KubeEvent,
    OwnerCurrent,
    PatchOp,
    RolloutEvent,
    WorkloadRef,
)
from services.planner.kit.podpatch import PodPatch, status_conditions_patch
from services.planner.kit.timeutil import format_time


def controller_ref(ref: WorkloadRef) -> OwnerReference:
    """The controller owner reference every object a workload creates carries (pods, claims, revisions)."""
    return OwnerReference(
        api_version=ref.api_version,
        kind=ref.kind,
        name=ref.name,
        uid=ref.uid,
        controller=True,
        block_owner_deletion=True,
    )


def short_digest(value: object) -> str:
    return hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()[:16]


@dataclass(slots=True)
class Builder:
    """Accumulates one pass's commands, rollout events, expectations and requeue delays."""

    ref: WorkloadRef
    generation: int  # the workload's metadata.generation this pass planned on
    resource_version: str  # the workload's resourceVersion this pass planned on
    now: datetime
    trace_id: str = ""
    commands: list[Command] = field(default_factory=list)
    events: list[RolloutEvent] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, kind: Kind, obj: Any, now: datetime, trace_id: str = "") -> Builder:
        """The builder of one pass over workload `obj` of `kind` (a row of `schemas.kinds`)."""
        meta = obj.metadata
        return cls(kind.ref(meta), meta.generation, meta.resource_version, now, trace_id)

    @property
    def uid(self) -> str:
        return self.ref.uid

    @property
    def namespace(self) -> str:
        return self.ref.namespace

    @property
    def name(self) -> str:
        return self.ref.name

    def command(
        self,
        cid: str,
        verb: str,
        ops: list[ApiOp],
        *,
        pod: str = "",
        pod_uid: str = "",
        revision: str = "",
        on_success: KubeEvent | None = None,
        on_failure: KubeEvent | None = None,
        data: dict[str, int | str] | None = None,
    ) -> Command:
        """One command of the pass; `data` is its evidence (`Command.data`, `kit.budget`)."""
        cmd = Command(
            id=cid,
            verb=verb,
            workload=self.ref,
            pod=pod,
            pod_uid=pod_uid,
            revision=revision,
            ops=ops,
            on_success=on_success,
            on_failure=on_failure,
            rollout_trace_id=self.trace_id,
            data=data or {},
        )
        self.commands.append(cmd)
        return cmd

    def reject_invalid(self, generation: int, message: str, field: str, verb: str, ops: list[ApiOp]) -> None:
        """A spec Kruise's webhook would refuse (admitted while none ran) is never acted on; every
        workload says so the same way: one command per generation and message carrying the workload's
        own status write (`ops`, e.g. an InvalidSpec condition) with a Warning `InvalidSpec` Event, and a
        `rejected` rollout event naming the first offending field."""
        self.command(f"{self.uid}/invalid-spec/{generation}/{short_digest(message)}", verb, ops,
                     on_success=kube_event(EVENT_INVALID_SPEC, f"invalid spec: {message}", warning=True))
        self.event("rejected", message, reason=REASON_INVALID_SPEC, field=field)

    def event(self, type_: str, message: str, **kw: Any) -> None:
        self.events.append(
            RolloutEvent(
                type=type_,
                namespace=self.namespace,
                workload=self.name,
                message=message,
                time=format_time(self.now),
                **kw,
            )
        )

    def expect(self, pod: str, kind: ExpectationKind, key: str = "", value: str = "") -> None:
        """Expect a fact about `pod` once this pass's last command for that pod has run; the command
        carries it too (see `Command.expects`)."""
        exp = Expectation(pod=pod, kind=kind, key=key, value=value)
        self.expectations.append(exp)
        for cmd in reversed(self.commands):
            if cmd.pod == pod:
                cmd.expects.append(exp)
                break

    def delay(self, seconds: float | None) -> None:
        if seconds is not None:
            self.delays.append(seconds)

    # --- op helpers ------------------------------------------------------------------------------

    def pod_json_patch(self, patch: PodPatch) -> PatchOp:
        return PatchOp(
            resource=PODS,
            namespace=self.namespace,
            name=patch.pod.metadata.name,
            patch_type="json",
            patch=patch.build(),
        )

    def pod_status_patch(self, pod: Pod, conditions: list[dict[str, Any]], *, exact: bool = True) -> PatchOp:
        """Strategic merge of pod conditions, guarded by uid and (``exact``) the observed resourceVersion.

        The resourceVersion guard matters: a delayed or replayed "InPlaceUpdateReady=True" must never land
        on a pod whose update started after the decision (it would make an updating pod count as ready).
        """
        body = status_conditions_patch(pod, conditions)
        if exact and pod.metadata.resource_version:
            body["metadata"]["resourceVersion"] = pod.metadata.resource_version
        return PatchOp(
            resource=PODS,
            namespace=self.namespace,
            name=pod.metadata.name,
            patch_type="strategic",
            patch=body,
            subresource="status",
        )

    def pod_delete(self, pod: Pod, *, exact: bool = False) -> DeleteOp:
        """A pod delete guarded by uid and (``exact``) the observed resourceVersion: for a delete that holds
        only for the state observed (an old pod replaced without charging maxUnavailable because it was
        not available must not have become available since)."""
        return DeleteOp(resource=PODS, namespace=self.namespace, name=pod.metadata.name, uid=pod.metadata.uid,
                        resource_version=pod.metadata.resource_version if exact else "")

    def pod_create(self, body: JsonObject) -> CreateOp:
        """A pod create that the executor performs only while the workload is at the generation this
        pass planned on (a create redelivered after the spec moved on is stale)."""
        ref = self.ref
        return CreateOp(resource=PODS, namespace=self.namespace, body=body,
                        owner=OwnerCurrent(resource=ref.resource, name=ref.name, uid=ref.uid,
                                           generation=self.generation))

    def status_patch(self, status: JsonObject) -> PatchOp:
        """A merge patch of the workload's status, guarded by the resourceVersion planned on."""
        body: JsonObject = {"status": status}
        if self.resource_version:
            body["metadata"] = {"resourceVersion": self.resource_version}
        return PatchOp(
            resource=self.ref.resource,
            namespace=self.namespace,
            name=self.name,
            patch_type="merge",
            patch=body,
            subresource="status",
        )

    def spec_patch(self, spec_patch: JsonObject) -> PatchOp:
        """A merge patch of the workload's spec, guarded by the resourceVersion planned on."""
        body: JsonObject = {"spec": spec_patch}
        if self.resource_version:
            body["metadata"] = {"resourceVersion": self.resource_version}
        return PatchOp(
            resource=self.ref.resource, namespace=self.namespace, name=self.name, patch_type="merge", patch=body
        )

    def revision_create(self, body: JsonObject) -> CreateOp:
        return CreateOp(resource=CONTROLLER_REVISIONS, namespace=self.namespace, body=body)

    def revision_patch(self, name: str, patch: list[JsonObject]) -> PatchOp:
        return PatchOp(
            resource=CONTROLLER_REVISIONS, namespace=self.namespace, name=name, patch_type="json", patch=patch
        )

    def revision_delete(self, name: str, uid: str) -> DeleteOp:
        return DeleteOp(resource=CONTROLLER_REVISIONS, namespace=self.namespace, name=name, uid=uid)


def kube_event(reason: str, message: str, warning: bool = False) -> KubeEvent:
    return KubeEvent(type="Warning" if warning else "Normal", reason=reason, message=message)
