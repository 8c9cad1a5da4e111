"""When a probe result is reported (Kruise's `pkg/daemon/podprobe/results_manager.go`).

A result goes out when its state or message differs from the last one reported for that pod and
probe, or when the last report is `PROBE_REREPORT_SECONDS` old (its `time`, Kruise's lastProbeTime,
is refreshed); `last_transition_time` moves only with the state. Pure: `now` is passed in. A restarted
prober seeds the cache from what KB_PROBE holds, so it neither repeats nor flaps a state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.constants import PROBE_MESSAGE_MAX_BYTES, PROBE_REREPORT_SECONDS
from schemas.messages import ProbeResult, ProbeState
from schemas.timefmt import format_micro, parse_time


def truncate(message: str, limit: int = PROBE_MESSAGE_MAX_BYTES) -> str:
    """At most `limit` bytes of UTF-8, never splitting a character."""
    raw = message.encode("utf-8", "replace")
    if len(raw) <= limit:
        return message
    return raw[:limit].decode("utf-8", "ignore")


@dataclass
class _Entry:
    state: ProbeState
    message: str
    reported: datetime
    transition: str


@dataclass
class Target:
    """What a result is about: the pod, the probe `<ppm>#<probe>` and the container probed."""

    namespace: str
    pod: str
    pod_uid: str
    probe: str
    node: str = ""
    container_id: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.pod_uid, self.probe)


class ResultCache:
    def __init__(self, rereport_seconds: float = PROBE_REREPORT_SECONDS) -> None:
        self.rereport_seconds = rereport_seconds
        self.entries: dict[tuple[str, str], _Entry] = {}

    def seed(self, result: ProbeResult) -> None:
        """Remember a result reported earlier (by this prober before it restarted)."""
        when = parse_time(result.time)
        if when is None:
            return
        self.entries[(result.pod_uid, result.probe)] = _Entry(result.state, result.message, when,
                                                               result.last_transition_time or result.time)

    def last(self, key: tuple[str, str]) -> ProbeState | None:
        entry = self.entries.get(key)
        return entry.state if entry is not None else None

    def set(self, target: Target, state: ProbeState, message: str, now: datetime) -> ProbeResult | None:
        """The result to publish, or None when nothing needs reporting."""
        message = truncate(message)
        entry = self.entries.get(target.key)
        if entry is not None and entry.state == state and entry.message == message \
                and (now - entry.reported).total_seconds() < self.rereport_seconds:
            return None
        stamp = format_micro(now)
        transition = entry.transition if entry is not None and entry.state == state else stamp
        self.entries[target.key] = _Entry(state, message, now, transition)
        return ProbeResult(namespace=target.namespace, pod=target.pod, pod_uid=target.pod_uid, probe=target.probe,
                           state=state, message=message, time=stamp,
                           last_transition_time=transition, node=target.node, container_id=target.container_id)

    def current(self, target: Target) -> ProbeResult | None:
        """The result last reported for `target`, as it was sent (None if nothing was): what to publish
        again when KB_PROBE was lost, without changing its times."""
        entry = self.entries.get(target.key)
        if entry is None:
            return None
        return ProbeResult(namespace=target.namespace, pod=target.pod, pod_uid=target.pod_uid, probe=target.probe,
                           state=entry.state, message=entry.message, time=format_micro(entry.reported),
                           last_transition_time=entry.transition, node=target.node,
                           container_id=target.container_id)

    def forget(self, key: tuple[str, str]) -> None:
        self.entries.pop(key, None)


__all__ = ["ResultCache", "Target", "truncate"]
