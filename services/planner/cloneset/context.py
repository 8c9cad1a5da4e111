"""Per-pass planning context: the snapshot, derived facts computed once, and the command builder.

One pass touches the same facts many times (is this pod available? which revision template does it run?
what are the `calculateDiffsWithExpectation` numbers?). Computing them once per pass keeps the steps readable and keeps a
10,000-pod decision inside its time budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import (
    LABEL_INSTANCE_ID,
    STRATEGY_IN_PLACE_IF_POSSIBLE,
    STRATEGY_IN_PLACE_ONLY,
    STRATEGY_RECREATE,
)
from schemas.kube import ControllerRevision, PersistentVolumeClaim, Pod, PodTemplateSpec
from services.planner.cloneset.calc import ExpectationDiffs, PodInfo, Tally, calculate, replicas_of
from services.planner.kit.builder import Builder
from services.planner.kit.gates import FeatureGates
from services.planner.kit.inplace import UpdateSpec, calculate_spec, priorities_of
from services.planner.kit.revision import short_hash, template_of


@dataclass(slots=True)
class Ctx:
    cs: CloneSet
    now: datetime
    gates: FeatureGates
    b: Builder
    infos: list[PodInfo]  # active pods
    all_pods: list[Pod]  # every pod in the view (active or not) - for instance ids
    revisions: list[ControllerRevision]  # owned history (incl. update/current)
    update_rev: ControllerRevision
    current_rev: ControllerRevision
    tally: Tally
    create_limit: int | None = None  # slow start: at most this many pod creations in this pass
    pvcs: list[PersistentVolumeClaim] = field(default_factory=list)  # claims it owns
    _claims_by_id: dict[str, list[PersistentVolumeClaim]] | None = None
    _templates: dict[str, PodTemplateSpec | None] = field(default_factory=dict)
    _priorities: dict[str, dict[str, int | None]] = field(default_factory=dict)
    _specs: dict[tuple[str, str], UpdateSpec | None] = field(default_factory=dict)
    _diffs: dict[bool, ExpectationDiffs] = field(default_factory=dict)

    def diffs(self, *, scaling: bool) -> ExpectationDiffs:
        """`calculateDiffsWithExpectation` for this pass; the scale and update predicates only differ under PreparingUpdateAsUpdate."""
        key = scaling and self.gates.preparing_update_as_update
        if key not in self._diffs:
            self._diffs[key] = calculate(
                self.cs,
                self.infos,
                self.current_name,
                self.update_name,
                self.gates,
                scaling=scaling,
                hist=self.tally.hist,
            )
        return self._diffs[key]

    def claims_by_id(self) -> dict[str, list[PersistentVolumeClaim]]:
        """Owned claims not being deleted, by instance id: built once a pass, not once per deleted pod."""
        if self._claims_by_id is None:
            index: dict[str, list[PersistentVolumeClaim]] = {}
            for c in self.pvcs:
                iid = c.metadata.labels.get(LABEL_INSTANCE_ID, "")
                if iid and c.metadata.deletion_timestamp is None:
                    index.setdefault(iid, []).append(c)
            self._claims_by_id = index
        return self._claims_by_id

    @property
    def update_name(self) -> str:
        return self.update_rev.metadata.name

    @property
    def current_name(self) -> str:
        return self.current_rev.metadata.name

    @property
    def replicas(self) -> int:
        return replicas_of(self.cs)

    @property
    def min_ready(self) -> int:
        return self.cs.spec.min_ready_seconds or 0

    @property
    def strategy(self) -> str:
        return self.cs.spec.update_strategy.type or STRATEGY_RECREATE

    @property
    def in_place(self) -> bool:
        return self.strategy in (STRATEGY_IN_PLACE_IF_POSSIBLE, STRATEGY_IN_PLACE_ONLY)

    @property
    def grace_seconds(self) -> int:
        ips = self.cs.spec.update_strategy.in_place_update_strategy
        return ips.grace_period_seconds if ips is not None else 0

    def template(self, rev: ControllerRevision | None) -> PodTemplateSpec | None:
        if rev is None:
            return None
        name = rev.metadata.name
        if name not in self._templates:
            try:
                self._templates[name] = template_of(rev)
            except (ValueError, TypeError):  # foreign/corrupt revision data
                self._templates[name] = None
        return self._templates[name]

    def priorities(self, rev: ControllerRevision) -> dict[str, int | None]:
        """Container launch priorities of a revision's template (cached per pass)."""
        name = rev.metadata.name
        if name not in self._priorities:
            self._priorities[name] = priorities_of(self.template(rev))
        return self._priorities[name]

    def inplace_spec(self, old: ControllerRevision | None, new: ControllerRevision) -> UpdateSpec | None:
        """`defaultCalculateInPlaceUpdateSpec` between two revisions, computed once per pair per pass; callers get their own copy."""
        key = (old.metadata.name if old is not None else "", new.metadata.name)
        if key not in self._specs:
            self._specs[key] = calculate_spec(
                old,
                new,
                self.template(old),
                self.template(new),
                grace_seconds=self.grace_seconds,
                gates=self.gates,
            )
        spec = self._specs[key]
        return msgspec.structs.replace(spec) if spec is not None else None

    def revision_for_label(self, label: str) -> ControllerRevision | None:
        """The revision a pod's ``controller-revision-hash`` names (full name or short hash)."""
        if not label:
            return None
        sh = short_hash(label)
        for rev in self.revisions:
            if rev.metadata.name == label or short_hash(rev.metadata.name) == sh:
                return rev
        return None

    def revision_label_value(self, rev: ControllerRevision) -> str:
        """What pods carry in ``controller-revision-hash`` for ``rev`` (short hash under CloneSetShortHash)."""
        name = rev.metadata.name
        return short_hash(name) if self.gates.clone_set_short_hash else name
