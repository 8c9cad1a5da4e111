"""The planner's input and output types: what the planner service hands in and gets back.

``plan_cloneset(view, now=..., gates=...) -> Plan`` is one Kruise reconcile pass (kruise-semantics §3)
over a consistent snapshot of one CloneSet, its pods and its revisions. The service applies
``Plan.commands`` through the executor, remembers ``Plan.expectations`` and does not plan this CloneSet
again until they are observed (or time out) — Kruise's scale/resourceVersion expectations, expressed
as facts about pods so a service can check them against its own cache without knowing why they exist.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.cloneset import CloneSet, CloneSetStatus
from schemas.kube import ControllerRevision, Pod
from schemas.messages import Command, RolloutEvent
from services.planner.cloneset.validation import FieldError

ExpectationKind = Literal["present", "absent", "label", "annotation-absent"]


class CloneSetView(msgspec.Struct):
    """Everything one pass looks at."""

    cloneset: CloneSet
    pods: list[Pod]  # all pods controlled by the CloneSet (ownerRef uid), active or not
    revisions: list[ControllerRevision]  # ControllerRevisions owned by it
    previous: CloneSet | None = None  # last spec the planner accepted (update-only validation)


class Expectation(msgspec.Struct, frozen=True):
    """A fact about one pod that must be observed before the CloneSet is planned again.

    present: the pod exists; absent: it is gone or terminating; label: ``labels[key] == value``;
    annotation-absent: ``annotations`` has no ``key``.
    """

    pod: str
    kind: ExpectationKind
    key: str = ""
    value: str = ""


class Plan(msgspec.Struct):
    """One reconcile pass: writes to perform (in order), log entries, and when to look again."""

    commands: list[Command]
    events: list[RolloutEvent]
    expectations: list[Expectation]
    status: CloneSetStatus  # the CloneSet status after this pass (written if a "status" command is present)
    requeue_after: float | None
    errors: list[FieldError]
