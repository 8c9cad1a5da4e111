"""The rollout trace id: one trace per rollout, derived from (workload uid, update revision).

Every service computes the same id on its own, across restarts and replicas, so spans of one rollout
land in one trace without anything passed around but the id itself. Defined here once: the pure planner
stamps it on commands (it must not import the OpenTelemetry SDK) and `services.telemetry` builds span
contexts from it.
"""

from __future__ import annotations

import hashlib


def rollout_trace_id(workload_uid: str, revision: str) -> int:
    """The deterministic 128-bit trace id of the rollout of `workload_uid` to `revision` (never 0)."""
    digest = hashlib.sha256(f"kruisebus/rollout/{workload_uid}/{revision}".encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1


def rollout_trace_hex(workload_uid: str, revision: str) -> str:
    """The same id as 32 lowercase hex digits, as commands carry it (`rollout_trace_id`)."""
    return f"{rollout_trace_id(workload_uid, revision):032x}"
