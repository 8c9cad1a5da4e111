"""Work a node does itself, and what it reports back: the node half of the bus contract.

Some decisions cannot be carried out through the API server: an image is pulled by the node's
container runtime. The planner sends such work as an ordinary `Command` whose `node` is set; the bus
routes it to `kb.node.<node>.<verb>` (KB_NODE, a work queue) instead of KB_CMD, and the node's agent
(`kruisebus executor --node NAME`) performs its `node_ops` through the runtime seam.

What the agent learns is an observation like any other, so it travels as state: a `PullResult` per
(node, image) on KB_STATE, compacted to the latest, replayed by a restarted planner with everything
else. The planner folds completed results into NodeImage status (one write per completed pull), so the
agent needs no API access and intermediate progress (which users follow on the rollout event stream)
never becomes an API write.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from schemas.kube import ObjectMeta


class SecretRef(msgspec.Struct, frozen=True, kw_only=True):
    """A pull secret the agent resolves on its node (runtimes that need no credentials ignore it)."""

    namespace: str
    name: str


class _NodeOp(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    pass


class PullOp(_NodeOp, tag="pull"):
    """Pull `image` (name:tag or name@digest) on the command's node.

    `version` is the NodeImage tag's version: a re-pull (Always policy, a new job) bumps it, so a result
    tells which request it answers. `always`: pull even if the image is present.
    """

    image: str
    version: int = 0
    timeout_seconds: int = 600
    always: bool = False
    secrets: list[SecretRef] = []


NodeOp: TypeAlias = PullOp

PullPhase: TypeAlias = Literal["waiting", "pulling", "succeeded", "failed"]
PULL_DONE: frozenset[str] = frozenset({"succeeded", "failed"})
REASON_EXPIRED = "Expired"
"""A failed result's reason when the pull was not started before its command's `not_after`."""


def pull_result_uid(node: str, image: str) -> str:
    """The identity of a node's result for one image (its KB_STATE subject's last token)."""
    return f"{node}/{image}"


class PullResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The latest a node agent knows about one image: phase, progress, and how a pull ended.

    `metadata` gives it the identity the state stream and the planner route by: name = the node
    (also the NodeImage's name), uid = `pull_result_uid(node, image)`, resourceVersion = a counter the
    agent bumps per report, so the state stream's dedup id changes with every report.
    """

    metadata: ObjectMeta
    node: str
    image: str
    version: int = 0
    phase: PullPhase
    progress: int = 0  # percent
    image_id: str = ""
    reason: str = ""  # why it failed: ErrImagePull, ImageNotFound, Unauthorized, DeadlineExceeded, Expired, ...
    message: str = ""
    start_time: str = ""  # RFC 3339
    completion_time: str = ""
    command_id: str = ""  # the pull command this answers

    @property
    def done(self) -> bool:
        return self.phase in PULL_DONE


__all__ = [
    "NodeOp",
    "PULL_DONE",
    "PullOp",
    "PullPhase",
    "PullResult",
    "REASON_EXPIRED",
    "SecretRef",
    "pull_result_uid",
]
