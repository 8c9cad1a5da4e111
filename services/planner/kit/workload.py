"""What the planner service needs from a workload planner: one small protocol.

The service is a generic engine: it keeps a view per workload (the workload object, the pods it
controls, the other objects it owns, the items of the extra streams it declares as `Input`s), holds a workload back while expectations are pending, applies
slow start and retries, and traces the rollout. Everything that differs between workloads (which
owned kinds it reads, how one pass decides) is behind `WorkloadPlanner`, and `services.planner.workloads`
lists the planners there are. `kruisebus plan` previews through the same registry.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import msgspec

from schemas.kinds import Kind
from schemas.kube import Pod
from schemas.messages import Command, Expectation, RolloutEvent
from schemas.subjects import Subjects
from services.planner.kit.gates import FeatureGates


class PlanResult(Protocol):
    """One pass's decisions, as every workload planner returns them."""

    @property
    def commands(self) -> list[Command]: ...

    @property
    def events(self) -> list[RolloutEvent]: ...

    @property
    def expectations(self) -> list[Expectation]: ...

    @property
    def requeue_after(self) -> float | None: ...

    @property
    def accepted(self) -> bool:
        """The spec was valid (it becomes `previous`, the base of update-only validation)."""
        ...

    @property
    def current_revision(self) -> str: ...

    @property
    def update_revision(self) -> str:
        """The revision being rolled out ("" when the workload has none): names the rollout's trace."""
        ...


@dataclass(frozen=True)
class Shared:
    """A kind a planner reads across the cluster, not through ownership.

    A DaemonSet needs every node, an image pull job every NodeImage, a NodeImage's own planner the
    NodeImage named after its node: none of those objects has the workload as its controller, so
    routing by owner never delivers them. The engine keeps one index per shared kind and hands the
    whole kind to `plan()` under its token in `owned` (sorted by name, like owned objects).

    A change to a shared object re-plans the workloads it concerns: with `key`, only the workload of
    this planner's kind whose name `key(obj)` returns (in the object's namespace; a cluster-scoped
    object names a cluster-scoped workload or one in any namespace); with `match`, only the workloads
    `w` of this planner's kind for which `match(w, obj)` holds for the object's new or previous version
    (a pod relabelled out of a marker's selector concerns that marker too); with neither, every workload
    of the planner's kind.

    `compact`, when given, is what the index keeps of each object instead of the object (a lean copy
    with only what the planner reads); it applies when every planner sharing the kind names the same.
    A change that leaves the compact copy equal (a status field nobody reads) re-plans nobody.

    `relevant`, when given, is asked on an update whether the change (old, new) can matter to this
    planner; False re-plans nothing for it (a DaemonSet ignores a Node heartbeat).
    """

    kind: Kind
    key: Callable[[Any], str] | None = None
    compact: Callable[[Any], Any] | None = None
    match: Callable[[Any, Any], bool] | None = None
    relevant: Callable[[Any, Any], bool] | None = None


@dataclass(frozen=True)
class Input:
    """A stream a planner consumes besides the state stream (a PodProbeMarker's probe results).

    The engine follows `subject(subjects)` (replayed from the start, then live, decoded with `decoder`)
    and plans nothing before the replay is done. Each item belongs to the workload of this planner's
    kind that `route(item)` names as (namespace, name), under `key(item)` (a newer item with the same key
    replaces it); a new item re-plans that workload, whose `plan()` gets its items under `owned[token]`
    sorted by `order`. With `pod`, an item is about the pod with that uid and is forgotten with it.
    """

    token: str
    subject: Callable[[Subjects], str]
    decoder: msgspec.json.Decoder[Any]
    route: Callable[[Any], tuple[str, str]]
    key: Callable[[Any], Hashable]
    order: Callable[[Any], Any]
    pod: Callable[[Any], str] | None = None


class ConsumesInputs(Protocol):
    @property
    def inputs(self) -> tuple[Input, ...]:
        """The streams the workload consumes besides the state stream (see `Input`)."""
        ...


class ClaimsOrphans(Protocol):
    def claims(self, obj: Any, pod: Pod) -> bool:
        """Whether the workload `obj` would claim the orphan pod `pod` (a pod without a controller
        reference): a create or update of such a pod re-plans every workload of the kind that does."""
        ...


ORPHAN_PODS = "orphanpod"
"""The `owned` key under which the engine hands a planner with `claims` the orphan pods it claims (sorted
by name; pods without a controller reference in the workload's namespace)."""


def claims_of(planner: object) -> Callable[[Any, Pod], bool] | None:
    """A planner's orphan claim (`ClaimsOrphans`); None for one that takes no orphans into account."""
    claims = getattr(planner, "claims", None)
    return claims if callable(claims) else None


def inputs_of(planner: object) -> tuple[Input, ...]:
    """A planner's extra inputs; () for one that declares none (most)."""
    inputs = getattr(planner, "inputs", ())
    return tuple(inputs)


class WorkloadPlanner(Protocol):
    @property
    def kind(self) -> Kind:
        """The workload's row in the table of kinds."""
        ...

    @property
    def owned(self) -> tuple[Kind, ...]:
        """The kinds, besides pods, whose objects belong to the workload that controls them."""
        ...

    @property
    def shared(self) -> tuple[Shared, ...]:
        """The kinds the workload reads cluster-wide (see `Shared`); () for most workloads."""
        ...

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> PlanResult:
        """One pass over a consistent view: `pods` and each `owned[kind token]` sorted by name."""
        ...

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        """`kruisebus plan`: (exit code, JSON document) for the workload `obj` saved beside `objects`
        (anything else the file held: pods, revisions, ...). 0: planned, 1: invalid spec."""
        ...


__all__ = ["ClaimsOrphans", "ConsumesInputs", "Input", "ORPHAN_PODS", "PlanResult", "Shared", "WorkloadPlanner", "claims_of", "inputs_of"]

PROBE_RESULTS = "proberesult"
"""The `owned` key under which the engine hands a PodProbeMarker's planner the marker's probe results
(`schemas.messages.ProbeResult` from KB_PROBE, the ones whose probe name is `<that marker>#...`)."""
