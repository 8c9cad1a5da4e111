"""Helpers for component tests: read the latest state per subject, poll with deadlines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from schemas.messages import EVENT_DECODER, STATE_DECODER, RolloutEvent, StateEvent
from services.bus import Bus
from services.observe import poll

T = TypeVar("T")


async def eventually(fetch: Callable[[], Awaitable[T]], done: Callable[[T], Any], *, timeout: float = 10.0,
                     what: str = "condition") -> T:
    """`services.observe.poll` with the component tests' defaults."""
    return await poll(fetch, lambda v: bool(done(v)), timeout=timeout, interval=0.05, what=what)


async def last_state(bus: Bus, subject: str) -> StateEvent | None:
    try:
        raw = await bus.js.get_last_msg(bus.subjects.stream("STATE"), subject)
    except NotFoundError:
        return None
    assert raw.data is not None
    return STATE_DECODER.decode(raw.data)


async def stream_messages(bus: Bus, stream_name: str) -> list[RawStreamMsg]:
    """Every message currently on a stream (`EVENTS`, `CMD`, ...), in sequence order."""
    return await bus.stream_messages(stream_name)


async def all_events(bus: Bus, subject_filter: str | None = None) -> list[RolloutEvent]:
    """Every rollout event currently on the EVENTS stream (optionally filtered)."""
    out: list[RolloutEvent] = []
    for msg in await stream_messages(bus, "EVENTS"):
        if subject_filter and not _matches(subject_filter, msg.subject):
            continue
        try:
            assert msg.data is not None
            out.append(EVENT_DECODER.decode(msg.data))
        except msgspec.ValidationError:
            continue
    return out


def _matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)
