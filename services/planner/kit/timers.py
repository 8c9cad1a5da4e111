"""One timer heap for every workload's next look: the planner's `requeue_after`, without a timer per object.

A pass returns when its workload wants to be looked at again (an AdvancedCronJob's next slot, a grace
period's end). Ten thousand AdvancedCronJobs are ten thousand such times, nearly all hours away; a heap keeps
them in one structure, a single sleeper waits for the earliest, and re-arming a workload replaces its time
(older entries are skipped when they surface). Nothing here is durable: after a restart the first pass of
every workload recomputes its time from the objects, which is what makes the timers survive a restart.
Pure: the caller passes the clock's value in.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

__all__ = ["TimerHeap"]


class TimerHeap(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._when: dict[K, tuple[float, int]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._when)

    def arm(self, key: K, when: float) -> None:
        """Look at `key` at `when` (replacing any earlier arming of it)."""
        self._seq += 1
        self._when[key] = (when, self._seq)
        heapq.heappush(self._heap, (when, self._seq, key))

    def cancel(self, key: K) -> None:
        self._when.pop(key, None)

    def when(self, key: K) -> float | None:
        entry = self._when.get(key)
        return entry[0] if entry is not None else None

    def _live(self, entry: tuple[float, int, K]) -> bool:
        when, seq, key = entry
        return self._when.get(key) == (when, seq)

    def next_due(self) -> float | None:
        """The earliest armed time (None: nothing armed)."""
        while self._heap and not self._live(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[K]:
        """Every key armed for `now` or earlier, earliest first; they are disarmed."""
        out: list[K] = []
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if self._live(entry):
                del self._when[entry[2]]
                out.append(entry[2])
        return out
