"""Every kind of object kruisebus watches, in one table.

A kind's facts used to be spread over the watcher's list, the subject tokens, the state-event union, the
JSON Schema enum, the bus's routing and the planner's dispatch, and the routing rule was written twice.
Here each kind is one row: the object struct, its state message (whose msgspec tag is the `<kind>`
subject token), the API resource, the Kubernetes apiVersion/kind and how it is routed. The watcher
lists and watches exactly these rows, the bus routes by `routing_owner`, and the JSON Schema export
enumerates them. Adding a kind is one row here plus its state message in `schemas.messages`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property
from typing import Any, get_args

import msgspec

from schemas.advancedcronjob import AdvancedCronJob
from schemas.broadcastjob import BroadcastJob
from schemas.cloneset import CloneSet
from schemas.constants import CONFIGMAP_KRUISE_CONFIGURATION, DEFAULT_KRUISE_NAMESPACE
from schemas.daemonset import DaemonSet
from schemas.imagepulljob import ImagePullJob
from schemas.job import Job
from schemas.kube import (
    ConfigMap,
    ControllerRevision,
    Namespace,
    Node,
    ObjectMeta,
    PersistentVolumeClaim,
    Pod,
)
from schemas.messages import (
    ADVANCED_CRON_JOBS,
    BROADCAST_JOBS,
    CLONESETS,
    CONFIGMAPS,
    CONTROLLER_REVISIONS,
    DAEMONSETS,
    IMAGE_PULL_JOBS,
    JOBS,
    NAMESPACES,
    NODE_IMAGES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PODPROBEMARKERS,
    PODS,
    SIDECARSETS,
    AdvancedCronJobState,
    BroadcastJobState,
    CloneSetState,
    ConfigMapState,
    DaemonSetState,
    ImagePullJobState,
    JobState,
    NamespaceState,
    NodeImageState,
    NodeState,
    PodProbeMarkerState,
    PodState,
    PullResultState,
    PvcState,
    Resource,
    RevisionState,
    SidecarSetState,
    StateEvent,
    WorkloadRef,
)
from schemas.nodeimage import NodeImage
from schemas.nodework import PullResult
from schemas.podprobemarker import PodProbeMarker
from schemas.sidecarset import SidecarSet


class Routing(enum.Enum):
    """What the `<owner>` token of an object's state subject is."""

    OWNER = "owner"  # the controlling workload's uid ("_" for an orphan): pods, revisions, claims
    SELF = "self"  # the object's own uid: workloads, so a workload and its pods share a routing key
    NONE = "none"  # always "_": cluster-scoped objects that no workload owns (nodes, NodeImages)


@dataclass(frozen=True)
class Kind:
    state: type[Any]  # the state message class (a member of `StateEvent`)
    object_type: type[msgspec.Struct]
    resource: Resource | None  # None: not an API object (a node agent's report); the watcher skips it
    api_version: str
    kind: str  # the Kubernetes kind, e.g. "CloneSet"
    routing: Routing
    workload: bool = False  # a workload kruisebus plans (commands and Events are filed against it)
    # (namespace, name): the one object of this kind the watcher follows (a list and watch in that
    # namespace with the field selector `metadata.name=<name>`); None: every object of the cluster
    only: tuple[str, str] | None = None

    @property
    def field_selector(self) -> str | None:
        """The field selector of the watcher's list and watch (None: all objects)."""
        return f"metadata.name={self.only[1]}" if self.only is not None else None

    @property
    def list_namespace(self) -> str | None:
        """The namespace the watcher lists and watches in (None: all namespaces)."""
        return self.only[0] if self.only is not None else None

    @property
    def api_resource(self) -> Resource:
        """The API resource of a kind that is one (every kind but a node agent's reports)."""
        if self.resource is None:
            raise ValueError(f"{self.kind} is not an API object")
        return self.resource

    @property
    def listed(self) -> bool:
        """The watcher lists and watches it (it is an API resource)."""
        return self.resource is not None

    @property
    def token(self) -> str:
        """The `<kind>` token of state subjects, which is also the state message's tag."""
        return str(self.state.__struct_config__.tag)

    @cached_property
    def decoder(self) -> msgspec.json.Decoder[Any]:
        """Decodes one API object of this kind (a list item or a watch event's object)."""
        return msgspec.json.Decoder(self.object_type)

    def wrap(self, obj: Any, deleted: bool = False) -> StateEvent:
        event: StateEvent = self.state(object=obj, deleted=deleted)
        return event

    def ref(self, meta: ObjectMeta) -> WorkloadRef:
        """A reference to one object of this kind, for the commands decided about it."""
        assert self.resource is not None, f"{self.kind} is not an API object"
        return WorkloadRef(api_version=self.api_version, kind=self.kind, resource=self.resource,
                           namespace=meta.namespace, name=meta.name, uid=meta.uid)

    def owner(self, meta: ObjectMeta) -> str | None:
        """The routing owner of an object of this kind (None: the `_` token)."""
        if self.routing is Routing.SELF:
            return meta.uid
        if self.routing is Routing.OWNER:
            ref = meta.controller_ref()
            return ref.uid if ref is not None else None
        return None


CLONESET = Kind(CloneSetState, CloneSet, CLONESETS, "apps.kruise.io/v1alpha1", "CloneSet", Routing.SELF,
                workload=True)
POD = Kind(PodState, Pod, PODS, "v1", "Pod", Routing.OWNER)
CONTROLLER_REVISION = Kind(RevisionState, ControllerRevision, CONTROLLER_REVISIONS, "apps/v1",
                           "ControllerRevision", Routing.OWNER)
