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

from schemas.advancedcronjob import AdvancedCronJob
from schemas.broadcastjob import BroadcastJob
from schemas.cloneset import CloneSet
from schemas.daemonset import DaemonSet
from schemas.imagepulljob import ImagePullJob
from schemas.job import Job
from schemas.kube import (
    ConfigMap,
    ControllerRevision,
    JsonObject,
    Namespace,
    Node,
    ObjectReference,
    PersistentVolumeClaim,
    Pod,
)
from schemas.nodeimage import NodeImage
from schemas.nodework import NodeOp, PullResult
from schemas.podprobemarker import PodProbeMarker
from schemas.sidecarset import SidecarSet

SCHEMA_VERSION = 1


class _Msg(msgspec.Struct, kw_only=True):
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # A message of a newer (or nonsense) schema version is refused as undecodable, so the bus
        # rejects it naming its subject instead of a service acting on fields it misreads.
        if self.schema != SCHEMA_VERSION:
            raise ValueError(f"schema version {self.schema} is not supported (this service reads version "
                             f"{SCHEMA_VERSION})")


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


class PodProbeMarkerState(_State, tag="podprobemarker"):
    object: PodProbeMarker


class PullResultState(_State, tag="pullresult"):
    """A node agent's latest report on one image (not an API object: published by the agent)."""

    object: PullResult


class ImagePullJobState(_State, tag="imagepulljob"):
    object: ImagePullJob


class NodeImageState(_State, tag="nodeimage"):
    object: NodeImage


class AdvancedCronJobState(_State, tag="advancedcronjob"):
    object: AdvancedCronJob


class BroadcastJobState(_State, tag="broadcastjob"):
    object: BroadcastJob


class JobState(_State, tag="job"):
    object: Job


class DaemonSetState(_State, tag="daemonset"):
    object: DaemonSet


class SidecarSetState(_State, tag="sidecarset"):
    object: SidecarSet


class NamespaceState(_State, tag="namespace"):
    object: Namespace


class ConfigMapState(_State, tag="configmap"):
    object: ConfigMap


StateEvent: TypeAlias = (
    CloneSetState | PodState | NodeState | RevisionState | PvcState | PullResultState | ImagePullJobState
    | NodeImageState | PodProbeMarkerState | AdvancedCronJobState | BroadcastJobState | JobState
    | DaemonSetState
    | SidecarSetState | NamespaceState | ConfigMapState
)


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
PODPROBEMARKERS = Resource(group="apps.kruise.io", version="v1alpha1", plural="podprobemarkers")
SECRETS = Resource(plural="secrets")
IMAGE_PULL_JOBS = Resource(group="apps.kruise.io", version="v1alpha1", plural="imagepulljobs")
NODE_IMAGES = Resource(group="apps.kruise.io", version="v1alpha1", plural="nodeimages", namespaced=False)
ADVANCED_CRON_JOBS = Resource(group="apps.kruise.io", version="v1alpha1", plural="advancedcronjobs")
BROADCAST_JOBS = Resource(group="apps.kruise.io", version="v1alpha1", plural="broadcastjobs")
JOBS = Resource(group="batch", version="v1", plural="jobs")
DAEMONSETS = Resource(group="apps.kruise.io", version="v1alpha1", plural="daemonsets")
SIDECARSETS = Resource(group="apps.kruise.io", version="v1alpha1", plural="sidecarsets", namespaced=False)
NAMESPACES = Resource(plural="namespaces", namespaced=False)
CONFIGMAPS = Resource(plural="configmaps")

PatchType: TypeAlias = Literal["json", "merge", "strategic"]


