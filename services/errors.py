"""The exceptions kruisebus raises on purpose: one tree, shaped like httpx's.

    KruisebusError
    ├── TransientError          retried later: nak(delay)
    │   ├── KubeTooManyRequests   429, delay = Retry-After        (also a KubeError)
    │   └── KubeServerError       5xx or transport failure         (also a KubeError)
    ├── PermanentError          dropped: term() + a `rejected` rollout event with `reason`
    │   ├── StaleError            a precondition failed: the plan was stale
    │   ├── MalformedMessageError a message did not decode into its schema type
    │   ├── KubeNotFound          404                              (also a KubeError)
    │   ├── KubeConflict          409 (stale resourceVersion, uid precondition, AlreadyExists)
    │   ├── KubeInvalid           422 (validation, or a failed JSON-patch `test`)
    │   ├── KubeGone              410 (a watch's resourceVersion expired: relist)
    │   ├── KubeForbidden         401/403
    │   ├── ImageNotFound         the registry has no such image/tag        (also an ImagePullError)
    │   ├── ImagePullUnauthorized the registry refused the credentials     (also an ImagePullError)
    │   ├── InvalidImageName      not an image reference                   (also an ImagePullError)
    │   └── ExecTargetNotFound    exec into a pod/container the runtime does not run
    ├── KubeError               any failed Kubernetes API call: `status`, `message`, `status_reason`
    ├── ImagePullError          a pull failed: `image`, `message`, `kube_reason` (ErrImagePull, ...)
    │   └── ImagePullTimeout      the pull outlasted its timeout           (also a TransientError)
    └── RuntimeUnavailable      the container runtime cannot be reached   (a TransientError)

A message handler signals how its message must be settled by what it raises, so the settle rules of
the bus contract are one `except` ladder in `services.bus`. The Kubernetes errors are mapped from the
HTTP status once, in `services.kube`, and sit in the same tree: an API error that reaches the bus is
settled by its type like any other. Image pulls fail the same way on every runtime of
`services.runtime`: `kube_reason` is what a kubelet would write in the container status, `reason`
(the cause) is what the node's pull status reports.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "KruisebusError",
    "KubeConflict",
    "KubeError",
    "KubeForbidden",
    "KubeGone",
    "KubeInvalid",
    "KubeNotFound",
    "KubeServerError",
    "KubeTooManyRequests",
    "ExecTargetNotFound",
    "ImageNotFound",
    "ImagePullError",
    "ImagePullTimeout",
    "ImagePullUnauthorized",
    "InvalidImageName",
    "RuntimeUnavailable",
    "MalformedMessageError",
    "PermanentError",
    "StaleError",
    "TransientError",
]


class KruisebusError(Exception):
    """Base class of every error kruisebus raises on purpose."""


class TransientError(KruisebusError):
    """The operation may succeed later: the message is redelivered after `delay` seconds."""

    def __init__(self, message: str = "transient failure", *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(KruisebusError):
    """The message can never succeed: it is terminated and reported as a `rejected` event."""

    reason = "permanent"

    def __init__(self, message: str = "permanent failure", *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class StaleError(PermanentError):
    """A command's precondition failed: the plan was stale, the planner re-plans from fresh state."""

    reason = "stale"


class MalformedMessageError(PermanentError):
    """A message could not be decoded into its schema type."""

    reason = "malformed"


# --- the Kubernetes API --------------------------------------------------------------------------


class KubeError(KruisebusError):
    """An API call failed; `status` is the HTTP status (0 for a transport failure) and
    `status_reason` the reason of the Status body (e.g. `AlreadyExists`)."""

    def __init__(self, status: int, message: str, status_reason: str = "", body: Any = None) -> None:
        super().__init__(f"{status} {status_reason}: {message}" if status_reason else f"{status}: {message}")
        self.status = status
        self.message = message
        self.status_reason = status_reason
        self.body = body


class KubeNotFound(KubeError, PermanentError):
    """404: the object (or its namespace) does not exist."""

    reason = "not-found"


class KubeConflict(KubeError, PermanentError):
    """409: stale resourceVersion, failed uid precondition, or AlreadyExists."""

    reason = "conflict"

    @property
    def already_exists(self) -> bool:
        return self.status_reason == "AlreadyExists"


class KubeInvalid(KubeError, PermanentError):
    """422: the object or patch was rejected (validation, or a failed JSON-patch `test`)."""

    reason = "invalid"


class KubeGone(KubeError, PermanentError):
    """410: the resourceVersion is too old for a watch; relist."""

    reason = "gone"


class KubeForbidden(KubeError, PermanentError):
    """401/403: RBAC (or a quota, or admission) does not allow the call."""

    reason = "forbidden"


class KubeTooManyRequests(KubeError, TransientError):
    """429: throttled; `retry_after` seconds from the Retry-After header (also its `delay`)."""

    retry_after: float = 1.0


class KubeServerError(KubeError, TransientError):
    """5xx or a transport failure: worth retrying later."""


# --- the container runtime (services.runtime) ------------------------------------------------------


class ImagePullError(KruisebusError):
    """An image pull failed; `kube_reason` is the kubelet's waiting reason for it (`ErrImagePull`,
    `ImagePullBackOff`, `InvalidImageName`), `reason` the cause (`pull-failed`, `not-found`, ...)."""

    reason = "pull-failed"

    def __init__(self, image: str, message: str, *, kube_reason: str = "ErrImagePull") -> None:
        super().__init__(f"{kube_reason}: {message}")
        self.image = image
        self.message = message
        self.kube_reason = kube_reason


class ImageNotFound(ImagePullError, PermanentError):
    """The registry has no such repository or tag."""

    reason = "not-found"


class ImagePullUnauthorized(ImagePullError, PermanentError):
    """The registry refused the pull: no or wrong credentials."""

    reason = "unauthorized"


class InvalidImageName(ImagePullError, PermanentError):
    """The image is not a valid reference."""

    reason = "invalid-image"


class ImagePullTimeout(ImagePullError, TransientError):
    """The pull did not finish within its timeout."""

    reason = "timeout"


class RuntimeUnavailable(TransientError):
    """The container runtime (CRI socket, sim control API, API server) cannot be reached."""


class ExecTargetNotFound(PermanentError):
    """exec_sync named a pod or container the runtime does not run."""

    reason = "not-found"
