"""BroadcastJob `apps.kruise.io/v1alpha1` (`apis/apps/v1alpha1/broadcastjob_types.go`): one pod per eligible node.

Field names, json names and zero values as Kruise serves them. `parallelism` stays loosely typed (an int
or a percent string) so an invalid value reaches validation with its field path instead of failing the
decode of the whole object; defaults (parallelism MaxInt32, completionPolicy Always, failurePolicy
FailFast) are Kruise's webhook's and are applied by `services.planner.broadcastjob.validation`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.constants import API_VERSION
from schemas.job import JobCondition
from schemas.kube import ObjectMeta, PodTemplateSpec, _K8s


class CompletionPolicy(_K8s):
    type: str = ""  # Always (default) | Never
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None


class FailurePolicy(_K8s):
    type: str = ""  # FailFast (default) | Continue | Pause
    restart_limit: int = 0


class BroadcastJobSpec(_K8s):
    parallelism: Any = None  # int | "N%"; None = MaxInt32
    template: PodTemplateSpec = msgspec.field(default_factory=PodTemplateSpec)
    completion_policy: CompletionPolicy = msgspec.field(default_factory=CompletionPolicy)
    paused: bool = False
    failure_policy: FailurePolicy = msgspec.field(default_factory=FailurePolicy)


class BroadcastJobStatus(_K8s):
    conditions: list[JobCondition] = []
    start_time: str | None = None
    completion_time: str | None = None
    # Kruise serialises these four without omitempty; kruisebus writes them explicitly.
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    desired: int = 0
    phase: str = ""  # running | paused | completed | failed


class BroadcastJob(_K8s):
    metadata: ObjectMeta
    spec: BroadcastJobSpec = msgspec.field(default_factory=BroadcastJobSpec)
    status: BroadcastJobStatus = msgspec.field(default_factory=BroadcastJobStatus)
    api_version: str = API_VERSION
    kind: str = "BroadcastJob"
