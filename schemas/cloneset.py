"""CloneSet `apps.kruise.io/v1alpha1`, field for field as OpenKruise serves it.

Fields are loosely typed where users write loosely typed YAML (`partition: "abc"` must decode so the
planner can report it with a field path instead of the decoder rejecting the whole object); validation
lives in the planner, which is where Kruise's webhook rules are applied.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.constants import API_VERSION
from schemas.kube import LabelSelector, ObjectMeta, PodTemplateSpec, _K8s
from schemas.pub import InPlaceUpdateStrategy, Lifecycle, UpdatePriorityStrategy, UpdateScatterTerm


class CloneSetUpdateStrategy(_K8s):
    type: str | None = None
    partition: Any = None  # int | "N%"; validated by the planner
    max_unavailable: Any = None
    max_surge: Any = None
    paused: bool = False
    priority_strategy: UpdatePriorityStrategy | None = None
    scatter_strategy: list[UpdateScatterTerm] | None = None
    in_place_update_strategy: InPlaceUpdateStrategy | None = None


class CloneSetScaleStrategy(_K8s):
    pods_to_delete: list[str] = []
    max_unavailable: Any = None
    disable_pvc_reuse: bool = msgspec.field(default=False, name="disablePVCReuse")  # not camel-cased "Pvc"


class CloneSetSpec(_K8s):
    replicas: Any = None  # int; None -> default 1
    selector: LabelSelector | None = None
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    volume_claim_templates: list[dict[str, Any]] = []
    scale_strategy: CloneSetScaleStrategy = msgspec.field(default_factory=CloneSetScaleStrategy)
    update_strategy: CloneSetUpdateStrategy = msgspec.field(default_factory=CloneSetUpdateStrategy)
    revision_history_limit: int | None = None
    min_ready_seconds: int = 0
    lifecycle: Lifecycle | None = None
    progress_deadline_seconds: int | None = None


class CloneSetCondition(_K8s):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    last_update_time: str | None = None


class CloneSetStatus(_K8s):
    observed_generation: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    updated_ready_replicas: int = 0
    updated_available_replicas: int = 0
    expected_updated_replicas: int = 0
    update_revision: str = ""
    current_revision: str = ""
    collision_count: int | None = None
    label_selector: str = ""
    conditions: list[CloneSetCondition] = []


class CloneSet(_K8s):
    metadata: ObjectMeta
    spec: CloneSetSpec = msgspec.field(default_factory=CloneSetSpec)
    status: CloneSetStatus = msgspec.field(default_factory=CloneSetStatus)
    api_version: str = API_VERSION
    kind: str = "CloneSet"


def decode_cloneset(data: bytes) -> CloneSet:
    """Decode a CloneSet from JSON bytes (raises msgspec.ValidationError naming the bad field)."""
    return msgspec.json.decode(data, type=CloneSet)
