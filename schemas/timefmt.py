"""RFC 3339 timestamps, the way Kubernetes writes them.

`metav1.Time` is UTC with second precision (`2026-01-02T03:04:05Z`): conditions, Events'
first/lastTimestamp, the in-place update state, the rollout log. `metav1.MicroTime` adds microseconds,
for where order within a second matters (rejected events of a burst). One module, so no two services
disagree on a timestamp's shape. Pure: callers pass the time in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


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
    """Parse an RFC 3339 timestamp; `None`/empty/garbage -> `None` (treated as "unknown"). Cached:
    the same few strings recur across thousands of pods in one plan."""
    if not text:
        return None
    return _parse(text)


@lru_cache(maxsize=256)
def format_time(value: datetime) -> str:
    """`metav1.Time`: UTC, second precision, `Z` suffix (cached: one pass formats the same `now` for
    every command it issues)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro(value: datetime) -> str:
    """`metav1.MicroTime`: UTC with microseconds and a `Z` suffix."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
