"""The per-workload rate limit on rollout events: one token bucket per (namespace, workload).

A workload whose commands always fail, or a flood of pod changes, must not fill the rollout log (and
the EVENTS stream's byte budget, shared by every workload) with its own events. Every rollout event a
process publishes goes through `Bus.publish_event` or `Bus.reject`, which ask `admit` first. Dropped
events are counted, and the count is handed back with the next admitted event so the log says how many
are missing. Pure: the caller passes the time (monotonic seconds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from schemas.constants import EVENT_BURST_PER_WORKLOAD, EVENT_RATE_PER_WORKLOAD

MAX_KEYS = 10_000  # idle buckets (full, nothing dropped) are forgotten past this many workloads


@dataclass
class _Bucket:
    tokens: float
    at: float
    dropped: int = 0


@dataclass
class EventRateLimiter:
    rate: float = EVENT_RATE_PER_WORKLOAD  # events/s sustained; 0: no limit
    burst: int = EVENT_BURST_PER_WORKLOAD
    buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> EventRateLimiter:
        """The limit with `KRUISEBUS_EVENT_RATE` / `KRUISEBUS_EVENT_BURST` applied (docs/reliability.md)."""
        return cls(rate=float(os.environ.get("KRUISEBUS_EVENT_RATE", EVENT_RATE_PER_WORKLOAD)),
                   burst=int(os.environ.get("KRUISEBUS_EVENT_BURST", EVENT_BURST_PER_WORKLOAD)))

    def admit(self, key: tuple[str, str], now: float) -> tuple[bool, int]:
        """(publish it?, how many events of this workload were dropped since the last one admitted)."""
        if self.rate <= 0:
            return True, 0
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) >= MAX_KEYS:
                self._forget_idle(now)
            b = self.buckets[key] = _Bucket(tokens=float(self.burst), at=now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens < 1.0:
            b.dropped += 1
            return False, 0
        b.tokens -= 1.0
        dropped, b.dropped = b.dropped, 0
        return True, dropped

    def _forget_idle(self, now: float) -> None:
        for key, b in list(self.buckets.items()):
            if not b.dropped and b.tokens + (now - b.at) * self.rate >= self.burst:
                del self.buckets[key]


__all__ = ["EventRateLimiter"]
