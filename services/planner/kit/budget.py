"""The evidence a maxUnavailable decision carries into the rollout log (`Command.data`, then the
`done` / `rejected` rollout event of that command).

A pass that spends a workload's unavailability budget decides on its view of the pods; the log shows
the decision (which pod, when) but not that view, so a breach seen later by someone else (the chaos
checker, a user's `kubectl get pods`) cannot be told apart between "the planner's arithmetic was
wrong" and "the planner decided on a view that was older than the observer's". The evidence says,
for each pod a pass upgrades, deletes or updates in place under that budget:

* ``budget``: ``charged`` (the pod was available in the view, so taking it down spends one unit of
  maxUnavailable) or ``free`` (the pod was already unavailable in the view: not Ready, or old and not
  available, so Kruise replaces it without charging the budget);
* ``resourceVersion``: the pod's resourceVersion in the view the decision was made on;
* ``maxUnavailable``: the pass's budget;
* ``unavailable``: how many the pass counted unavailable before its own picks;
* ``counted``: who those were (pods as ``<name>@<resourceVersion>``, nodes by name), at most
  `COUNTED_LISTED` named, then ``+<n>`` for the rest.

Built only for the pods a pass picks (a handful), never per pod of the view.
"""

from __future__ import annotations

from dataclasses import dataclass

BUDGET_CHARGED = "charged"
"""The pod was available in the view: taking it down spends one unit of maxUnavailable."""
BUDGET_FREE = "free"
"""The pod was already unavailable in the view: replaced or upgraded without charging the budget."""
COUNTED_LISTED = 4
"""How many of the pods (or nodes) counted unavailable the evidence names; the rest are `+<n>`."""

Evidence = dict[str, int | str]
"""The `data` of a command and of its rollout events (flat: strings and integers)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """One pass's maxUnavailable budget as it stood before the pass's own picks."""

    max_unavailable: int
    unavailable: int  # counted unavailable before the pass's picks
    counted: tuple[str, ...] = ()  # the first COUNTED_LISTED of them, named

    def listed(self) -> str:
        """``counted``: the named ones, comma-separated, then ``+<n>`` for those not named."""
        names = list(self.counted)
        rest = self.unavailable - len(names)
        if rest > 0:
            names.append(f"+{rest}")
        return ",".join(names)

    def evidence(self, *, charged: bool, resource_version: str, **more: int | str) -> Evidence:
        """The data of one decision: charged or free, on the pod at `resource_version`."""
        return {"budget": BUDGET_CHARGED if charged else BUDGET_FREE, "resourceVersion": resource_version,
                "maxUnavailable": self.max_unavailable, "unavailable": self.unavailable,
                "counted": self.listed(), **more}


class Counted:
    """Collects, during a pass's walk, the names of what it counts unavailable (at most COUNTED_LISTED)."""

    __slots__ = ("names", "total")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.total = 0

    def add(self, name: str) -> None:
        self.total += 1
        if len(self.names) < COUNTED_LISTED:
            self.names.append(name)

    def budget(self, max_unavailable: int) -> Budget:
        return Budget(max_unavailable, self.total, tuple(self.names))


def pod_ref(name: str, resource_version: str) -> str:
    """A counted pod as the evidence names it: ``<name>@<resourceVersion>``."""
    return f"{name}@{resource_version}"


__all__ = ["BUDGET_CHARGED", "BUDGET_FREE", "COUNTED_LISTED", "Budget", "Counted", "Evidence", "pod_ref"]
