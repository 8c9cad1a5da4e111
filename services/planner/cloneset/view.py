"""The planner's input and output types: what the planner service hands in and gets back.

``plan_cloneset(view, now=..., gates=...) -> Plan`` is one Kruise reconcile pass (`cloneset_controller.go`)
over a consistent snapshot of one CloneSet, its pods and its revisions. The service applies
``Plan.commands`` through the executor, remembers ``Plan.expectations`` and does not plan this CloneSet
again until they are observed (or time out) — Kruise's scale/resourceVersion expectations, expressed
as facts about pods so a service can check them against its own cache without knowing why they exist.
"""

from __future__ import annotations

import msgspec

from schemas.cloneset import CloneSet, CloneSetStatus
from schemas.imagepulljob import ImagePullJob
from schemas.kube import (
    ControllerRevision,
    PersistentVolumeClaim,
    Pod,
)
from services.planner.kit.plan import Plan as KitPlan


class CloneSetView(msgspec.Struct):
    """Everything one pass looks at."""

    cloneset: CloneSet
    pods: list[Pod]  # all pods controlled by the CloneSet (ownerRef uid), active or not
    revisions: list[ControllerRevision]  # ControllerRevisions owned by it
    previous: CloneSet | None = None  # last spec the planner accepted (update-only validation)
    pvcs: list[PersistentVolumeClaim] = []  # PersistentVolumeClaims it owns (volumeClaimTemplates)
    image_pull_jobs: list[ImagePullJob] = []  # its pre-download jobs (read only with PreDownloadImageForInPlaceUpdate)


Plan = KitPlan[CloneSetStatus]
"""A CloneSet pass's result: `kit.plan.Plan` with the CloneSet status after the pass (see its fields)."""
