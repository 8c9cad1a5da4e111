"""The parts of Kubernetes objects kruisebus reads, as msgspec Structs.

Hot paths decode API server JSON straight into these (unknown fields are skipped by msgspec), which is
both faster than the client's generated models and keeps every service on one typed view. A pod
template's `spec` is the one deliberately opaque value: kruisebus copies it into pods and revisions
unchanged and must not drop fields it does not model, so it travels as `JsonObject`.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec

JsonObject: TypeAlias = dict[str, Any]
"""An opaque Kubernetes sub-object passed through unchanged (a PodSpec inside a template)."""

IntOrString: TypeAlias = int | str


class _K8s(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base: camelCase on the wire, defaults omitted so re-encoding stays close to the source."""


class OwnerReference(_K8s):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(_K8s):
    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    owner_references: list[OwnerReference] = []
    finalizers: list[str] = []

    def controller_ref(self) -> OwnerReference | None:
        for ref in self.owner_references:
            if ref.controller:
                return ref
        return None


class LabelSelectorRequirement(_K8s):
    key: str
    operator: str
    values: list[str] = []


class LabelSelector(_K8s):
    match_labels: dict[str, str] = {}
    match_expressions: list[LabelSelectorRequirement] = []


class ContainerPort(_K8s):
    name: str = ""
    container_port: int = 0
    protocol: str = ""


class ContainerRef(_K8s):
    """A container as kruisebus needs it: identity, image and ports (a probe's named port resolves
    against them)."""

    name: str
    image: str = ""
    ports: list[ContainerPort] = []


class ReadinessGate(_K8s):
    condition_type: str


class PodSpecView(_K8s):
    node_name: str = ""
    containers: list[ContainerRef] = []
    readiness_gates: list[ReadinessGate] = []
    affinity: Affinity | None = None  # a DaemonSet pod's target node before it is bound (matchFields)


class PodCondition(_K8s):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    last_probe_time: str | None = None


class ContainerStateView(_K8s):
    running: JsonObject | None = None
    waiting: JsonObject | None = None
    terminated: JsonObject | None = None


class ContainerStatus(_K8s):
    name: str
    image: str = ""
    image_id: str = msgspec.field(default="", name="imageID")
    ready: bool = False
    restart_count: int = 0
    started: bool | None = None
    container_id: str = msgspec.field(default="", name="containerID")
    state: ContainerStateView | None = None


class PodStatusView(_K8s):
    phase: str = ""
    conditions: list[PodCondition] = []
    container_statuses: list[ContainerStatus] = []
    pod_ip: str = msgspec.field(default="", name="podIP")
    host_ip: str = msgspec.field(default="", name="hostIP")
    start_time: str | None = None

    def condition(self, type_: str) -> PodCondition | None:
        for c in self.conditions:
            if c.type == type_:
                return c
        return None


class Pod(_K8s):
    metadata: ObjectMeta
    spec: PodSpecView = msgspec.field(default_factory=PodSpecView)
    status: PodStatusView = msgspec.field(default_factory=PodStatusView)
    api_version: str = "v1"
    kind: str = "Pod"


class PersistentVolumeClaim(_K8s):
    """The planner needs a claim's identity only: owner, instance-id label, deletion."""

    metadata: ObjectMeta
    api_version: str = "v1"
    kind: str = "PersistentVolumeClaim"


class NodeCondition(_K8s):
    type: str
    status: str
    last_transition_time: str | None = None


class Taint(_K8s):
    key: str
    effect: str
    value: str = ""


class NodeSpecView(_K8s):
    """What decides whether a pod may run on the node (a BroadcastJob's eligible nodes)."""

    unschedulable: bool = False
    taints: list[Taint] = []


class NodeStatusView(_K8s):
    conditions: list[NodeCondition] = []
    allocatable: dict[str, str | int] = {}


class Node(_K8s):
    metadata: ObjectMeta
    spec: NodeSpecView = msgspec.field(default_factory=NodeSpecView)
    status: NodeStatusView = msgspec.field(default_factory=NodeStatusView)
    api_version: str = "v1"
    kind: str = "Node"


class Toleration(_K8s):
    key: str = ""
    operator: str = ""  # Equal (default) | Exists
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None  # NoExecute only: how long the pod stays after the taint


class NodeSelectorRequirement(_K8s):
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist | Gt | Lt
    values: list[str] = []


class NodeSelectorTerm(_K8s):
    match_expressions: list[NodeSelectorRequirement] = []
    match_fields: list[NodeSelectorRequirement] = []


class NodeSelector(_K8s):
    node_selector_terms: list[NodeSelectorTerm] = []


class NodeAffinity(_K8s):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None


class Affinity(_K8s):
    node_affinity: NodeAffinity | None = None


class ResourceRequirements(_K8s):
    requests: dict[str, str | int] = {}


class ContainerResources(_K8s):
    name: str = ""
    resources: ResourceRequirements = msgspec.field(default_factory=ResourceRequirements)


class PodPlacementView(_K8s):
    """The placement-relevant part of a pod spec (read from a template's opaque spec): which nodes it fits."""

    node_name: str = ""
    node_selector: dict[str, str] = {}
    affinity: Affinity | None = None
    tolerations: list[Toleration] = []
    containers: list[ContainerResources] = []
    restart_policy: str = ""
    host_network: bool = False


class TemplateMeta(_K8s):
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    finalizers: list[str] = []


class PodTemplateSpec(_K8s):
    metadata: TemplateMeta = msgspec.field(default_factory=TemplateMeta)
    spec: JsonObject = {}

    def containers(self) -> list[ContainerRef]:
        """The template's containers, typed (the spec itself stays opaque)."""
        raw = self.spec.get("containers") or []
        return [ContainerRef(name=str(c.get("name", "")), image=str(c.get("image", ""))) for c in raw]


class ControllerRevision(_K8s):
    """apps/v1 ControllerRevision: a CloneSet's versioned pod template (Kruise's `pkg/controller/cloneset/revision`)."""

    metadata: ObjectMeta
    revision: int = 0
    data: JsonObject = {}
    api_version: str = "apps/v1"
    kind: str = "ControllerRevision"


class ConfigMap(_K8s):
    """A ConfigMap as kruisebus reads it (Kruise's `kruise-configuration`): its string data."""

    metadata: ObjectMeta
    data: dict[str, str] = {}
    api_version: str = "v1"
    kind: str = "ConfigMap"


class Namespace(_K8s):
    """A Namespace as SidecarSet namespace selectors read it: its labels."""

    metadata: ObjectMeta
    api_version: str = "v1"
    kind: str = "Namespace"


class ObjectReference(_K8s):
    api_version: str = ""
    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    resource_version: str = ""
