"""The `kube` runtime: pull an image onto a node with a short-lived pod, through the API server only.

No node agent and no access to the node are needed: a pod pinned to the node (`nodeName`, every taint
tolerated, `restartPolicy: Never`, `activeDeadlineSeconds`, a command that exits at once) makes that
node's kubelet pull the image with the pod's `imagePullPolicy` and pull secrets. The pull is done when
the container leaves the pull (an imageID, running or terminated, or a post-pull waiting reason such
as a missing command); `ErrImagePull` / `ImagePullBackOff` / `InvalidImageName` become the seam's
typed errors with the kubelet's message. The pod is deleted whatever happens (success, failure,
timeout, cancellation), and pods a killed agent left behind are swept by `sweep()`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
from collections.abc import Sequence
from typing import Any

import msgspec

from schemas.constants import LABEL_IMAGE_PULL_POD
from schemas.messages import NODES, PODS
from services.errors import InvalidImageName, KubeError, KubeNotFound, RuntimeUnavailable
from services.kube import Kube
from services.runtime.base import (
    ExecResult,
    ProgressCallback,
    PullAuth,
    PulledImage,
    PullPolicy,
    PullProgress,
    RuntimeKind,
    SandboxConfig,
    present_for_policy,
    report,
)
from services.runtime.images import parse_image, pull_error, pull_timeout

log = logging.getLogger(__name__)

CONTAINER = "pull"
DEFAULT_COMMAND = ("/bin/true",)
# the pull pod is read every POLL_INTERVAL seconds at first, backing off to POLL_MAX (long pulls)
POLL_INTERVAL = 0.1
POLL_MAX = 1.0
# waiting reasons that end a pull attempt with a failure (pkg/kubelet/images/types.go)
FAILED_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "ErrImageInspect",
)
# waiting reasons the kubelet gives only once the image is present (container config, create, start)
PULLED_REASONS = (
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "StartError",
    "CrashLoopBackOff",
    "PreCreateHookError",
    "PreStartHookError",
    "PostStartHookError",
)


class _State(msgspec.Struct, kw_only=True):
    reason: str = ""
    message: str = ""


class _ContainerState(msgspec.Struct, kw_only=True):
    waiting: _State | None = None
    running: dict[str, Any] | None = None
    terminated: _State | None = None


class _ContainerStatus(msgspec.Struct, kw_only=True):
    name: str = ""
    imageID: str = ""
    state: _ContainerState = msgspec.field(default_factory=_ContainerState)


class _PodStatus(msgspec.Struct, kw_only=True):
    phase: str = ""
    reason: str = ""
    message: str = ""
    containerStatuses: list[_ContainerStatus] = []


class _Pod(msgspec.Struct, kw_only=True):
    status: _PodStatus = msgspec.field(default_factory=_PodStatus)


class _NodeImage(msgspec.Struct, kw_only=True):
    names: list[str] = []
    sizeBytes: int | None = None


class _NodeStatus(msgspec.Struct, kw_only=True):
    images: list[_NodeImage] = []


class _Node(msgspec.Struct, kw_only=True):
    status: _NodeStatus = msgspec.field(default_factory=_NodeStatus)


class _Meta(msgspec.Struct, kw_only=True):
    name: str
    namespace: str = ""


class _Named(msgspec.Struct, kw_only=True):
    metadata: _Meta


def pull_pod(
    image: str,
    node: str,
    *,
    name: str,
    namespace: str,
    policy: PullPolicy,
    timeout: float,
    pull_secrets: Sequence[str] = (),
    command: Sequence[str] = DEFAULT_COMMAND,
    sandbox: SandboxConfig | None = None,
) -> dict[str, Any]:
    """The pull pod's manifest (pure)."""
    spec: dict[str, Any] = {
        "nodeName": node,
        "restartPolicy": "Never",
        "activeDeadlineSeconds": max(1, math.ceil(timeout)),
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "tolerations": [{"operator": "Exists"}],
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": policy,
                "command": list(command),
                "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}},
            }
        ],
    }
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**(sandbox.labels if sandbox else {}), LABEL_IMAGE_PULL_POD: "true"},
            **({"annotations": dict(sandbox.annotations)} if sandbox and sandbox.annotations else {}),
        },
        "spec": spec,
    }


def pull_outcome(image: str, pod: _Pod) -> tuple[str, str | None]:
    """("pulled", imageID) / ("failed", None) raising / ("pulling" | "waiting", None), from the pod (pure).
    Raises the `ImagePullError` for a failed pull."""
    st = next((c for c in pod.status.containerStatuses if c.name == CONTAINER), None)
    if st is not None:
        w = st.state.waiting
        if w is not None and w.reason in FAILED_REASONS:
            raise pull_error(image, w.message or w.reason, kube_reason=w.reason)
        if (
            st.imageID
            or st.state.running is not None
            or st.state.terminated is not None
            or (w is not None and w.reason in PULLED_REASONS)
        ):
            return "pulled", st.imageID
        return "pulling", None
    if pod.status.phase == "Failed":  # DeadlineExceeded before the kubelet wrote a container status
        raise pull_error(image, pod.status.message or pod.status.reason or "the pull pod failed")
    return "waiting", None


