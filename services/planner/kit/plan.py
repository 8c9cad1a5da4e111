"""One pass's result, the same shape for every workload planner (`kit.workload.PlanResult`).

A pass decides commands (in order, each with its own preconditions), rollout-log events, the
expectations the service must observe before planning the workload again, the workload's status
after the pass, and when to look again. A spec that fails validation yields ``errors`` and nothing is
acted on. The status type is the workload's own (``Plan[CloneSetStatus]``, ...).
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from schemas.messages import Command, Expectation, RolloutEvent
from services.planner.kit.fielderrors import FieldError

StatusT = TypeVar("StatusT")


class Revisionless:
    """The `PlanResult` part of a workload without revisions (jobs, markers, NodeImages): its passes
    plan on no revision, so they name none, and a rollout trace is never opened for them."""

    __slots__ = ()

    @property
    def current_revision(self) -> str:
        return ""

    @property
    def update_revision(self) -> str:
        return ""


class Plan(msgspec.Struct, Generic[StatusT], kw_only=True):
    """One reconcile pass: writes to perform (in order), log entries, and when to look again.

    ``current_revision`` / ``update_revision`` name the revisions the pass planned on ("" for a
    workload without revisions); the update revision names the rollout's trace.
    """

    commands: list[Command]
    events: list[RolloutEvent]
    expectations: list[Expectation]
    status: StatusT  # the workload status after this pass (written if a "status" command is present)
    requeue_after: float | None
    errors: list[FieldError] = []
    current_revision: str = ""
    update_revision: str = ""

    @property
    def accepted(self) -> bool:
        """The spec was valid (it becomes `previous`, the base of update-only validation)."""
        return not self.errors