class _Op(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    resource: Resource
    namespace: str = ""


class OwnerCurrent(msgspec.Struct, frozen=True, kw_only=True):
    """Precondition of a create: the owner still exists with this uid and is still at this
    `metadata.generation` (the spec the decision was made on).

    A create has nothing of its own to test: a pod deleted since a first attempt is simply absent, so a
    create redelivered long after its decision would bring back a pod the planner has moved past (an
    old revision, a replica no longer wanted). The owner's generation moves with every spec change.
    """

    resource: Resource
    name: str
    uid: str
    generation: int


class CreateOp(_Op, tag="create"):
    """Create `body`. AlreadyExists counts as done (the command was a duplicate); with `owner`, a
    create whose owner moved on (`OwnerCurrent`) is stale and is not performed."""

    body: JsonObject
    owner: OwnerCurrent | None = None


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
    # "Background" | "Foreground" | "Orphan"; "" = the resource's default (a batch/v1 Job's orphans its pods)
    propagation_policy: str = ""


ApiOp: TypeAlias = CreateOp | PatchOp | DeleteOp


class KubeEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A Kubernetes Event to record on the workload (Kruise's reasons and messages), or on
    `involved` when set (a PodProbeMarker's KruiseProbeSucceeded is an Event of the pod)."""

    type: Literal["Normal", "Warning"] = "Normal"
    reason: str
    message: str
    involved: ObjectReference | None = None


# Command verbs (the <verb> token of kb.cmd subjects), for every workload planner.
VERB_CREATE = "create"
VERB_DELETE = "delete"
VERB_UPDATE_IN_PLACE = "update-in-place"
VERB_UPDATE_RECREATE = "update-recreate"
VERB_INPLACE_REFRESH = "inplace-refresh"
VERB_LIFECYCLE = "lifecycle"
VERB_BACKFILL = "backfill"
VERB_ADOPT = "adopt"  # an orphan pod gets the workload's controller reference (Kruise's ClaimPods)
VERB_REVISION_CREATE = "revision-create"
VERB_REVISION_BUMP = "revision-bump"
VERB_REVISION_DELETE = "revision-delete"
VERB_INVALID_SPEC = "invalid-spec"
VERB_PODS_TO_DELETE_TRUNCATE = "podstodelete-truncate"
VERB_PVC_DELETE = "pvc-delete"  # disablePVCReuse: a claim no pod has
VERB_PVC_RELEASE = "pvc-release"  # disablePVCReuse: a claim handed to its inactive pod
VERB_PROBE_MARKER = "probe"
"""Command verb of a PodProbeMarker's write of one pod's markers and condition (pod status endpoint);
also the type of its rollout events (`kruisebus events --type probe`)."""
VERB_FINALIZER = "finalizer"
"""Command verb of adding or removing a workload's own finalizer (an ImagePullJob's deletion protection,
a PodProbeMarker's cleanup)."""
VERB_STATUS = "status"
"""Command verb of a workload status write."""
VERB_NODE_IMAGE_CREATE = "nodeimage-create"
VERB_NODE_IMAGE_DELETE = "nodeimage-delete"
VERB_NODE_IMAGE_LABELS = "nodeimage-labels"
VERB_NODE_IMAGE_SPEC = "nodeimage-spec"  # a job adds (or re-versions) its tag on a node
VERB_NODE_IMAGE_STATUS = "nodeimage-status"
VERB_JOB_CREATE = "imagepulljob-create"  # a workload's pre-download job
VERB_JOB_DELETE = "imagepulljob-delete"
VERB_REVISION_LABEL = "revision-label"  # pre-download created/ignored on a ControllerRevision
VERB_PULL = "pull"  # node work: one attempt at pulling one NodeImage tag (`kb.node.<node>.pull`)
VERB_CHILD_CREATE = "child-create"  # AdvancedCronJob: a Job or BroadcastJob for a slot
VERB_CHILD_DELETE = "child-delete"  # AdvancedCronJob: Replace, or history beyond its limit
VERB_SELF_DELETE = "self-delete"  # BroadcastJob: ttlSecondsAfterFinished has passed
VERB_EVENT = "event"
"""Command verb of a Kubernetes Event alone (no API change), e.g. ScaleUpLimited."""
VERB_SIDECAR_UPGRADE = "sidecar-upgrade"
"""Command verb of a SidecarSet's in-place upgrade of one pod's sidecar images (and its pod condition)."""
VERB_SIDECAR_CONDITION = "sidecar-condition"
"""Command verb of a SidecarSet marking a pod not upgradable (condition SidecarSetUpgradable False)."""
UNLOGGED_VERBS = frozenset({VERB_STATUS, VERB_EVENT})
"""Verbs the executor does not echo to the rollout log (too chatty, or the planner already logged them)."""


ExpectationKind: TypeAlias = Literal["present", "absent", "label", "annotation-absent", "reported", "changed"]


class Expectation(msgspec.Struct, frozen=True):
    """A fact about one pod the planner will observe once a command has done its work; until then (or
    a timeout) it does not plan that workload again.

    present: the pod exists; absent: it is gone or terminating; label: ``labels[key] == value``;
    annotation-absent: ``annotations`` has no ``key``.

    changed (a pod the workload does not own, a SidecarSet's): the pod with uid ``key`` is seen at a
    resourceVersion other than ``value`` (the one the decision saw), or is gone. Until then a pass would
    take the pod for what it was before the command, as Kruise's SidecarSet waits for its own updates to
    reach its cache (``ExpectUpdated``) before it counts the upgrade budget again.

    reported (node work, `pod` empty): the object with uid ``key`` (a `PullResult`) answers command
    ``value`` (its `command_id`), i.e. the node's agent took the command up. It is about one command,
    not the workload: the workload keeps being planned, only that command is not sent again until the
    report arrives or the command's `not_after` has passed.
    """

    pod: str
    kind: ExpectationKind
    key: str = ""
    value: str = ""


class WorkloadRef(msgspec.Struct, frozen=True, kw_only=True):
    """The workload a command is for: its Kubernetes Events are filed against this object, and its
    routing key (`<ns>.<uid>`) is this workload's."""

    api_version: str
    kind: str
    resource: Resource
    namespace: str
    name: str
    uid: str


class Command(_Msg):
    """One planner decision for the executor.

    `id` is deterministic from the decision (it is also the `Nats-Msg-Id`), so a re-sent command is
    dropped by JetStream's duplicate window and, past it, by the ops' preconditions.
    """

    id: str
    verb: str  # create, delete, update-in-place, update-recreate, inplace-refresh, status, revision, ...
    workload: WorkloadRef
    pod: str = ""
    pod_uid: str = ""
    revision: str = ""
    ops: list[ApiOp] = []
    on_success: KubeEvent | None = None
    on_failure: KubeEvent | None = None
    rollout_trace_id: str = ""  # hex trace id of the rollout this command belongs to
    # What the planner waits to observe after this command. On the command itself, so a planner that
    # restarts while the command is still queued rebuilds the expectation from KB_CMD instead of
    # deciding the same slot again (with a different pod name, since the view moved meanwhile).
    expects: list[Expectation] = []
    # RFC 3339: the executor performs the command only until then. The planner waits this long for the
    # command's effect (its expectations' timeout) and may decide anew after it, so a command executed
    # later (queued behind a dead executor, redelivered after `ack_wait`) would race a newer decision:
    # it is dropped as stale instead. "" = no limit.
    not_after: str = ""
    # Node work: set, the command goes to that node's agent (`kb.node.<node>.<verb>`, KB_NODE), which
    # performs `node_ops` through its container runtime; `ops` stay empty.
    node: str = ""
    node_ops: list[NodeOp] = []
    # The evidence of the decision, copied to the command's `done` or `rejected` rollout event (same
    # shape as `RolloutEvent.data`): for a pod taken down under maxUnavailable, whether it was charged
    # or free, its resourceVersion in the view decided on, and the pass's budget
    # (`services.planner.kit.budget`). {} = none.
    data: dict[str, int | str] = {}

    @property
    def namespace(self) -> str:
        return self.workload.namespace

    @property
    def workload_uid(self) -> str:
        return self.workload.uid


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
    # for rejected commands: the uid of the workload the command was for (`WorkloadRef.uid`), so the
    # rejection is not blamed on a re-created workload of the same name
    workload_uid: str = ""
    data: dict[str, int | str] = {}
    # for a command's `done` event: when the command entered KB_CMD (its JetStream timestamp, RFC 3339
    # with microseconds, as `time` is then), so `time` minus `queued` is the executor's part of the
    # decision's latency (waiting in the queue, then the API calls). "" on every other event.
    queued: str = ""


# --- KB_PROBE --------------------------------------------------------------------------------------


ProbeState: TypeAlias = Literal["Succeeded", "Failed", "Unknown"]


class ProbeResult(_Msg, kw_only=True):
    """The latest result of one marker probe on one pod (`kb.probe.<ns>.<pod-uid>.<probe>`).

    Published by the prober of the pod's node when the state or message changes, and again after
    `PROBE_REREPORT_SECONDS` unchanged (Kruise's NodePodProbe status entry, one per subject).
    """

    namespace: str
    pod: str
    pod_uid: str
    probe: str  # `<ppm>#<probe>`
    state: ProbeState
    message: str = ""
    time: str  # RFC 3339: when this result was published (Kruise's lastProbeTime)
    last_transition_time: str = ""  # when `state` last changed
    node: str = ""
    container_id: str = ""  # the container probed (a restarted prober resumes its state on it)


# --- the state barrier (core NATS request/reply, `Subjects.state_sync`) ---------------------------


class StateSynced(_Msg, kw_only=True):
    """The active watcher's answer to "is the state stream current?".

    Sent only once every kind the watcher lists has been listed since its start (or since the stream was
    lost) and everything it has seen so far is published: the stream then holds the cluster as the
    watcher saw it when it answered, up to `seq`. A planner that plans only after it has read that far
    does not decide on states a dead watcher never got to publish (a pod its predecessor had deleted
    still in its view, a second pod taken down under maxUnavailable).
    """

    seq: int  # the highest KB_STATE sequence of the states this watcher published (0: none)


ENCODER = msgspec.json.Encoder()
STATE_SYNCED_DECODER = msgspec.json.Decoder(StateSynced)
STATE_DECODER = msgspec.json.Decoder(StateEvent)
COMMAND_DECODER = msgspec.json.Decoder(Command)
EVENT_DECODER = msgspec.json.Decoder(RolloutEvent)
PROBE_DECODER = msgspec.json.Decoder(ProbeResult)

__all__ = [
    "ADVANCED_CRON_JOBS",
    "CONFIGMAPS",
    "AdvancedCronJobState",
    "ConfigMapState",
    "ApiOp",
    "IMAGE_PULL_JOBS",
    "ImagePullJobState",
    "NODE_IMAGES",
    "NodeImageState",
    "VERB_FINALIZER",
    "VERB_JOB_CREATE",
    "VERB_JOB_DELETE",
    "VERB_NODE_IMAGE_CREATE",
    "VERB_NODE_IMAGE_DELETE",
    "VERB_NODE_IMAGE_LABELS",
    "VERB_NODE_IMAGE_SPEC",
    "VERB_NODE_IMAGE_STATUS",
    "VERB_PULL",
    "VERB_REVISION_LABEL",
    "BROADCAST_JOBS",
    "BroadcastJobState",
    "DAEMONSETS",
    "DaemonSetState",
    "JOBS",
    "JobState",
    "VERB_CHILD_CREATE",
    "VERB_CHILD_DELETE",
    "VERB_SELF_DELETE",
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
    "Expectation",
    "ExpectationKind",
    "KubeEvent",
    "NodeState",
    "ObjectReference",
    "OwnerCurrent",
    "NODES",
    "PERSISTENT_VOLUME_CLAIMS",
    "PODS",
    "PODPROBEMARKERS",
    "PROBE_DECODER",
    "PodProbeMarkerState",
    "ProbeResult",
    "ProbeState",
    "SECRETS",
    "PatchOp",
    "PodState",
    "PvcState",
    "Resource",
    "RevisionState",
    "RolloutEvent",
    "STATE_DECODER",
    "SCHEMA_VERSION",
    "StateEvent",
    "STATE_SYNCED_DECODER",
    "StateSynced",
    "UNLOGGED_VERBS",
    "VERB_EVENT",
    "VERB_CREATE",
    "VERB_DELETE",
    "VERB_UPDATE_IN_PLACE",
    "VERB_UPDATE_RECREATE",
    "VERB_INPLACE_REFRESH",
    "VERB_LIFECYCLE",
    "VERB_ADOPT",
    "VERB_BACKFILL",
    "VERB_REVISION_CREATE",
    "VERB_REVISION_BUMP",
    "VERB_REVISION_DELETE",
    "VERB_INVALID_SPEC",
    "VERB_PODS_TO_DELETE_TRUNCATE",
    "VERB_PVC_DELETE",
    "VERB_PVC_RELEASE",
    "VERB_STATUS",
    "VERB_PROBE_MARKER",
    "VERB_FINALIZER",
    "WorkloadRef",
]