class KubePodRuntime:
    """Pulls onto `node` through the API server. Pods go into `namespace`, or into the namespace of
    the pull secrets (imagePullSecrets must live in the pod's namespace)."""

    kind: RuntimeKind = "kube"

    def __init__(
        self,
        node: str,
        kube: Kube,
        *,
        namespace: str = "default",
        command: Sequence[str] = DEFAULT_COMMAND,
        owns_kube: bool = False,
    ) -> None:
        self.node = node
        self.kube = kube
        self.namespace = namespace
        self.command = tuple(command)
        self.owns_kube = owns_kube
        self.deleted: list[str] = []  # pull pods deleted (newest last), for status and tests

    async def close(self) -> None:
        if self.owns_kube:
            await self.kube.close()

    async def image_status(self, image: str) -> PulledImage | None:
        """From the Node's `status.images`, which the kubelet keeps (names: repo@digest and repo:tag)."""
        try:
            node = msgspec.json.decode(await self.kube.get(NODES, None, self.node), type=_Node)
        except KubeNotFound:
            raise RuntimeUnavailable(f"node {self.node} does not exist") from None
        want = str(parse_image(image))
        for img in node.status.images:
            if any(n == image or _normal(n) == want for n in img.names):
                digest = next((n for n in img.names if "@sha256:" in n), "")
                return PulledImage(
                    image=image,
                    image_id=digest or (img.names[0] if img.names else ""),
                    size_bytes=img.sizeBytes,
                )
        return None

    async def sweep(self) -> int:
        """Delete pull pods on this node that a previous agent left behind; returns how many."""
        items, _ = await self.kube.list(
            PODS,
            None,
            label_selector=f"{LABEL_IMAGE_PULL_POD}=true",
            field_selector=f"spec.nodeName={self.node}",
        )
        n = 0
        for raw in items:
            meta = msgspec.json.decode(raw, type=_Named).metadata
            await self._delete(meta.namespace, meta.name)
            n += 1
        return n

    async def pull(
        self,
        image: str,
        *,
        auth: PullAuth | None = None,
        policy: PullPolicy = "IfNotPresent",
        timeout: float = 600.0,
        on_progress: ProgressCallback | None = None,
        sandbox: SandboxConfig | None = None,
    ) -> PulledImage:
        parse_image(image)
        present = await present_for_policy(self, image, policy, on_progress)
        if present is not None:
            return present
        namespace = self.namespace
        names: list[str] = []
        if auth is not None and auth.secrets:
            spaces = {s.namespace for s in auth.secrets}
            if len(spaces) > 1:
                raise pull_error(
                    image,
                    f"pull secrets are in namespaces {sorted(spaces)}: the kube runtime's pull pod can "
                    "use secrets of one namespace only",
                )
            namespace = spaces.pop()
            names = [s.name for s in auth.secrets]
        digest = hashlib.sha256(f"{self.node}/{image}".encode()).hexdigest()[:10]
        name = f"image-pull-{digest}-{secrets.token_hex(3)}"
        manifest = pull_pod(
            image,
            self.node,
            name=name,
            namespace=namespace,
            policy=policy,
            timeout=timeout,
            pull_secrets=names,
            command=self.command,
            sandbox=sandbox,
        )
        report(on_progress, PullProgress(image=image, phase="Waiting"))
        try:
            await self.kube.create(PODS, namespace, manifest)
        except KubeNotFound as e:
            raise RuntimeUnavailable(
                f"cannot create the pull pod in namespace {namespace}: {e.message}"
            ) from None
        try:
            async with asyncio.timeout(timeout):
                image_id = await self._wait(image, namespace, name, on_progress)
        except TimeoutError:
            raise pull_timeout(image, timeout) from None
        finally:
            await asyncio.shield(self._delete(namespace, name))
        if not image_id:
            present = await self.image_status(image)
            image_id = present.image_id if present is not None else ""
        report(on_progress, PullProgress(image=image, phase="Succeeded", percent=100))
        return PulledImage(image=image, image_id=image_id)

    async def _wait(self, image: str, namespace: str, name: str, on_progress: ProgressCallback | None) -> str:
        reported = "waiting"
        interval = POLL_INTERVAL
        while True:
            try:
                pod = msgspec.json.decode(await self.kube.get(PODS, namespace, name), type=_Pod)
            except KubeNotFound:
                raise pull_error(
                    image, f"the pull pod {namespace}/{name} was deleted before the pull ended"
                ) from None
            outcome, image_id = pull_outcome(image, pod)
            if outcome == "pulled":
                return image_id or ""
            if outcome == "pulling" and reported != "pulling":
                report(on_progress, PullProgress(image=image, phase="Pulling"))
                reported = "pulling"
            await asyncio.sleep(interval)
            interval = min(POLL_MAX, interval * 1.5)

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.kube.delete(PODS, namespace, name, grace_period_seconds=0)
        except KubeNotFound:
            pass
        except KubeError as e:
            log.warning("could not delete pull pod %s/%s: %s", namespace, name, e)
            return
        self.deleted.append(f"{namespace}/{name}")

    async def exec_sync(
        self, namespace: str, pod: str, container: str, command: Sequence[str], *, timeout: float = 1.0
    ) -> ExecResult:
        raise NotImplementedError(
            "the kube runtime does not exec into containers yet (the API server's exec is a streaming "
            "connection); use the cri runtime on the node, or the sim runtime"
        )


def _normal(name: str) -> str:
    try:
        return str(parse_image(name))
    except InvalidImageName:
        return name



__all__ = ["KubePodRuntime", "pull_outcome", "pull_pod"]
