"""RFC 3339 timestamps for the pure planner.

The planner never reads a clock: ``now`` is injected, and every timestamp it reads from an object (a
condition's lastTransitionTime, the in-place state's updateTimestamp, a pod's creationTimestamp) is
parsed here. Kubernetes writes second-precision UTC (``2026-01-02T03:04:05Z``); Kruise's in-place state
carries the same format. Parsing is cached because the same few strings recur across thousands of pods
(the hot path of a 10,000-pod plan parses every ready condition's timestamp).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=65536)
def _parse(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def parse_time(text: str | None) -> datetime | None:
    """Parse an RFC 3339 timestamp; ``None``/empty/garbage -> ``None`` (treated as "unknown")."""
    if not text:
        return None
    return _parse(text)


@lru_cache(maxsize=256)
def format_time(value: datetime) -> str:
    """Render like Kubernetes' metav1.Time: UTC, second precision, ``Z`` suffix (cached: one pass
    formats the same ``now`` for every command it issues)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def ceil_seconds(value: float) -> float:
    """Whole seconds, rounded up (Kruise requeues grace remainders in whole seconds)."""
    return float(math.ceil(value))
