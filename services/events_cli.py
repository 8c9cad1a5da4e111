"""`kruisebus events`: print the rollout log from NATS, replayed from any point, optionally live.

One line per event (time, namespace/workload, type, pod, message, then its data as key=value), so it
reads like `kubectl get events` but comes from the replayable KB_EVENTS stream rather than the API server.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import nats.errors
from rich.console import Console
from rich.markup import escape

from schemas.subjects import encode_token
from services.bus import Bus

REPLAY_IDLE_SECONDS = 2.0


def event_filter(prefix: str, namespace: str | None, workload: str | None, event_type: str | None) -> str:
    ns = encode_token(namespace) if namespace else "*"
    wl = encode_token(workload) if workload else "*"
    ty = encode_token(event_type) if event_type else "*"
    return f"{prefix}.events.{ns}.{wl}.{ty}"


def data_text(data: dict[str, int | str]) -> str:
    """An event's data after its message, ``  key=value ...`` in its own order (a decision's budget
    evidence: ``budget=free resourceVersion=812 maxUnavailable=1 unavailable=0 counted=``)."""
    if not data:
        return ""
    return "  " + escape(" ".join(f"{k}={v}" for k, v in data.items()))


async def print_events(url: str, *, prefix: str, namespace: str | None, workload: str | None,
                       event_type: str | None, since: datetime | None, from_seq: int | None, follow: bool,
                       console: Console | None = None, user: str | None = None, password: str = "") -> int:
    console = console or Console(highlight=False)
    try:
        bus = await asyncio.wait_for(Bus.connect(url, name="kruisebus-events", prefix=prefix,
                                                       user=user, password=password), 10)
    except (TimeoutError, OSError, nats.errors.Error) as e:
        console.print(f"error: cannot connect to NATS at {url}: {e}")
        return 1
    try:
        stream = bus.subjects.stream("EVENTS")
        try:
            info = await bus.js.stream_info(stream)
        except Exception as e:  # noqa: BLE001 - report any lookup failure to the user
            console.print(f"error: stream {stream} not found on {url}: {e}")
            return 1
        subject = event_filter(prefix, namespace, workload, event_type)
        if info.state.last_seq == 0 and not follow:
            return 0
        events = bus.subscribe_events(subject, start_seq=from_seq, start_time=since)
        async with contextlib.aclosing(events):
            while True:
                try:
                    # Without --follow, stop once the replay is idle: a filter that matches nothing
                    # delivers nothing, so "no pending messages" alone would never be seen.
                    ev, msg = await (events.__anext__() if follow else
                                     asyncio.wait_for(events.__anext__(), REPLAY_IDLE_SECONDS))
                except (StopAsyncIteration, TimeoutError):
                    break
                seq = msg.metadata.sequence.stream
                if ev is None:
                    console.print(f"{seq:>6} [red]malformed message on {msg.subject}[/]")
                else:
                    where = f"{ev.namespace}/{ev.workload}"
                    pod = f" pod={ev.pod}" if ev.pod else ""
                    console.print(f"{seq:>6} {ev.time} {where} [bold]{ev.type}[/]{pod} {ev.message}"
                                  f"{data_text(ev.data)}")
                if not follow and msg.metadata.num_pending == 0:
                    break
        return 0
    finally:
        await bus.close()
