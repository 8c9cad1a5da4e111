"""The runtime seam's contract: what a node agent asks of a container runtime, and the types it gets back.

A node agent pre-downloads images (ImagePullJob / NodeImage) and, later, runs exec probes; it does so
through `ImageRuntime` and never knows which runtime it holds: the simulated node (`sim`), a short-lived
pod through the API server (`kube`) or the node's container runtime over its CRI socket (`cri`).
`services.runtime.open_runtime` picks one by name. Every runtime reports a failed pull by the same
`services.errors.ImagePullError` subclasses, with the reason a kubelet would give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

import msgspec

PullPolicy = Literal["Always", "IfNotPresent"]
"""Kruise's ImagePullJob `imagePullPolicy`: IfNotPresent succeeds at once for an image already present."""

PULL_POLICIES: tuple[PullPolicy, ...] = ("Always", "IfNotPresent")


class SecretRef(msgspec.Struct, frozen=True, kw_only=True):
    """A `kubernetes.io/dockerconfigjson` (or `dockercfg`) Secret holding registry credentials."""

    namespace: str
    name: str


class RegistryCredentials(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Credentials for one registry, as a docker config holds them (and as CRI's AuthConfig takes them)."""

    server_address: str = ""
    """The registry host (`registry.example.com:5000`); empty: any registry."""
    username: str = ""
    password: str = ""
    auth: str = ""
    """base64 of `username:password`, as docker config files write it."""
    identity_token: str = ""
    registry_token: str = ""


class PullAuth(msgspec.Struct, frozen=True, kw_only=True):
    """How to authenticate a pull: pull secrets by reference (what an ImagePullJob names) and/or
    credentials already read. Each runtime uses what it can: `kube` passes `secrets` to its pull pod as
    imagePullSecrets; `cri` and `sim` read the secrets (through the API server) into credentials."""

    secrets: tuple[SecretRef, ...] = ()
    credentials: tuple[RegistryCredentials, ...] = ()


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    """ImagePullJob's `sandboxConfig`: labels and annotations of the pod sandbox a pull is done for (CRI
    runtimes may pick a registry mirror or account the pull by them; the kube runtime's pull pod
    carries them)."""

    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class PullProgress(msgspec.Struct, frozen=True, kw_only=True):
    """A pull's progress, as NodeImage's tag status reports it (phase, percent)."""

    image: str
    phase: Literal["Waiting", "Pulling", "Succeeded"]
    percent: int = 0
    """0-100; runtimes that cannot tell report 0 while pulling and 100 when done."""
    message: str = ""


class PulledImage(msgspec.Struct, frozen=True, kw_only=True):
    """An image present on the node."""

    image: str
    image_id: str
    """What the kubelet writes as a container's imageID: `<repo>@sha256:...` where the runtime knows
    the repo digest, else the runtime's image id (`sha256:...`)."""
    size_bytes: int | None = None


class ExecResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a command run in a container (an exec probe)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    """The command did not finish within its timeout (a probe counts that as a failure)."""


ProgressCallback = Callable[[PullProgress], None]

RuntimeKind = Literal["sim", "kube", "cri"]
RUNTIME_KINDS: tuple[RuntimeKind, ...] = ("sim", "kube", "cri")


@runtime_checkable
class ImageRuntime(Protocol):
    """A node's container runtime, as far as a node agent needs it.

    `pull` returns when the image is on the node (`policy` IfNotPresent: at once when it is there
    already; `sandbox`: the job's sandboxConfig, passed on where the runtime has a use for it) or raises an `ImagePullError` (`ImageNotFound`,
    `ImagePullUnauthorized`, `InvalidImageName`, `ImagePullTimeout`); a cancelled pull leaves nothing
    behind (the `kube` runtime deletes its pod). `image_status` is None for an image not present.
    `exec_sync` raises `ExecTargetNotFound` for a pod or container it does not run; a command that
    outlasts `timeout` gives `timed_out=True`, not an error (the `kube` runtime has no exec yet and
    raises NotImplementedError).
    """

    kind: RuntimeKind
    node: str

    async def pull(
        self,
        image: str,
        *,
        auth: PullAuth | None = None,
        policy: PullPolicy = "IfNotPresent",
        timeout: float = 600.0,
        on_progress: ProgressCallback | None = None,
        sandbox: SandboxConfig | None = None,
    ) -> PulledImage: ...

    async def image_status(self, image: str) -> PulledImage | None: ...

    async def exec_sync(
        self, namespace: str, pod: str, container: str, command: Sequence[str], *, timeout: float = 1.0
    ) -> ExecResult: ...

    async def close(self) -> None: ...


def report(on_progress: ProgressCallback | None, progress: PullProgress) -> None:
    """Tell the caller how a pull goes, if it asked."""
    if on_progress is not None:
        on_progress(progress)


async def present_for_policy(
    runtime: ImageRuntime, image: str, policy: PullPolicy, on_progress: ProgressCallback | None
) -> PulledImage | None:
    """IfNotPresent's short cut, the same for every runtime: an image the node has already is pulled at
    once (reported Succeeded, nothing fetched, no API write); Always always pulls."""
    if policy != "IfNotPresent":
        return None
    present = await runtime.image_status(image)
    if present is not None:
        report(on_progress, PullProgress(image=image, phase="Succeeded", percent=100))
    return present


__all__ = [
    "present_for_policy",
    "report",
    "PULL_POLICIES",
    "RUNTIME_KINDS",
    "ExecResult",
    "ImageRuntime",
    "ProgressCallback",
    "PullAuth",
    "PullPolicy",
    "PullProgress",
    "PulledImage",
    "RegistryCredentials",
    "RuntimeKind",
    "SandboxConfig",
    "SecretRef",
]
