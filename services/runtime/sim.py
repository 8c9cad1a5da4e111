"""The `sim` runtime: pulls and execs on a simulated node through the embedded cluster's control API.

The simulated kubelet (`sim/nodes.py`) has the latency model pre-download is measured against (image
size / bandwidth, a concurrent-pull limit) and a simulated registry (images that do not exist, ones that
want credentials); this runtime drives it over HTTP (`/sim/nodes/{node}/images`,
`/sim/pods/{ns}/{name}/exec`) so a node agent process behaves against the sim exactly as against a
real node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from services.errors import ExecTargetNotFound, RuntimeUnavailable
from services.runtime import auth as pull_auth
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

if TYPE_CHECKING:
    from services.kube import Kube

PROGRESS_INTERVAL = 0.2  # seconds between progress samples while a pull runs


class _Images(msgspec.Struct, kw_only=True):
    images: dict[str, str] = {}
    sizes: dict[str, int] = {}
    pulling: dict[str, int] = {}
    queued: list[str] = []


class _Pulled(msgspec.Struct, kw_only=True):
    image: str
    imageID: str
    sizeBytes: int | None = None


class _Failure(msgspec.Struct, kw_only=True):
    reason: str = ""
    message: str = ""


class _Exec(msgspec.Struct, kw_only=True):
    exitCode: int
    stdout: str = ""
    stderr: str = ""
    timedOut: bool = False


class SimRuntime:
    """The runtime of simulated node `node` of the embedded cluster at `url`. `kube` (optional) reads
    pull secrets, which the simulated registry checks for its private repositories."""

    kind: RuntimeKind = "sim"

    def __init__(self, node: str, url: str, *, kube: Kube | None = None) -> None:
        self.node = node
        self.url = url.rstrip("/")
        self.kube = kube
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, body: Any = None, *, timeout: float = 30.0
    ) -> tuple[int, bytes]:
        try:
            async with self._http().request(
                method, f"{self.url}{path}", json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as r:
                return r.status, await r.read()
        except (aiohttp.ClientError, OSError) as e:
            raise RuntimeUnavailable(f"sim control API at {self.url}: {type(e).__name__}: {e}") from None

    async def _images(self) -> _Images:
        status, raw = await self._call("GET", f"/sim/nodes/{self.node}/images")
        if status != 200:
            raise RuntimeUnavailable(f"sim node {self.node}: {_failure(raw).message or status}")
        return msgspec.json.decode(raw, type=_Images)

    async def image_status(self, image: str) -> PulledImage | None:
        imgs = await self._images()
        iid = imgs.images.get(image)
        return (
            None if iid is None else PulledImage(image=image, image_id=iid, size_bytes=imgs.sizes.get(image))
        )

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
        body: dict[str, str] = {"image": image}
        try:
            creds = await pull_auth.resolve(image, auth, self.kube)
        except pull_auth.PullSecretError as e:
            raise pull_error(image, str(e)) from None
        if creds is not None:
            body["username"], body["password"] = creds.username, creds.password
        watcher = asyncio.ensure_future(self._watch(image, on_progress)) if on_progress else None
        try:
            async with asyncio.timeout(timeout):
                status, raw = await self._call(
                    "POST", f"/sim/nodes/{self.node}/images", body, timeout=timeout + 5
                )
        except TimeoutError:
            raise pull_timeout(image, timeout) from None
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        if status != 200:
            failure = _failure(raw)
            if failure.reason == "NodeNotFound":
                raise RuntimeUnavailable(failure.message)
            raise pull_error(image, failure.message or f"HTTP {status}")
        done = msgspec.json.decode(raw, type=_Pulled)
        report(on_progress, PullProgress(image=image, phase="Succeeded", percent=100))
        return PulledImage(image=image, image_id=done.imageID, size_bytes=done.sizeBytes)

    async def _watch(self, image: str, on_progress: ProgressCallback) -> None:
        """Report Waiting/Pulling percent from the node's pull table while the pull request runs."""
        last: PullProgress | None = None
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            try:
                imgs = await self._images()
            except RuntimeUnavailable:
                continue
            if image in imgs.pulling:
                cur = PullProgress(image=image, phase="Pulling", percent=imgs.pulling[image])
            elif image in imgs.queued:
                cur = PullProgress(image=image, phase="Waiting", message="waiting for a pull slot")
            else:
                continue
            if cur != last:
                report(on_progress, cur)
                last = cur

    async def exec_sync(
        self, namespace: str, pod: str, container: str, command: Sequence[str], *, timeout: float = 1.0
    ) -> ExecResult:
        status, raw = await self._call(
            "POST",
            f"/sim/pods/{namespace}/{pod}/exec",
            {"container": container, "command": list(command), "timeout": timeout},
            timeout=timeout + 10,
        )
        if status == 404:
            raise ExecTargetNotFound(_failure(raw).message or f"pod {namespace}/{pod} not found")
        if status != 200:
            raise RuntimeUnavailable(f"sim exec in {namespace}/{pod}: {_failure(raw).message or status}")
        r = msgspec.json.decode(raw, type=_Exec)
        return ExecResult(exit_code=r.exitCode, stdout=r.stdout, stderr=r.stderr, timed_out=r.timedOut)


def _failure(raw: bytes) -> _Failure:
    try:
        return msgspec.json.decode(raw, type=_Failure)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Failure(message=raw.decode(errors="replace")[:300])



__all__ = ["SimRuntime"]
