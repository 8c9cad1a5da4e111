"""Time arithmetic for the pure planner (parsing and formatting live in `schemas.timefmt`).

The planner never reads a clock: ``now`` is injected, and every timestamp it reads from an object (a
condition's lastTransitionTime, the in-place state's updateTimestamp, a pod's creationTimestamp) is
parsed here. Kubernetes writes second-precision UTC (``2026-01-02T03:04:05Z``); Kruise's in-place state
carries the same format. Parsing is cached because the same few strings recur across thousands of pods
(the hot path of a 10,000-pod plan parses every ready condition's timestamp).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from schemas.timefmt import format_time, parse_time

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["EPOCH", "ceil_seconds", "format_time", "parse_time", "seconds_between"]


def seconds_between(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def ceil_seconds(value: float) -> float:
    """Whole seconds, rounded up (Kruise requeues grace remainders in whole seconds)."""
    return float(math.ceil(value))
