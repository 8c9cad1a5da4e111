"""Turning decisions into executor commands: ids, API operations, Kubernetes Events, expectations.

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

from schemas.cloneset import CloneSet
from schemas.kube import JsonObject, Pod
from schemas.messages import (
    CLONESETS,
    CONTROLLER_REVISIONS,
    PODS,
    ApiOp,
    Command,
    CreateOp,
    DeleteOp,
    KubeEvent,
    PatchOp,
    RolloutEvent,
)
from services.planner.cloneset.podpatch import PodPatch, status_conditions_patch
from services.planner.cloneset.timeutil import format_time
from services.planner.cloneset.view import Expectation

# Command verbs (the <verb> token of kb.cmd subjects).
VERB_CREATE = "create"
VERB_DELETE = "delete"
VERB_UPDATE_IN_PLACE = "update-in-place"
VERB_UPDATE_RECREATE = "update-recreate"
VERB_INPLACE_REFRESH = "inplace-refresh"
VERB_LIFECYCLE = "lifecycle"
VERB_BACKFILL = "backfill"
VERB_REVISION_CREATE = "revision-create"
VERB_REVISION_BUMP = "revision-bump"
VERB_REVISION_DELETE = "revision-delete"
VERB_INVALID_SPEC = "invalid-spec"
VERB_PODS_TO_DELETE_TRUNCATE = "podstodelete-truncate"
VERB_PVC_DELETE = "pvc-delete"  # disablePVCReuse: a claim no pod has
VERB_PVC_RELEASE = "pvc-release"  # disablePVCReuse: a claim handed to its inactive pod


def rollout_trace_id(cs_uid: str, update_revision: str) -> str:
    """DESIGN §6: one trace per rollout, derived from (workload uid, update revision); 32 hex chars.

    Same derivation as ``services.telemetry.rollout_trace_id`` (not imported: the planner stays free of
    the OpenTelemetry SDK).
    """
    digest = hashlib.sha256(f"kruisebus/rollout/{cs_uid}/{update_revision}".encode()).digest()
    return f"{int.from_bytes(digest[:16], 'big') or 1:032x}"


def short_digest(value: object) -> str:
    return hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()[:16]


@dataclass(slots=True)
class Builder:
    """Accumulates one pass's commands, rollout events, expectations and requeue delays."""

    cs: CloneSet
    now: datetime
    trace_id: str = ""
    commands: list[Command] = field(default_factory=list)
    events: list[RolloutEvent] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return self.cs.metadata.uid

    @property
    def namespace(self) -> str:
        return self.cs.metadata.namespace

    @property
    def name(self) -> str:
        return self.cs.metadata.name

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
    ) -> Command:
        cmd = Command(
            id=cid,
            verb=verb,
            namespace=self.namespace,
            workload=self.name,
            workload_uid=self.uid,
            pod=pod,
            pod_uid=pod_uid,
            revision=revision,
            ops=ops,
            on_success=on_success,
            on_failure=on_failure,
            rollout_trace_id=self.trace_id,
        )
        self.commands.append(cmd)
        return cmd

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

    def expect(self, pod: str, kind: Any, key: str = "", value: str = "") -> None:
        self.expectations.append(Expectation(pod=pod, kind=kind, key=key, value=value))

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

    def pod_delete(self, pod: Pod) -> DeleteOp:
        return DeleteOp(resource=PODS, namespace=self.namespace, name=pod.metadata.name, uid=pod.metadata.uid)

    def pod_create(self, body: JsonObject) -> CreateOp:
        return CreateOp(resource=PODS, namespace=self.namespace, body=body)

    def cloneset_status_patch(self, status: JsonObject) -> PatchOp:
        body: JsonObject = {"status": status}
        if self.cs.metadata.resource_version:
            body["metadata"] = {"resourceVersion": self.cs.metadata.resource_version}
        return PatchOp(
            resource=CLONESETS,
            namespace=self.namespace,
            name=self.name,
            patch_type="merge",
            patch=body,
            subresource="status",
        )

    def cloneset_spec_patch(self, spec_patch: JsonObject) -> PatchOp:
        body: JsonObject = {"spec": spec_patch}
        if self.cs.metadata.resource_version:
            body["metadata"] = {"resourceVersion": self.cs.metadata.resource_version}
        return PatchOp(
            resource=CLONESETS, namespace=self.namespace, name=self.name, patch_type="merge", patch=body
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
