"""Read-only views of a CloneSet and its pods for the demo, `kruisebus rollout status` and tests.

These read the API server (the source of truth), never NATS, so what they report is what kubectl
would show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import CONDITION_READY, LABEL_REVISION_HASH
from schemas.kube import Pod
from schemas.messages import CLONESETS, PODS
from services.kube import Kube

_CS = msgspec.json.Decoder(CloneSet)
_POD = msgspec.json.Decoder(Pod)
T = TypeVar("T")


def pod_ready(pod: Pod) -> bool:
    cond = pod.status.condition(CONDITION_READY)
    return cond is not None and cond.status == "True"


def restart_count(pod: Pod) -> int:
    return sum(c.restart_count for c in pod.status.container_statuses)


def revision_of(pod: Pod) -> str:
    return pod.metadata.labels.get(LABEL_REVISION_HASH, "")


def images_of(pod: Pod) -> list[str]:
    return [c.image for c in pod.spec.containers]


@dataclass(frozen=True)
class Snapshot:
    cloneset: CloneSet
    pods: list[Pod]  # active pods controlled by the CloneSet, by name

    @property
    def unavailable(self) -> int:
        return sum(1 for p in self.pods if not pod_ready(p))

    @property
    def ready(self) -> int:
        return sum(1 for p in self.pods if pod_ready(p))

    def updated(self) -> list[Pod]:
        rev = self.cloneset.status.update_revision
        return [p for p in self.pods if rev and revision_of(p) == rev]


async def snapshot(kube: Kube, namespace: str, name: str) -> Snapshot:
    cs = _CS.decode(await kube.get(CLONESETS, namespace, name))
    items, _ = await kube.list(PODS, namespace)
    pods = []
    for raw in items:
        pod = _POD.decode(raw)
        ref = pod.metadata.controller_ref()
        if ref and ref.uid == cs.metadata.uid and pod.metadata.deletion_timestamp is None:
            pods.append(pod)
    pods.sort(key=lambda p: p.metadata.name)
    return Snapshot(cs, pods)


async def poll(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float,
               interval: float = 0.2, on_sample: Callable[[T], None] | None = None,
               what: str = "condition") -> T:
    """Fetch until `done` holds or the deadline passes (TimeoutError naming `what`)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await fetch()
        if on_sample is not None:
            on_sample(last)
        if done(last):
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r:.300}")
        await asyncio.sleep(interval)
