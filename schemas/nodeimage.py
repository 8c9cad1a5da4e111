"""NodeImage `apps.kruise.io/v1alpha1` (`apis/apps/v1alpha1/nodeimage_types.go`): one per Node, named
after it, cluster-scoped.

The spec is the work list of the node (image -> tags, each owned by the ImagePullJobs that want it, with
a `version` bumped for every new round of pulling); the status is what the node reported per tag and
version. kruisebus writes both from the planner: the spec when a job picks the node, the status folded
from the node agent's pull progress (at most one write per tag per node per finished pull).
"""

from __future__ import annotations

import msgspec

from schemas.constants import API_VERSION, KIND_NODE_IMAGE
from schemas.imagepulljob import SandboxConfig
from schemas.kube import ObjectMeta, ObjectReference, _K8s


class ReferenceObject(_K8s):
    """A pull secret `<namespace>/<name>`; `mode` "batch" marks a secret copied for a job (v1beta1's field,
    kept so a copied secret is cleaned up with its image spec)."""

    namespace: str = ""
    name: str = ""
    mode: str = ""


class ImageTagPullPolicy(_K8s):
    timeout_seconds: int | None = None  # default 600
    backoff_limit: int | None = None  # default 3
    ttl_seconds_after_finished: int | None = None
    active_deadline_seconds: int | None = None


class ImageTagSpec(_K8s):
    tag: str
    created_at: str | None = None
    pull_policy: ImageTagPullPolicy | None = None
    owner_references: list[ObjectReference] = []
    version: int = 0
    image_pull_policy: str = ""


class ImageSpec(_K8s):
    tags: list[ImageTagSpec] = []
    pull_secrets: list[ReferenceObject] = []
    sandbox_config: SandboxConfig | None = None


class NodeImageSpec(_K8s):
    images: dict[str, ImageSpec] = {}  # image name (repository, no tag) -> spec; at most 256


class ImageTagStatus(_K8s):
    tag: str
    phase: str  # Waiting | Pulling | Succeeded | Failed
    progress: int = 0  # 0-100
    start_time: str | None = None
    completion_time: str | None = None
    version: int = 0
    image_id: str = msgspec.field(default="", name="imageID")
    message: str = ""


class ImageStatus(_K8s):
    tags: list[ImageTagStatus] = []


class SyncStatus(_K8s):
    sync_at: str | None = None
    status: str = ""
    message: str = ""


class NodeImageStatus(_K8s):
    desired: int = 0
    succeeded: int = 0
    failed: int = 0
    pulling: int = 0
    waiting: int = 0
    image_statuses: dict[str, ImageStatus] = {}
    first_sync_status: SyncStatus | None = None


class NodeImage(_K8s):
    metadata: ObjectMeta
    spec: NodeImageSpec = msgspec.field(default_factory=NodeImageSpec)
    status: NodeImageStatus = msgspec.field(default_factory=NodeImageStatus)
    api_version: str = API_VERSION
    kind: str = KIND_NODE_IMAGE

    def tag_spec(self, image: str, tag: str) -> ImageTagSpec | None:
        spec = self.spec.images.get(image)
        if spec is not None:
            for t in spec.tags:
                if t.tag == tag:
                    return t
        return None

    def tag_status(self, image: str, tag: str) -> ImageTagStatus | None:
        status = self.status.image_statuses.get(image)
        if status is not None:
            for t in status.tags:
                if t.tag == tag:
                    return t
        return None
