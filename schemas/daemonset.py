"""Advanced DaemonSet `apps.kruise.io/v1alpha1` (`apis/apps/v1alpha1/daemonset_types.go`): one pod per node.

Field names and JSON names as Kruise serves v1alpha1 (`rollingUpdateType`, not `type`;
`status.daemonSetHash`, which is v1beta1's `updateRevision`). Int-or-percent fields stay loosely typed so
a bad value reaches validation with its field path instead of failing the decode of the whole object.
The CRD declares no defaults: they are the mutating webhook's (`services.planner.daemonset.validation`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.constants import API_VERSION, KIND_DAEMONSET
from schemas.kube import LabelSelector, ObjectMeta, PodTemplateSpec, _K8s
from schemas.pub import Lifecycle


class RollingUpdateDaemonSet(_K8s):
    rolling_update_type: str = ""  # Standard | InPlaceIfPossible | Surging (deprecated)
    max_unavailable: Any = None  # int | "N%"
    max_surge: Any = None
    partition: Any = None
    selector: LabelSelector | None = None  # over node labels
    paused: bool | None = None


class DaemonSetUpdateStrategy(_K8s):
    type: str = ""  # RollingUpdate | OnDelete
    rolling_update: RollingUpdateDaemonSet | None = None


class DaemonSetSpec(_K8s):
    selector: LabelSelector | None = None
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    update_strategy: DaemonSetUpdateStrategy = msgspec.field(default_factory=DaemonSetUpdateStrategy)
    min_ready_seconds: int = 0
    burst_replicas: Any = None  # int | "N%"; None = 250
    revision_history_limit: int | None = None
    lifecycle: Lifecycle | None = None


class DaemonSetStatus(_K8s):
    # Kruise serialises the counters without omitempty; kruisebus writes every one explicitly.
    current_number_scheduled: int = 0
    number_misscheduled: int = 0
    desired_number_scheduled: int = 0
    number_ready: int = 0
    observed_generation: int = 0
    updated_number_scheduled: int = 0
    number_available: int = 0
    number_unavailable: int = 0
    collision_count: int | None = None
    daemon_set_hash: str = ""  # v1beta1: status.updateRevision (the template hash, not a revision name)
    conditions: list[dict[str, Any]] = []


class DaemonSet(_K8s):
    metadata: ObjectMeta
    spec: DaemonSetSpec = msgspec.field(default_factory=DaemonSetSpec)
    status: DaemonSetStatus = msgspec.field(default_factory=DaemonSetStatus)
    api_version: str = API_VERSION
    kind: str = KIND_DAEMONSET
