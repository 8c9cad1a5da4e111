"""The registry of workload planners: one line per workload kind kruisebus plans.

The planner service and `kruisebus plan` both dispatch through it, so a workload registered here is
planned and previewed without changes to either.

Image pre-download adds three planners (ImagePullJobs, NodeImages, and Nodes for their NodeImage's
creation, `services.planner.imagepulljob.planner`). They run only when the gate ImagePullJobGate is on
(`PreDownloadImageForInPlaceUpdate` turns it on): with it off Kruise runs no ImagePullJob controller,
and kruisebus, unlike Kruise's nodeimage controller, then makes no NodeImages either, so a cluster
that does not pre-download pays nothing for it (no NodeImage per node, no index of every pod).
"""

from __future__ import annotations

from datetime import tzinfo

from schemas.kinds import Kind
from services.planner.advancedcronjob.planner import PLANNER as ADVANCED_CRON_JOB
from services.planner.broadcastjob.planner import PLANNER as BROADCAST_JOB
from services.planner.cloneset.planner import PLANNER as CLONESET
from services.planner.daemonset.planner import PLANNER as DAEMONSET
from services.planner.imagepulljob.planner import NODE_IMAGE_PLANNER, NODE_PLANNER, NodePlanner
from services.planner.imagepulljob.planner import PLANNER as IMAGE_PULL_JOB
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.workload import WorkloadPlanner
from services.planner.podprobemarker.planner import PLANNER as PODPROBEMARKER
from services.planner.sidecarset.planner import PLANNER as SIDECARSET

REGISTRY: dict[str, WorkloadPlanner] = {p.kind.token: p for p in (CLONESET, PODPROBEMARKER, ADVANCED_CRON_JOB,
                                                                   BROADCAST_JOB, DAEMONSET, SIDECARSET)}
PREDOWNLOAD: dict[str, WorkloadPlanner] = {p.kind.token: p for p in (IMAGE_PULL_JOB, NODE_IMAGE_PLANNER,
                                                                       NODE_PLANNER)}
# `kruisebus plan` previews an ImagePullJob too (when the file holds no CloneSet), whatever the gates.
PREVIEW_ONLY: dict[str, WorkloadPlanner] = {IMAGE_PULL_JOB.kind.token: IMAGE_PULL_JOB}


def registry_for(gates: FeatureGates = DEFAULT_GATES, *,
                 nodeimage_creation_delay: float | None = None) -> dict[str, WorkloadPlanner]:
    """The planners a planner service with these gates runs (`nodeimage_creation_delay`: seconds a
    Node is Ready before its NodeImage is made; None: Kruise's default)."""
    if gates.kruise_daemon and gates.image_pull_job_gate:
        out = {**REGISTRY, **PREDOWNLOAD}
        if nodeimage_creation_delay is not None:
            out[NODE_PLANNER.kind.token] = NodePlanner(nodeimage_creation_delay)
        return out
    return dict(REGISTRY)


def with_time_zone(name: str, registry: dict[str, WorkloadPlanner] | None = None) -> dict[str, WorkloadPlanner]:
    """The registry with AdvancedCronJob schedules without `timeZone` evaluated in zone `name` (an IANA
    name; "Local" is refused: a planner's zone must not depend on the machine it runs on)."""
    from services.planner.advancedcronjob.planner import AdvancedCronJobPlanner
    from services.planner.kit.cron import LocationError, load_location

    try:
        zone = load_location(name)
    except LocationError as e:
        raise ValueError(f"unknown time zone {name!r}: {e}") from None
    if not isinstance(zone, tzinfo):
        raise ValueError("must be an IANA zone name such as UTC or Asia/Shanghai, not Local")
    base = registry or REGISTRY
    planner = AdvancedCronJobPlanner(local=zone)
    return {**base, planner.kind.token: planner}


def owned_kinds(registry: dict[str, WorkloadPlanner] | None = None) -> dict[str, Kind]:
    """Every kind some registered workload owns (pods aside), by token."""
    return {k.token: k for p in (registry or REGISTRY).values() for k in p.owned}


__all__ = ["PREDOWNLOAD", "PREVIEW_ONLY", "REGISTRY", "owned_kinds", "registry_for", "with_time_zone"]