NODE = Kind(NodeState, Node, NODES, "v1", "Node", Routing.NONE)
PVC = Kind(PvcState, PersistentVolumeClaim, PERSISTENT_VOLUME_CLAIMS, "v1", "PersistentVolumeClaim",
           Routing.OWNER)
# An ImagePullJob is planned like a workload (its own uid routes it; a CloneSet's pre-download jobs are
# still routed by their own uid, not the CloneSet's). A NodeImage is cluster-scoped, named after its
# Node, and read by every job: like nodes it is routed to no owner.
IMAGE_PULL_JOB = Kind(ImagePullJobState, ImagePullJob, IMAGE_PULL_JOBS, "apps.kruise.io/v1alpha1", "ImagePullJob",
                      Routing.SELF, workload=True)
NODE_IMAGE = Kind(NodeImageState, NodeImage, NODE_IMAGES, "apps.kruise.io/v1alpha1", "NodeImage", Routing.NONE)

# A PodProbeMarker owns no pods: it selects them by label (its planner reads pods as a shared kind).
PODPROBEMARKER = Kind(PodProbeMarkerState, PodProbeMarker, PODPROBEMARKERS, "apps.kruise.io/v1alpha1",
                      "PodProbeMarker", Routing.SELF, workload=True)

# Not an API object: a node agent's report on one image (schemas.nodework); routed by nothing (`_`).
PULL_RESULT = Kind(PullResultState, PullResult, None, "kruisebus.io/v1", "PullResult", Routing.NONE)

ADVANCED_CRON_JOB = Kind(AdvancedCronJobState, AdvancedCronJob, ADVANCED_CRON_JOBS, "apps.kruise.io/v1alpha1",
                         "AdvancedCronJob", Routing.SELF, workload=True)
# A BroadcastJob is a workload (it owns pods) and also an AdvancedCronJob's child.
BROADCAST_JOB = Kind(BroadcastJobState, BroadcastJob, BROADCAST_JOBS, "apps.kruise.io/v1alpha1", "BroadcastJob",
                     Routing.SELF, workload=True)
JOB = Kind(JobState, Job, JOBS, "batch/v1", "Job", Routing.OWNER)  # run by the Job controller, owned by an ACJ
# An Advanced DaemonSet: one pod per eligible node (its planner reads every Node as a shared kind).
DAEMONSET = Kind(DaemonSetState, DaemonSet, DAEMONSETS, "apps.kruise.io/v1alpha1", "DaemonSet", Routing.SELF,
                 workload=True)

# A SidecarSet is cluster-scoped and owns no pods (it selects them); its revisions, in Kruise's namespace,
# are controlled by it and so routed to it.
SIDECARSET = Kind(SidecarSetState, SidecarSet, SIDECARSETS, "apps.kruise.io/v1alpha1", "SidecarSet", Routing.SELF,
                  workload=True)
# Namespaces: their labels are what SidecarSet namespace selectors match (the webhook, the planner).
NAMESPACE = Kind(NamespaceState, Namespace, NAMESPACES, "v1", "Namespace", Routing.NONE)
# Kruise's configuration ConfigMap alone (the SidecarSet patchPodMetadata whitelist, read by the webhook):
# not every ConfigMap of the cluster.
KRUISE_CONFIGURATION = Kind(ConfigMapState, ConfigMap, CONFIGMAPS, "v1", "ConfigMap", Routing.NONE,
                            only=(DEFAULT_KRUISE_NAMESPACE, CONFIGMAP_KRUISE_CONFIGURATION))

KINDS: tuple[Kind, ...] = (CLONESET, POD, CONTROLLER_REVISION, NODE, PVC, PULL_RESULT, IMAGE_PULL_JOB, NODE_IMAGE,
                          PODPROBEMARKER, ADVANCED_CRON_JOB, BROADCAST_JOB, JOB, DAEMONSET,
                          SIDECARSET, NAMESPACE, KRUISE_CONFIGURATION)
LISTED: tuple[Kind, ...] = tuple(k for k in KINDS if k.listed)  # what the watcher lists and watches
BY_TOKEN: dict[str, Kind] = {k.token: k for k in KINDS}
BY_STATE: dict[type[Any], Kind] = {k.state: k for k in KINDS}
BY_KUBE_KIND: dict[str, Kind] = {k.kind: k for k in KINDS}
WORKLOADS: tuple[Kind, ...] = tuple(k for k in KINDS if k.workload)

# The state-event union stays a static type alias in `schemas.messages` (what the type checker and
# msgspec's tagged-union decoder need); this table must name exactly its members.
if set(get_args(StateEvent)) != set(BY_STATE):
    raise RuntimeError("schemas.kinds.KINDS and schemas.messages.StateEvent disagree")


def kind_of(event: StateEvent) -> Kind:
    return BY_STATE[type(event)]


def routing_owner(event: StateEvent) -> str | None:
    """The `<owner>` token of a state event's subject (None: `_`). The one routing rule."""
    return kind_of(event).owner(event.object.metadata)


__all__ = [
    "ADVANCED_CRON_JOB",
    "BROADCAST_JOB",
    "BY_KUBE_KIND",
    "JOB",
    "BY_STATE",
    "BY_TOKEN",
    "CLONESET",
    "CONTROLLER_REVISION",
    "DAEMONSET",
    "IMAGE_PULL_JOB",
    "KINDS",
    "KRUISE_CONFIGURATION",
    "Kind",
    "LISTED",
    "NODE",
    "NAMESPACE",
    "NODE_IMAGE",
    "POD",
    "PODPROBEMARKER",
    "PULL_RESULT",
    "PVC",
    "Routing",
    "SIDECARSET",
    "WORKLOADS",
    "kind_of",
    "routing_owner",
]
