"""ImagePullJob `apps.kruise.io/v1alpha1`, field for field as OpenKruise serves it
(`apis/apps/v1alpha1/imagepulljob_types.go`).

A job asks for one image on a set of nodes (named, selected by Node labels, or the nodes of selected
pods), a few nodes at a time. Fields users write loosely (`parallelism: "50%"`) are loosely typed so the
webhook and the planner can report them with their field name instead of the decoder rejecting the
whole object. Optional pointers in Go are `None` here: `selector.names: []` and no `names` differ (Kruise
checks `!= nil`), and so do `timeoutSeconds: 0` and no timeout.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.constants import API_VERSION, KIND_IMAGE_PULL_JOB
from schemas.kube import LabelSelector, LabelSelectorRequirement, ObjectMeta, _K8s


class ImagePullJobNodeSelector(_K8s):
    """Which nodes: `names` or a label selector over the NodeImages (whose labels mirror their Node's)."""

    names: list[str] | None = None
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None

    def has_label_selector(self) -> bool:
        return self.match_labels is not None or self.match_expressions is not None

    def label_selector(self) -> LabelSelector:
        return LabelSelector(
            match_labels=dict(self.match_labels or {}), match_expressions=list(self.match_expressions or [])
        )


class ImagePullJobPodSelector(_K8s):
    """The nodes of the active, scheduled pods in the job's namespace that match."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None

    def label_selector(self) -> LabelSelector:
        return LabelSelector(
            match_labels=dict(self.match_labels or {}), match_expressions=list(self.match_expressions or [])
        )


class PullPolicy(_K8s):
    timeout_seconds: Any = None  # int32; webhook default 600
    backoff_limit: Any = None  # int32; webhook default 3


class CompletionPolicy(_K8s):
    type: str = ""  # Always (webhook default) | Never
    active_deadline_seconds: Any = None  # int64, Always only
    ttl_seconds_after_finished: Any = None  # int32, Always only


class SandboxConfig(_K8s):
    """Metadata handed to the runtime's PullImage (the CRI's pod sandbox config)."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class ImagePullJobSpec(_K8s):
    image: str = ""
    pull_secrets: list[str] | None = None
    selector: ImagePullJobNodeSelector | None = None
    pod_selector: ImagePullJobPodSelector | None = None
    parallelism: Any = None  # int-or-string; default 1, 0 pauses, percent rejected by the webhook
    pull_policy: PullPolicy | None = None
    completion_policy: CompletionPolicy = msgspec.field(default_factory=CompletionPolicy)
    sandbox_config: SandboxConfig | None = None
    image_pull_policy: str = ""  # Always | IfNotPresent (webhook default)


class ImagePullJobStatus(_K8s):
    start_time: str | None = None
    completion_time: str | None = None
    desired: int = 0
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    message: str = ""
    failed_nodes: list[str] = []


class ImagePullJob(_K8s):
    metadata: ObjectMeta
    spec: ImagePullJobSpec = msgspec.field(default_factory=ImagePullJobSpec)
    status: ImagePullJobStatus = msgspec.field(default_factory=ImagePullJobStatus)
    api_version: str = API_VERSION
    kind: str = KIND_IMAGE_PULL_JOB


def status_json(status: ImagePullJobStatus) -> dict[str, Any]:
    """The status as the controller writes it: the counters always present (they are not `omitempty`
    in Kruise, and a merge patch that left a 0 out would keep the old value)."""
    body: dict[str, Any] = msgspec.to_builtins(status)
    for key in ("desired", "active", "succeeded", "failed"):
        body[key] = getattr(status, key)
    body.setdefault("startTime", None)
    body.setdefault("completionTime", None)
    body.setdefault("message", None)
    body.setdefault("failedNodes", None)
    return body
