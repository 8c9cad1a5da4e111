"""The runtime seam: how a node agent pulls images (and runs exec probes) on its node.

`open_runtime(kind, node=...)` gives an `ImageRuntime`; the agent picks the kind by flag
(`RuntimeSettings`, `--runtime sim|kube|cri`) and never knows which one it holds:

    sim    the embedded cluster's simulated node (sim/nodes.py), through its control API
    kube   a short-lived pod pinned to the node, through the API server only (no agent on the node)
    cri    the node's container runtime over its CRI socket (containerd, CRI-O)

docs/runtime.md says when to use which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.runtime.base import (
    PULL_POLICIES,
    RUNTIME_KINDS,
    ExecResult,
    ImageRuntime,
    ProgressCallback,
    PullAuth,
    PulledImage,
    PullPolicy,
    PullProgress,
    RegistryCredentials,
    RuntimeKind,
    SandboxConfig,
    SecretRef,
)

if TYPE_CHECKING:
    from services.kube import Kube
    from services.settings import RuntimeSettings


async def open_runtime(
    kind: RuntimeKind | str,
    *,
    node: str,
    kube: Kube | None = None,
    kubeconfig: str | None = None,
    sim_url: str | None = None,
    cri_socket: str | None = None,
    namespace: str = "default",
) -> ImageRuntime:
    """The runtime `kind` for `node`, checked to answer (RuntimeUnavailable otherwise).

    `kube` is the node agent's API client (`services.kube.Kube`): required by `kube` (else one is made
    from `kubeconfig` and closed with the runtime), used by `cri` and `sim` to read pull secrets. `sim_url`
    defaults to the API server's URL (the embedded cluster serves both); `cri_socket` to containerd's;
    `namespace` is where the `kube` runtime creates its pull pods when no pull secret names one.
    """
    if not node:
        raise ValueError("node: the runtime needs the name of the node it pulls on")
    if kind == "sim":
        from services.runtime.sim import SimRuntime

        url = sim_url or (str(kube.api.configuration.host) if kube is not None else "")
        if not url:
            raise ValueError(
                "sim_url: the sim runtime needs the embedded cluster's URL (or a kube client of it)"
            )
        sim = SimRuntime(node, url, kube=kube)
        try:
            await sim.image_status("kruisebus.invalid/probe:v0")  # the node exists and the API answers
        except BaseException:
            await sim.close()
            raise
        return sim
    if kind == "kube":
        from services.kube import Kube
        from services.runtime.kubepod import KubePodRuntime

        owns = kube is None
        client = kube if kube is not None else await Kube.connect(kubeconfig)
        pods = KubePodRuntime(node, client, namespace=namespace, owns_kube=owns)
        try:
            await pods.image_status("kruisebus.invalid/probe:v0")  # the node exists
            await pods.sweep()  # pull pods a previous agent on this node left behind
        except BaseException:
            await pods.close()
            raise
        return pods
    if kind == "cri":
        from services.runtime.cri import DEFAULT_SOCKET, CriRuntime

        cri = CriRuntime(node, cri_socket or DEFAULT_SOCKET, kube=kube)
        try:
            await cri.version()
        except BaseException:
            await cri.close()
            raise
        return cri
    raise ValueError(f"runtime: unknown kind {kind!r}, expected one of {', '.join(RUNTIME_KINDS)}")


async def open_runtime_with(
    settings: RuntimeSettings, *, node: str, kube: Kube | None = None
) -> ImageRuntime:
    """`open_runtime` from a service's `RuntimeSettings` (the `--runtime ...` flags)."""
    return await open_runtime(
        settings.kind,
        node=node,
        kube=kube,
        sim_url=settings.sim_url or None,
        cri_socket=settings.cri_socket or None,
        namespace=settings.pull_namespace,
    )


__all__ = [
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
    "open_runtime",
    "open_runtime_with",
]
