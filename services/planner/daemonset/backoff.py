"""The failed-pod deletion backoff of an Advanced DaemonSet, as a pure value passed from pass to pass.

A kubelet that rejects a daemon pod (it goes Failed at once) would otherwise have the DaemonSet delete and
re-create it as fast as the writes land. Like Kruise (`failedPodsBackoff`, the client-go
`flowcontrol.Backoff`), the deletion of a Failed pod is rate-limited per (DaemonSet UID,
`status.observedGeneration`, node): the first one is deleted at once and starts a backoff of 1 s; a Failed
pod found on the same node while the backoff runs is kept (the pass looks again after the backoff); the
next deletion after it doubles the backoff, up to 15 min. An entry not renewed for twice the maximum
(30 min) is forgotten, so a node that fails again much later starts over at 1 s. A new generation
(another observedGeneration) starts every node over.

The pass reads no clock: `now` is the pass's. The entries live in the registry entry of the planner
process (`DaemonSetPlanner`), which hands the last pass's entries to the next. A planner restart (or
another replica taking the DaemonSet's partition over) starts with none: at most one Failed pod per
node is then deleted earlier than the backoff would have allowed, and the backoff starts over at 1 s, as
it does when Kruise's controller restarts (its backoff is in memory too). Nothing else depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

import msgspec

__all__ = ["BACKOFF_INITIAL", "BACKOFF_MAX", "BackoffEntry", "FailedPodBackoff", "backoff_key"]

BACKOFF_INITIAL: Final = 1.0  # seconds: the first backoff after a deletion
BACKOFF_MAX: Final = 15 * 60.0  # seconds: the doubling stops here


class BackoffEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One key's backoff: its length (seconds) and when it was last renewed (a deletion)."""

    backoff: float
    last_update: datetime


def backoff_key(uid: str, observed_generation: int, node: str) -> str:
    """`failedPodsBackoffKey`: `<uid>/<observedGeneration>/<node>`."""
    return f"{uid}/{observed_generation}/{node}"


class FailedPodBackoff:
    """`flowcontrol.Backoff` over the entries of the last pass, at this pass's `now`."""

    def __init__(self, entries: Mapping[str, BackoffEntry], now: datetime) -> None:
        self.now = now
        # expired entries are dropped (client-go's GC): they would restart at the initial backoff anyway
        self._entries = {k: e for k, e in entries.items() if not self._expired(e)}

    def _expired(self, entry: BackoffEntry) -> bool:
        return self.now - entry.last_update > timedelta(seconds=2 * BACKOFF_MAX)

    def in_backoff(self, key: str) -> float | None:
        """`IsInBackOffSinceUpdate`: the backoff (seconds, as `Get` returns it: the whole length) while
        `now` is inside it; None when a deletion may go ahead."""
        entry = self._entries.get(key)
        if entry is None or self.now - entry.last_update >= timedelta(seconds=entry.backoff):
            return None
        return entry.backoff

    def next(self, key: str) -> float:
        """`Next`: a deletion at `now`: the initial backoff for a new key, else twice the last (at most
        the maximum). Returns the new length."""
        entry = self._entries.get(key)
        backoff = BACKOFF_INITIAL if entry is None else min(2 * entry.backoff, BACKOFF_MAX)
        self._entries[key] = BackoffEntry(backoff=backoff, last_update=self.now)
        return backoff

    def entries(self) -> dict[str, BackoffEntry]:
        """The entries to hand to the next pass."""
        return dict(self._entries)
