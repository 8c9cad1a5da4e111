"""The bus contract: what travels on KB_STATE, KB_CMD and KB_EVENTS.

JSON on the wire so any subscriber can read it; every message carries `schema` (a version number) so a
consumer can tell an old producer from a new one. Tagged unions decode every variant in one pass; an
unknown tag or field type is a `msgspec.ValidationError`, which consumers turn into a `rejected`
rollout event instead of a crash.

Commands carry the exact Kubernetes operations to perform (`ApiOp`), computed by the pure planner, so
the executor holds no rollout logic: it performs the operations in order, and a failed precondition
(a JSON-patch `test`, a uid or resourceVersion) means the plan was stale and the command is dropped.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from schemas.cloneset import CloneSet
from schemas.kube import ControllerRevision, JsonObject, Node, ObjectReference, PersistentVolumeClaim, Pod

SCHEMA_VERSION = 1


class _Msg(msgspec.Struct, kw_only=True):
    schema: int = SCHEMA_VERSION


# --- KB_STATE --------------------------------------------------------------------------------------


class _State(_Msg, tag_field="kind", kw_only=True):
    """Latest observed state of one object; `deleted` marks a tombstone."""

    deleted: bool = False


class CloneSetState(_State, tag="cloneset"):
    object: CloneSet


class PodState(_State, tag="pod"):
    object: Pod


class NodeState(_State, tag="node"):
    object: Node


class RevisionState(_State, tag="controllerrevision"):
    object: ControllerRevision


class PvcState(_State, tag="persistentvolumeclaim"):
    object: PersistentVolumeClaim


StateEvent: TypeAlias = CloneSetState | PodState | NodeState | RevisionState | PvcState


# --- KB_CMD ----------------------------------------------------------------------------------------


class Resource(msgspec.Struct, frozen=True, kw_only=True):
    """Which API resource an operation addresses (group "" = core)."""

    group: str = ""
    version: str = "v1"
    plural: str
    namespaced: bool = True


PODS = Resource(plural="pods")
NODES = Resource(plural="nodes", namespaced=False)
EVENTS = Resource(plural="events")
CLONESETS = Resource(group="apps.kruise.io", version="v1alpha1", plural="clonesets")
CONTROLLER_REVISIONS = Resource(group="apps", version="v1", plural="controllerrevisions")
PERSISTENT_VOLUME_CLAIMS = Resource(plural="persistentvolumeclaims")

PatchType: TypeAlias = Literal["json", "merge", "strategic"]


class _Op(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    resource: Resource
    namespace: str = ""


class CreateOp(_Op, tag="create"):
    """Create `body`. AlreadyExists counts as done (the command was a duplicate)."""

    body: JsonObject


class PatchOp(_Op, tag="patch"):
    """Patch one object; `subresource` "status" addresses the status endpoint.

    Preconditions live in the patch itself: JSON-patch `test` ops, or `metadata.resourceVersion`
    / `metadata.uid` in a merge patch. A failed precondition makes the command stale.
    """

    name: str
    patch_type: PatchType
    patch: JsonObject | list[JsonObject]
    subresource: str = ""


class DeleteOp(_Op, tag="delete"):
    """Delete one object, guarded by uid (and resourceVersion when given)."""

    name: str
    uid: str = ""
    resource_version: str = ""
    grace_period_seconds: int | None = None


ApiOp: TypeAlias = CreateOp | PatchOp | DeleteOp


class KubeEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A Kubernetes Event to record on the workload (Kruise's reasons and messages)."""

    type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str


VERB_STATUS = "status"
"""Command verb of a CloneSet status write."""
VERB_EVENT = "event"
"""Command verb of a Kubernetes Event alone (no API change), e.g. ScaleUpLimited."""
UNLOGGED_VERBS = frozenset({VERB_STATUS, VERB_EVENT})
"""Verbs the executor does not echo to the rollout log (too chatty, or the planner already logged them)."""


class Command(_Msg):
    """One planner decision for the executor.

    `id` is deterministic from the decision (it is also the `Nats-Msg-Id`), so a re-sent command is
    dropped by JetStream's duplicate window and, past it, by the ops' preconditions.
    """

    id: str
    verb: str  # create, delete, update-in-place, update-recreate, inplace-refresh, status, revision, ...
    namespace: str
    workload: str
    workload_uid: str
    pod: str = ""
    pod_uid: str = ""
    revision: str = ""
    ops: list[ApiOp] = []
    on_success: KubeEvent | None = None
    on_failure: KubeEvent | None = None
    rollout_trace_id: str = ""  # hex trace id of the rollout this command belongs to


# --- KB_EVENTS -------------------------------------------------------------------------------------


class RolloutEvent(_Msg):
    """A user-facing entry on the rollout log (`kb.events.<ns>.<workload>.<type>`)."""

    type: str  # e.g. pod-updated-in-place, pod-created, rollout-completed, rejected, invalid-spec
    namespace: str
    workload: str
    message: str
    time: str  # RFC 3339, set by the publishing service
    pod: str = ""
    revision: str = ""
    command_id: str = ""
    reason: str = ""
    field: str = ""  # for invalid specs: the offending field path
    subject: str = ""  # for rejected messages: the subject the bad message arrived on
    data: dict[str, int | str] = {}


ENCODER = msgspec.json.Encoder()
STATE_DECODER = msgspec.json.Decoder(StateEvent)
COMMAND_DECODER = msgspec.json.Decoder(Command)
EVENT_DECODER = msgspec.json.Decoder(RolloutEvent)

__all__ = [
    "ApiOp",
    "CLONESETS",
    "CONTROLLER_REVISIONS",
    "COMMAND_DECODER",
    "CloneSetState",
    "Command",
    "CreateOp",
    "DeleteOp",
    "ENCODER",
    "EVENTS",
    "EVENT_DECODER",
    "KubeEvent",
    "NodeState",
    "ObjectReference",
    "NODES",
    "PERSISTENT_VOLUME_CLAIMS",
    "PODS",
    "PatchOp",
    "PodState",
    "PvcState",
    "Resource",
    "RevisionState",
    "RolloutEvent",
    "STATE_DECODER",
    "SCHEMA_VERSION",
    "StateEvent",
    "UNLOGGED_VERBS",
    "VERB_EVENT",
    "VERB_STATUS",
]
