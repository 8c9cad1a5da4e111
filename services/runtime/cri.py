"""The `cri` runtime: the node's own container runtime (containerd, CRI-O) over its CRI unix socket.

What a kruise-daemon does on a node: ImageService.PullImage with the registry credentials of the pull
secrets as AuthConfig, ImageStatus for "is it there", and RuntimeService.ExecSync for exec probes,
all over gRPC `runtime.v1alpha2` (modules compiled at build time, `services.runtime.cri_api`). The
runtime's gRPC status and message become the seam's typed errors with the kubelet's wording
(`rpc error: code = NotFound desc = ...`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from services.errors import ExecTargetNotFound, RuntimeUnavailable
from services.runtime import auth as pull_auth
from services.runtime import cri_api
from services.runtime.base import (
    ExecResult,
    ProgressCallback,
    PullAuth,
    PulledImage,
    PullPolicy,
    PullProgress,
    RegistryCredentials,
    RuntimeKind,
    SandboxConfig,
    present_for_policy,
    report,
)
from services.runtime.images import parse_image, pull_error, pull_timeout

if TYPE_CHECKING:
    from services.kube import Kube

DEFAULT_SOCKET = "/run/containerd/containerd.sock"
# the labels the kubelet puts on CRI containers (pkg/kubelet/types/labels.go)
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"


def rpc_message(err: grpc.RpcError) -> str:
    """`rpc error: code = NotFound desc = ...`, as the kubelet words a CRI failure."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    name = "".join(p.capitalize() for p in code.name.split("_")) if code else "Unknown"
    details = err.details() if hasattr(err, "details") else str(err)
    return f"rpc error: code = {name} desc = {details}"


class CriRuntime:
    """The CRI runtime at unix socket `socket` on node `node`; `kube` (optional) reads pull secrets."""

    kind: RuntimeKind = "cri"

    def __init__(self, node: str, socket: str = DEFAULT_SOCKET, *, kube: Kube | None = None) -> None:
        self.node = node
        self.socket = socket
        self.kube = kube
        self.pb: ModuleType
        self.pb, grpc_mod = cri_api.load()
        self._channel = grpc.aio.insecure_channel(f"unix://{socket}")
        self._images: Any = grpc_mod.ImageServiceStub(self._channel)
        self._runtime: Any = grpc_mod.RuntimeServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def version(self) -> str:
        """`containerd 1.6.20 (CRI v1alpha2)`; raises RuntimeUnavailable when the socket does not answer."""
        try:
            v = await self._runtime.Version(self.pb.VersionRequest(), timeout=10)
        except grpc.RpcError as e:
            raise RuntimeUnavailable(f"CRI socket {self.socket}: {rpc_message(e)}") from None
        return f"{v.runtime_name} {v.runtime_version} (CRI {v.runtime_api_version})"

    async def image_status(self, image: str) -> PulledImage | None:
        parse_image(image)
        try:
            r = await self._images.ImageStatus(
                self.pb.ImageStatusRequest(image=self.pb.ImageSpec(image=image)), timeout=30
            )
        except grpc.RpcError as e:
            raise RuntimeUnavailable(f"CRI ImageStatus {image}: {rpc_message(e)}") from None
        if not r.HasField("image") or not r.image.id:
            return None
        return _pulled(image, r.image)

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
        try:
            creds = await pull_auth.resolve(image, auth, self.kube)
        except pull_auth.PullSecretError as e:
            raise pull_error(image, str(e)) from None
        req = self.pb.PullImageRequest(image=self.pb.ImageSpec(image=image))
        if creds is not None:
            req.auth.CopyFrom(self._auth(creds))
        if sandbox is not None and (sandbox.labels or sandbox.annotations):
            req.sandbox_config.CopyFrom(
                self.pb.PodSandboxConfig(labels=sandbox.labels, annotations=sandbox.annotations)
            )
        report(on_progress, PullProgress(image=image, phase="Pulling"))
        try:
            await self._images.PullImage(req, timeout=timeout)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise pull_timeout(image, timeout) from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise RuntimeUnavailable(f"CRI socket {self.socket}: {rpc_message(e)}") from None
            raise pull_error(image, rpc_message(e)) from None
        present = await self.image_status(image)
        if present is None:
            raise pull_error(image, f'the runtime reported "{image}" pulled but ImageStatus does not find it')
        report(on_progress, PullProgress(image=image, phase="Succeeded", percent=100))
        return present

    def _auth(self, c: RegistryCredentials) -> Any:
        # No server_address: the credentials were matched to the image's registry already, and
        # containerd 1.6 url-parses the field (a bare `host:port` fails to parse).
        return self.pb.AuthConfig(
            username=c.username,
            password=c.password,
            auth=c.auth,
            identity_token=c.identity_token,
            registry_token=c.registry_token,
        )

    async def exec_sync(
        self, namespace: str, pod: str, container: str, command: Sequence[str], *, timeout: float = 1.0
    ) -> ExecResult:
        flt = self.pb.ContainerFilter(
            state=self.pb.ContainerStateValue(state=self.pb.CONTAINER_RUNNING),
            label_selector={
                LABEL_POD_NAMESPACE: namespace,
                LABEL_POD_NAME: pod,
                LABEL_CONTAINER_NAME: container,
            },
        )
        try:
            found = await self._runtime.ListContainers(self.pb.ListContainersRequest(filter=flt), timeout=30)
        except grpc.RpcError as e:
            raise RuntimeUnavailable(f"CRI ListContainers: {rpc_message(e)}") from None
        if not found.containers:
            raise ExecTargetNotFound(
                f'no running container "{container}" of pod {namespace}/{pod} on node {self.node}'
            )
        cid = found.containers[0].id
        req = self.pb.ExecSyncRequest(container_id=cid, cmd=list(command), timeout=max(1, math.ceil(timeout)))
        try:
            r = await self._runtime.ExecSync(req, timeout=timeout + 10)
        except grpc.RpcError as e:
            msg = rpc_message(e)
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED or re.search(
                r"timeout|timed out|deadline", msg, re.I
            ):
                return ExecResult(exit_code=-1, stderr=msg, timed_out=True)
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise ExecTargetNotFound(msg) from None
            raise RuntimeUnavailable(f"CRI ExecSync in {namespace}/{pod}/{container}: {msg}") from None
        return ExecResult(
            exit_code=r.exit_code,
            stdout=r.stdout.decode(errors="replace"),
            stderr=r.stderr.decode(errors="replace"),
        )


def _pulled(image: str, img: Any) -> PulledImage:
    """imageID as the kubelet reports it: the repo digest where there is one, else the image id."""
    digests = list(img.repo_digests)
    repo = parse_image(image).repository
    digest = next((d for d in digests if d.split("@", 1)[0] in (repo, image.split("@", 1)[0])), "")
    return PulledImage(
        image=image,
        image_id=digest or (digests[0] if digests else img.id),
        size_bytes=int(img.size) if img.size else None,
    )



__all__ = ["DEFAULT_SOCKET", "CriRuntime", "rpc_message"]
