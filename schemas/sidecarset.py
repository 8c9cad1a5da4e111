"""SidecarSet `apps.kruise.io/v1alpha1` (cluster-scoped), field for field as OpenKruise serves it.

Kruise's `apis/apps/v1alpha1/sidecarset_types.go`. A SidecarSet's containers are whole
`corev1.Container`s plus Kruise's sidecar fields; they are copied into pods and into revisions, so
they travel as opaque objects (like a pod template's spec) and are read through `SidecarFields`, the
typed view of the fields kruisebus decides on. Everything else is typed.
"""

from __future__ import annotations

import msgspec

from schemas.constants import API_VERSION, KIND_SIDECARSET
from schemas.kube import IntOrString, JsonObject, LabelSelector, ObjectMeta, _K8s
from schemas.pub import UpdatePriorityStrategy, UpdateScatterTerm


class ObjectFieldSelector(_K8s):
    api_version: str = ""
    field_path: str = ""


class SourceContainerNameSource(_K8s):
    field_ref: ObjectFieldSelector | None = None


class TransferEnvVar(_K8s):
    source_container_name: str = ""
    source_container_name_from: SourceContainerNameSource | None = None
    env_name: str = ""
    env_names: list[str] = []


class SidecarContainerUpgradeStrategy(_K8s):
    upgrade_type: str = ""
    hot_upgrade_empty_image: str = ""


class ShareVolumePolicy(_K8s):
    type: str = ""


class ResourceExprs(_K8s):
    """`ResourceExprLimits` / `ResourceExprRequests`: an expression per resource ("" = not set)."""

    cpu: str = ""
    memory: str = ""


class ResourcesExpr(_K8s):
    limits: ResourceExprs | None = None
    requests: ResourceExprs | None = None


TARGET_CONTAINERS_NAME_REGEX_DEFAULT = ".*"
"""The CRD's default of `resourcesPolicy.targetContainersNameRegex`."""


class ResourcesPolicy(_K8s):
    """`resourcesPolicy`: the sidecar's resources computed from the pod's containers at creation."""

    target_containers_mode: str = ""
    target_containers_name_regex: str = TARGET_CONTAINERS_NAME_REGEX_DEFAULT
    resources_expr: ResourcesExpr = msgspec.field(default_factory=ResourcesExpr)


class SidecarFields(_K8s):
    """The SidecarSet-specific members of one `SidecarContainer` (plus its name and image)."""

    name: str = ""
    image: str = ""
    restart_policy: str = ""
    pod_inject_policy: str = ""
    upgrade_strategy: SidecarContainerUpgradeStrategy = msgspec.field(default_factory=SidecarContainerUpgradeStrategy)
    share_volume_policy: ShareVolumePolicy = msgspec.field(default_factory=ShareVolumePolicy)
    share_volume_device_policy: ShareVolumePolicy | None = None
    transfer_env: list[TransferEnvVar] = []
    resources_policy: JsonObject | None = None


class SidecarSetUpdateStrategy(_K8s):
    type: str = ""
    paused: bool = False
    selector: LabelSelector | None = None
    partition: IntOrString | None = None
    max_unavailable: IntOrString | None = None
    priority_strategy: UpdatePriorityStrategy | None = None
    scatter_strategy: list[UpdateScatterTerm] | None = None


class SidecarSetInjectRevision(_K8s):
    custom_version: str | None = None
    revision_name: str | None = None
    policy: str = ""


class SidecarSetInjectionStrategy(_K8s):
    paused: bool = False
    revision: SidecarSetInjectRevision | None = None


class LocalObjectReference(_K8s):
    name: str = ""


class SidecarSetPatchPodMetadata(_K8s):
    annotations: dict[str, str] = {}
    patch_policy: str = ""


class SidecarSetSpec(_K8s):
    selector: LabelSelector | None = None
    namespace: str = ""
    namespace_selector: LabelSelector | None = None
    init_containers: list[JsonObject] = []
    containers: list[JsonObject] = []
    volumes: list[JsonObject] = []
    update_strategy: SidecarSetUpdateStrategy = msgspec.field(default_factory=SidecarSetUpdateStrategy)
    injection_strategy: SidecarSetInjectionStrategy = msgspec.field(default_factory=SidecarSetInjectionStrategy)
    image_pull_secrets: list[LocalObjectReference] = []
    revision_history_limit: int | None = None
    patch_pod_metadata: list[SidecarSetPatchPodMetadata] = []


class SidecarSetStatus(_K8s):
    observed_generation: int = 0
    matched_pods: int = 0
    updated_pods: int = 0
    ready_pods: int = 0
    updated_ready_pods: int = 0
    latest_revision: str = ""
    collision_count: int | None = None


class SidecarSet(_K8s):
    metadata: ObjectMeta
    spec: SidecarSetSpec = msgspec.field(default_factory=SidecarSetSpec)
    status: SidecarSetStatus = msgspec.field(default_factory=SidecarSetStatus)
    api_version: str = API_VERSION
    kind: str = KIND_SIDECARSET


def sidecar_fields(container: JsonObject) -> SidecarFields:
    """The typed view of one SidecarSet container (unknown members ignored)."""
    return msgspec.convert(container, SidecarFields)


__all__ = [
    "TARGET_CONTAINERS_NAME_REGEX_DEFAULT",
    "LocalObjectReference",
    "ObjectFieldSelector",
    "ResourceExprs",
    "ResourcesExpr",
    "ResourcesPolicy",
    "ShareVolumePolicy",
    "SidecarContainerUpgradeStrategy",
    "SidecarFields",
    "SidecarSet",
    "SidecarSetInjectRevision",
    "SidecarSetInjectionStrategy",
    "SidecarSetPatchPodMetadata",
    "SidecarSetSpec",
    "SidecarSetStatus",
    "SidecarSetUpdateStrategy",
    "SourceContainerNameSource",
    "TransferEnvVar",
    "sidecar_fields",
]
