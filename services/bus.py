"""The bus: the only module that talks to NATS JetStream (the contract: docs/bus.md).

Everything a service needs from NATS goes through `Bus`: connect, create the five streams, publish a
schema message (JSON, a deterministic `Nats-Msg-Id`, W3C trace headers, retries on the transient
errors of a leader election), consume a work queue with explicit settle rules, and replay-then-follow
the compacted state stream. Keeping it in one place keeps the contract in one place:

- a publish is retried with the *same* message id, so the stream's duplicate window makes retries
  free of duplicates;
- a handler decides how its message is settled by what it raises (`services.errors`): return -> ack,
  `TransientError` -> `nak(delay)`, `PermanentError` -> `term()` plus a `rejected` rollout event,
  anything else -> logged and retried; a message that reaches `max_deliver` is termed and rejected,
  so it never sits invisible in a work-queue stream; a bad message never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec
import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError, ServiceUnavailableError
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from schemas.constants import PULL_START_DEADLINE_SECONDS
from schemas.kinds import kind_of, routing_owner
from schemas.messages import (
    ENCODER,
    EVENT_DECODER,
    Command,
    RolloutEvent,
    StateEvent,
    WorkloadRef,
)
from schemas.subjects import (
    DEFAULT_PREFIX,
    EVENT_DROPPED,
    EVENT_REJECTED,
    NONE_TOKEN,
    STREAM_CMD,
    STREAM_EVENTS,
    STREAM_NODE,
    STREAM_PROBE,
    STREAM_STATE,
    Subjects,
    decode_token,
    inbox_prefix,
)
from schemas.timefmt import format_micro
from services import metrics, telemetry
from services.errors import PermanentError, TransientError
from services.eventrate import EventRateLimiter

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[T, Msg], Awaitable[None]]
"""A message handler: gets the decoded message and the raw NATS message (for metadata/headers)."""

MSG_ID = api.Header.MSG_ID  # "Nats-Msg-Id"
MSG_TTL = api.Header.MSG_TTL  # "Nats-TTL"

# Errors worth retrying a publish over, with the same message id (leader elections, reconnects).
TRANSIENT_NATS_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    NoStreamResponseError,
    ServiceUnavailableError,
)

DEFAULT_DUPLICATE_WINDOW = 120.0
DEFAULT_EVENTS_MAX_AGE = 7 * 24 * 3600.0
DEFAULT_EVENTS_MAX_BYTES = 1 << 30
DEFAULT_TOMBSTONE_TTL = 3600.0
# How often a service looks whether a stream it uses was lost (deleted, or deleted and created again:
# a new `created` time). One STREAM.INFO request per stream and service every interval.
STREAM_CHECK_INTERVAL = 2.0

REASON_MALFORMED = "malformed"
# What decoding a hostile payload raises: msgspec raises UnicodeDecodeError, not a DecodeError, for bytes
# that are not UTF-8 inside a JSON string; uncaught, it killed the handler task without settling the
# message (redelivered after ack_wait, then dropped at max_deliver with no event) or, in a watch, went
# to the client's error callback and the message was skipped silently.
UNDECODABLE: tuple[type[Exception], ...] = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)
REASON_MAX_DELIVERIES = "max-deliveries"

# family token -> (stream base, subject template after the prefix)
FAMILIES: dict[str, tuple[str, str]] = {
    "state": (STREAM_STATE, "state.{namespace}.{owner}.{kind}.{uid}"),
    "cmd": (STREAM_CMD, "cmd.{namespace}.{owner}.{verb}"),
    "node": (STREAM_NODE, "node.{node}.{verb}"),
    "probe": (STREAM_PROBE, "probe.{namespace}.{pod}.{probe}"),
    "events": (STREAM_EVENTS, "events.{namespace}.{workload}.{event}"),
}


def _now() -> datetime:
    return datetime.now(UTC)


# --- pure helpers ----------------------------------------------------------------------------------


def outcome_msg_id(msg: Msg) -> str:
    """The message id of the event that reports what became of a delivered message (done or rejected).

    One id per stream message, whatever the outcome: a message delivered twice (its first delivery
    made the change, the ack was lost in a NATS restart, the second found the world moved on) would
    otherwise report `done` and then `rejected`, and a planner believing the rejection drops an
    expectation the first delivery met. JetStream keeps the first outcome and drops the second within
    its duplicate window. The message's own id (a command's) is appended, so a stream re-created under
    the services, whose sequence numbers start again at 1, cannot give a new message an old outcome's
    id. Outside JetStream (a direct call in a test) the subject stands in for the stream sequence.
    """
    own = (msg.headers or {}).get(MSG_ID, "")
    try:
        md = msg.metadata
        return f"outcome@{md.stream}@{md.sequence.stream}@{own}"
    except Exception:
        return f"outcome@{msg.subject}@{own}"


def state_msg_id(event: StateEvent) -> str:
    """`<uid>@<resourceVersion>`, or `<uid>@deleted@<resourceVersion>` for a tombstone."""
    meta = event.object.metadata
    if event.deleted:
        return f"{meta.uid}@deleted@{meta.resource_version}"
    return f"{meta.uid}@{meta.resource_version}"


def stream_configs(
    subjects: Subjects,
    *,
    replicas: int = 1,
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
    events_max_age: float = DEFAULT_EVENTS_MAX_AGE,
    events_max_bytes: int = DEFAULT_EVENTS_MAX_BYTES,
) -> list[api.StreamConfig]:
    """The five streams of the bus contract (docs/bus.md) under `subjects.prefix`."""
    common: dict[str, Any] = {
        "storage": api.StorageType.FILE,
        "num_replicas": replicas,
        "duplicate_window": duplicate_window,
        "discard": api.DiscardPolicy.OLD,
    }
    return [
        api.StreamConfig(
            name=subjects.stream(STREAM_STATE),
            description="kruisebus: latest observed state per object (compacted; tombstones expire by TTL)",
            subjects=[subjects.state_all()],
            retention=api.RetentionPolicy.LIMITS,
            max_msgs_per_subject=1,
            allow_msg_ttl=True,
            allow_direct=True,
            **common,
        ),
        api.StreamConfig(
            name=subjects.stream(STREAM_CMD),
            description="kruisebus: planner commands, each handled by one executor",
            subjects=[subjects.command_all()],
            retention=api.RetentionPolicy.WORK_QUEUE,
            **common,
        ),
        api.StreamConfig(
            name=subjects.stream(STREAM_NODE),
            description="kruisebus: per-node work (image pre-pull)",
            subjects=[subjects.node_all()],
            retention=api.RetentionPolicy.WORK_QUEUE,
            # work not started by its deadline expires (the pull's not_after, from the same constant):
            # the stream drops it then, and the planner re-issues what still needs doing
            max_age=float(PULL_START_DEADLINE_SECONDS),
            **common,
        ),
        api.StreamConfig(
            name=subjects.stream(STREAM_PROBE),
            description="kruisebus: latest probe result per pod and probe",
            subjects=[subjects.probe_all()],
            retention=api.RetentionPolicy.LIMITS,
            max_msgs_per_subject=1,
            allow_direct=True,
            **common,
        ),
        api.StreamConfig(
            name=subjects.stream(STREAM_EVENTS),
            description="kruisebus: user-facing rollout log",
            subjects=[subjects.events_all()],
            retention=api.RetentionPolicy.LIMITS,
            max_age=events_max_age,
            max_bytes=events_max_bytes,
            **common,
        ),
    ]


async def _log_error(err: Exception) -> None:
    log.warning("nats: %s: %s", type(err).__name__, err)


async def _log_disconnected() -> None:
    log.info("nats: disconnected")


async def _log_reconnected() -> None:
    log.info("nats: reconnected")


# --- the bus ---------------------------------------------------------------------------------------


class Bus:
    """A NATS connection plus the kruisebus contract on top of it. Build with `await Bus.connect(...)`."""

    def __init__(
        self,
        nc: NATS,
        *,
        prefix: str = DEFAULT_PREFIX,
        tracer_provider: trace.TracerProvider | None = None,
        replicas: int = 1,
        tombstone_ttl: float = DEFAULT_TOMBSTONE_TTL,
        publish_attempts: int = 8,
        js_timeout: float = 5.0,
        clock: Callable[[], datetime] = _now,
        event_limit: EventRateLimiter | None = None,
    ) -> None:
        self.nc = nc
        self.event_limit = event_limit or EventRateLimiter.from_env()
        self.js: JetStreamContext = nc.jetstream(timeout=js_timeout)
        self.js_timeout = js_timeout
        self.subjects = Subjects(prefix)
        self.tracer = telemetry.get_tracer(tracer_provider)
        self.replicas = replicas
        self.tombstone_ttl = tombstone_ttl
        self.publish_attempts = publish_attempts
        self.clock = clock

    @classmethod
    async def connect(
        cls,
        url: str | Sequence[str],
        *,
        name: str,
        prefix: str = DEFAULT_PREFIX,
        tracer_provider: trace.TracerProvider | None = None,
        replicas: int = 1,
        user: str | None = None,
        password: str | None = None,
        max_reconnect_attempts: int = -1,
        **kwargs: Any,
    ) -> Bus:
        """Connect (reconnecting forever) and return a Bus; extra kwargs go to `Bus(...)`.

        `max_reconnect_attempts`: a service retries forever (-1); a one-shot command passes a few, so
        that an unreachable server is an error in about a second instead of a hang until its timeout.

        `user`/`password`: the service's NATS user (services.natsauth); its replies then come to its
        own inbox prefix, the only one its permissions let it read.
        """
        # "nats://a:4222,nats://b:4222": the members of a cluster, as `--nats` takes them
        servers = [u.strip() for u in url.split(",") if u.strip()] if isinstance(url, str) else list(url)
        auth: dict[str, Any] = {}
        if user:
            auth = {"user": user, "password": password or "", "inbox_prefix": inbox_prefix(user)}
        nc = await nats.connect(
            servers,
            name=name,
            **auth,
            error_cb=_log_error,
            disconnected_cb=_log_disconnected,
            reconnected_cb=_log_reconnected,
            max_reconnect_attempts=max_reconnect_attempts,
            reconnect_time_wait=0.5,
            drain_timeout=5,
        )
        return cls(nc, prefix=prefix, tracer_provider=tracer_provider, replicas=replicas, **kwargs)

    async def close(self, *, drain: bool = True) -> None:
        """Drain (flush pending publishes and acks) and close the connection."""
        if self.nc.is_closed:
            return
        try:
            if drain:
                await self.nc.drain()
        except Exception as err:  # drain can time out on unread subscriptions
            log.warning("nats drain failed: %s", err)
        finally:
            if not self.nc.is_closed:
                await self.nc.close()

    # --- naming --------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return self.subjects.prefix

    def stream_for(self, subject: str) -> str:
        """The stream name that holds `subject` (or a wildcard filter under it)."""
        parts = subject.split(".")
        if len(parts) < 2 or parts[0] != self.prefix or parts[1] not in FAMILIES:
            raise ValueError(f"subject {subject!r} is not in a kruisebus stream under {self.prefix!r}")
        return self.subjects.stream(FAMILIES[parts[1]][0])

    def template(self, subject: str) -> str:
        """The low-cardinality template of a subject (`kb.cmd.{namespace}.{owner}.{verb}`) for spans."""
        parts = subject.split(".", 2)
        if len(parts) >= 2 and parts[0] == self.prefix and parts[1] in FAMILIES:
            return f"{self.prefix}.{FAMILIES[parts[1]][1]}"
        return subject

    def state_subject(self, event: StateEvent) -> str:
        meta = event.object.metadata
        return self.subjects.state(meta.namespace or None, routing_owner(event), kind_of(event).token, meta.uid)

    # --- streams -------------------------------------------------------------------------------
    async def ensure_streams(
        self,
        *,
        events_max_age: float = DEFAULT_EVENTS_MAX_AGE,
        events_max_bytes: int = DEFAULT_EVENTS_MAX_BYTES,
        duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
    ) -> dict[str, api.StreamInfo]:
        """Create the five streams, or update them when their config changed. Idempotent."""
        out: dict[str, api.StreamInfo] = {}
        for cfg in stream_configs(
            self.subjects,
            replicas=self.replicas,
            duplicate_window=duplicate_window,
            events_max_age=events_max_age,
            events_max_bytes=events_max_bytes,
        ):
            assert cfg.name is not None
            try:
                info = await self.js.add_stream(cfg)
            except BadRequestError as err:
                if err.err_code != 10058:  # "stream name already in use with a different configuration"
                    raise
                info = await self.js.update_stream(cfg)
            out[cfg.name] = info
        return out

    # --- stream loss ---------------------------------------------------------------------------
    async def wait_for_stream(self, stream: str, stop: asyncio.Event,
                              interval: float = STREAM_CHECK_INTERVAL) -> api.StreamInfo | None:
        """The stream's info once it exists (None if `stop` is set first). NATS being away is waited out."""
        while not stop.is_set():
            try:
                return await self.js.stream_info(stream)
            except NotFoundError:
                pass
            except Exception as err:  # reconnecting, timeouts: ask again
                log.debug("stream info of %s: %r", stream, err)
            await _wait(stop, interval)
        return None

    async def wait_stream_lost(self, stream: str, created: datetime | None, stop: asyncio.Event,
                               interval: float = STREAM_CHECK_INTERVAL) -> bool:
        """Until the stream is gone or is another one (a new `created`): True; False once `stop` is set.

        A NATS restart on the same store is not a loss: the stream comes back with its creation time."""
        while not await _wait(stop, interval):
            lost, _ = await self._look_at_stream(stream, created)
            if lost:
                return True
        return False

    async def _look_at_stream(self, stream: str, created: datetime | None) -> tuple[bool, api.StreamInfo | None]:
        """(lost, info): lost once the stream is gone or is another one (a new `created`); no info while
        NATS does not answer (away or slow: not a loss)."""
        try:
            info = await self.js.stream_info(stream)
        except NotFoundError:
            return True, None
        except Exception as err:
            log.debug("stream info of %s: %r", stream, err)
            return False, None
        return info.created != created, info

    async def guard_stream(self, base: str, *, stop: asyncio.Event, recreate: bool = False,
                           on_lost: Callable[[str, api.StreamInfo], Awaitable[None]] | None = None,
                           interval: float = STREAM_CHECK_INTERVAL, stream: str | None = None,
                           recreate_after: float = 0.0) -> None:
        """Watch one stream until `stop`: when it is lost, recreate it (`recreate`: the service that owns it,
        with the config it had) and, once a stream of that name exists again, call `on_lost(base, info)`.

        `stream`: a stream outside the five of the bus contract (the lease bucket's), else `base`'s.
        `recreate_after`: wait that long after seeing the loss before recreating it (the lease bucket:
        until no holder of a lease stored in the lost one can still count it as held)."""
        stream = stream or self.subjects.stream(base)
        info = await self.wait_for_stream(stream, stop, interval)
        while info is not None:
            config = info.config
            if not await self.wait_stream_lost(stream, info.created, stop, interval):
                return
            metrics.STREAM_LOSSES.labels(stream).inc()
            log.warning("stream %s was lost (deleted or replaced)%s", stream, "; recreating it" if recreate else "")
            if recreate:
                if recreate_after > 0 and await _wait(stop, recreate_after):
                    return
                await self._recreate_stream(config, stop, interval)
            info = await self.wait_for_stream(stream, stop, interval)
            if info is None:
                return
            if on_lost is not None:
                try:
                    await on_lost(base, info)
                except Exception:
                    log.exception("handling the loss of stream %s failed", stream)

    async def _recreate_stream(self, config: api.StreamConfig, stop: asyncio.Event, interval: float) -> None:
        """Create the stream again with its old config, until it exists (whoever made it)."""
        assert config.name is not None
        while not stop.is_set():
            try:
                await self.js.add_stream(config)
                log.info("recreated stream %s", config.name)
                return
            except BadRequestError as err:
                if err.err_code == 10058:  # exists with another config: someone else recreated it
                    return
                log.warning("could not recreate stream %s: %s", config.name, err)
            except Exception as err:
                log.warning("could not recreate stream %s: %r", config.name, err)
            await _wait(stop, interval)

    # --- publish -------------------------------------------------------------------------------
    async def publish(
        self,
        subject: str,
        message: msgspec.Struct,
        *,
        msg_id: str,
        template: str | None = None,
        ttl: float | None = None,
        context: otel_context.Context | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> api.PubAck:
        """Publish one schema message as JSON with `Nats-Msg-Id` and trace headers, inside a `send`
        span (child of `context`, default the current span).

        Transient NATS errors are retried with backoff and the same message id; after the last
        attempt a `TransientError` is raised. `ttl` (seconds, rounded up to >= 1) sets `Nats-TTL`.
        """
        payload = ENCODER.encode(message)
        tmpl = template or self.template(subject)
        attrs = telemetry.message_attributes(message)
        attrs.update(attributes or {})
        headers: dict[str, str] = {MSG_ID: msg_id}
        if ttl is not None:
            headers[MSG_TTL] = str(max(1, math.ceil(ttl)))
        with telemetry.publish_span(
            self.tracer, subject, tmpl, msg_id, headers, context=context, attributes=attrs
        ) as span:
            ack = await self.publish_raw(subject, payload, headers)
            span.set_attribute(telemetry.NATS_STREAM, ack.stream)
            span.set_attribute(telemetry.NATS_STREAM_SEQUENCE, ack.seq)
            if ack.duplicate:
                span.set_attribute(telemetry.NATS_DUPLICATE, True)
            return ack

    async def publish_raw(self, subject: str, payload: bytes, headers: dict[str, str]) -> api.PubAck:
        """`js.publish` with bounded retries over transient errors (same headers, so same msg id)."""
        delay = 0.05
        for attempt in range(1, self.publish_attempts + 1):
            try:
                ack = await self.js.publish(subject, payload, headers=headers)
                _reraise_swallowed_cancel()
                return ack
            except TRANSIENT_NATS_ERRORS as err:
                if attempt == self.publish_attempts:
                    raise TransientError(
                        f"publish to {subject} failed after {attempt} attempts: {type(err).__name__}",
                        delay=1.0,
                    ) from err
                log.info("publish to %s: %s; retry %d", subject, type(err).__name__, attempt)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def publish_state(
        self,
        event: StateEvent,
        *,
        subject: str | None = None,
        ttl: float | None = None,
        context: otel_context.Context | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> api.PubAck:
        """Publish an object's latest state on its state subject (msg id `<uid>@<rv>`).

        A tombstone (`deleted=True`) gets msg id `<uid>@deleted@<rv>` and a TTL (default
        `tombstone_ttl`). Pass `subject` to tombstone an object's *old* routing key
        (`bus.subjects.state(ns, old_owner, kind, uid)`) when it was adopted or orphaned.
        """
        if event.deleted and ttl is None:
            ttl = self.tombstone_ttl
        meta = event.object.metadata
        attrs: dict[str, Any] = {telemetry.KB_EVENT_TYPE: kind_of(event).token}
        if meta.namespace:
            attrs[telemetry.K8S_NAMESPACE] = meta.namespace
        attrs.update(attributes or {})
        return await self.publish(
            subject or self.state_subject(event),
            event,
            msg_id=state_msg_id(event),
            ttl=ttl,
            context=context,
            attributes=attrs,
        )

    async def publish_command(self, cmd: Command, *, context: otel_context.Context | None = None,
                              msg_id: str | None = None) -> api.PubAck:
        """Publish a command on `<p>.cmd.<ns>.<workload_uid>.<verb>` with msg id `cmd.id` (or `msg_id`:
        the planner re-sends a rejected command under `<id>@retry<n>`, past the duplicate window).

        Trace parent: `context` if given; else the current span if it is in the command's rollout
        trace; else the rollout root (from `cmd.rollout_trace_id`); else the current span.
        """
        if context is None and cmd.rollout_trace_id:
            current = trace.get_current_span().get_span_context()
            if not (current.is_valid and telemetry.format_trace_id(current.trace_id) == cmd.rollout_trace_id):
                context = telemetry.rollout_context_from_trace_id(cmd.rollout_trace_id)
        if cmd.node:  # node work: that node's agent performs it
            subject = self.subjects.node(cmd.node, cmd.verb)
        else:
            subject = self.subjects.command(cmd.namespace, cmd.workload_uid, cmd.verb)
        return await self.publish(subject, cmd, msg_id=msg_id or cmd.id, context=context)

    async def publish_event(
        self, ev: RolloutEvent, msg_id: str, *, context: otel_context.Context | None = None
    ) -> api.PubAck | None:
        """Publish a rollout event on `<p>.events.<ns>.<workload>.<type>`, unless its workload is over the
        per-workload event rate (`services.eventrate`): then it is dropped and counted (None)."""
        if not await self._admit_event(ev.namespace, ev.workload, ev.type):
            return None
        subject = self.subjects.event(ev.namespace, ev.workload, ev.type)
        return await self.publish(subject, ev, msg_id=msg_id, context=context)

    async def _admit_event(self, namespace: str, workload: str, kind: str) -> bool:
        """The rate limit's decision; when events were dropped before this one, an `events-dropped`
        event saying how many goes out first."""
        ok, dropped = self.event_limit.admit((namespace, workload), time.monotonic())
        if not ok:
            metrics.EVENTS_DROPPED.labels(kind).inc()
            return False
        if dropped:
            limit = self.event_limit
            ev = RolloutEvent(type=EVENT_DROPPED, namespace=namespace, workload=workload,
                              message=f"{dropped} rollout events of {namespace + '/' if namespace else ''}{workload} "
                                      f"dropped by {self.nc.options.get('name') or 'a service'}: over "
                                      f"{limit.rate:g} events/s (burst {limit.burst})",
                              time=format_micro(self.clock()), data={"dropped": dropped})
            with contextlib.suppress(Exception):
                await self.publish(self.subjects.event(namespace, workload, EVENT_DROPPED), ev,
                                   msg_id=f"{EVENT_DROPPED}@{namespace}/{workload}@{time.time_ns()}")
        return True

    async def reject(
        self,
        msg: Msg,
        *,
        reason: str,
        message: str,
        decoded: Any = None,
    ) -> None:
        """Publish a `rejected` rollout event about `msg` (never raises: the caller settles anyway)."""
        ns_tok, wl_tok = self._location_tokens(msg.subject)
        namespace = getattr(decoded, "namespace", None)
        workload = getattr(decoded, "workload", None)
        workload_uid = ""
        if isinstance(workload, WorkloadRef):
            namespace, workload_uid = workload.namespace, workload.uid
            workload = workload.name
        if isinstance(namespace, str) and isinstance(workload, str) and workload:
            subject = self.subjects.event(namespace, workload, EVENT_REJECTED)
        else:
            subject = f"{self.prefix}.events.{ns_tok}.{wl_tok}.{EVENT_REJECTED}"
            namespace, workload = _decode_or_empty(ns_tok), _decode_or_empty(wl_tok)
        headers = msg.headers or {}
        msg_id = outcome_msg_id(msg)
        ev = RolloutEvent(
            type=EVENT_REJECTED,
            namespace=namespace,
            workload=workload,
            message=message,
            time=format_micro(self.clock()),
            reason=reason,
            subject=msg.subject,
            command_id=headers.get(MSG_ID, ""),
            pod=str(getattr(decoded, "pod", "") or ""),
            revision=str(getattr(decoded, "revision", "") or ""),
            workload_uid=workload_uid,
            # a rejected command's evidence (kit.budget), as its `done` event would have carried it
            data=decoded.data if isinstance(decoded, Command) else {},
        )
        metrics.REJECTIONS.labels(reason).inc()
        if not await self._admit_event(namespace, workload, EVENT_REJECTED):
            return
        try:
            await self.publish(subject, ev, msg_id=msg_id)
        except Exception as err:
            log.error("could not publish rejected event for %s (%s): %s", msg.subject, reason, err)

    def _location_tokens(self, subject: str) -> tuple[str, str]:
        """(namespace, workload-or-owner) tokens of a subject for its rejected event, `_` if unknown."""
        parts = subject.split(".")
        if len(parts) >= 4 and parts[0] == self.prefix and parts[1] in ("state", "cmd", "probe", "events"):
            ns, owner = parts[2], parts[3]
            if _decodable(ns) and _decodable(owner):
                return ns, owner
        return NONE_TOKEN, NONE_TOKEN

    # --- work-queue consumers ------------------------------------------------------------------
    async def consume(
        self,
        stream_base: str,
        durable: str,
        *,
        filter_subject: str,
        decoder: msgspec.json.Decoder[T],
        handler: Handler[T],
        stop: asyncio.Event,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        backoff: Sequence[float] | None = None,
        batch: int = 32,
        max_ack_pending: int = 256,
        concurrency: int = 16,
        fetch_timeout: float = 1.0,
        retry_delay: float = 1.0,
        ready: asyncio.Event | None = None,
    ) -> None:
        """Run a durable pull consumer on `stream_base` until `stop` is set, then finish in-flight work.

        Up to `concurrency` handlers run at once. Settle rules: handler returns -> ack;
        `TransientError` -> `nak(err.delay)`; `PermanentError` -> term + `rejected` event;
        undecodable -> term + `rejected`; other exceptions -> logged, `nak` with exponential delay
        from `retry_delay`; at `max_deliver` deliveries a retry becomes term + `rejected`. While a
        handler runs, `in_progress()` keeps its ack timer from expiring. `ready` is set once the
        consumer exists on the server.
        """
        if backoff and max_deliver <= len(backoff):
            raise ValueError("max_deliver must be greater than len(backoff)")
        stream = self.subjects.stream(stream_base)
        config = api.ConsumerConfig(
            durable_name=durable,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            backoff=list(backoff) if backoff else None,
            filter_subject=filter_subject,
            max_ack_pending=max_ack_pending,
            num_replicas=self.replicas,
        )
        await self.js.add_consumer(stream, config)  # creates, or updates a changed config
        sub = await self.js.pull_subscribe_bind(durable, stream=stream)
        if ready is not None:
            ready.set()
        timer = min(ack_wait, backoff[0]) if backoff else ack_wait
        settle = _Settler(self, durable, decoder, handler, max_deliver, retry_delay, timer)
        tasks: set[asyncio.Task[None]] = set()
        stop_wait = asyncio.ensure_future(stop.wait())
        fetch: asyncio.Future[list[Msg]] | None = None
        cancelled = False
        checked = time.monotonic()

        async def rebind_if_lost() -> None:
            """Recreate the durable consumer when it is gone (its stream was deleted, and maybe
            recreated): otherwise every later fetch asks a consumer that no longer exists, for good."""
            nonlocal sub, checked
            if time.monotonic() - checked < STREAM_CHECK_INTERVAL:
                return
            checked = time.monotonic()
            try:
                await self.js.consumer_info(stream, durable)
                return
            except NotFoundError:
                pass
            except Exception:  # NATS away: nothing to tell yet
                return
            try:
                await self.js.add_consumer(stream, config)
            except Exception as err:  # the stream is not back yet
                log.info("consumer %s on %s is gone and cannot be recreated yet: %r", durable, stream, err)
                return
            old, sub = sub, await self.js.pull_subscribe_bind(durable, stream=stream)
            with contextlib.suppress(Exception):
                await old.unsubscribe()
            metrics.STREAM_LOSSES.labels(stream).inc()
            log.warning("consumer %s on %s was lost with its stream; recreated it", durable, stream)

        try:
            while not stop.is_set():
                free = concurrency - len(tasks)
                if free <= 0:
                    await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
                    continue
                fetch = asyncio.ensure_future(sub.fetch(min(batch, free), timeout=fetch_timeout))
                await asyncio.wait([fetch, stop_wait], return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():  # stopping: do not wait out the fetch (cancelled in finally)
                    break
                try:
                    msgs = fetch.result()
                except nats.errors.TimeoutError:
                    metrics.CONSUMER_PENDING.labels(durable).set(0)  # nothing was waiting for us
                    await rebind_if_lost()
                    continue
                except (nats.errors.ConnectionReconnectingError, nats.errors.ConnectionClosedError) as err:
                    log.info("consumer %s: %s; waiting", durable, type(err).__name__)
                    await asyncio.wait([stop_wait], timeout=0.5)
                    if self.nc.is_closed:
                        break
                    continue
                except Exception as err:  # never let one failed fetch end the service
                    log.warning("consumer %s: fetch failed: %r", durable, err)
                    await asyncio.wait([stop_wait], timeout=0.5)
                    await rebind_if_lost()
                    continue
                if msgs:
                    metrics.CONSUMER_PENDING.labels(durable).set(_num_pending(msgs[-1]))
                for m in msgs:
                    t = asyncio.create_task(settle.run(m))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            # Stop pulling and drop our inbox *before* in-flight handlers settle, so a nak'ed
            # message cannot be redelivered into this dying subscription (it would then wait out
            # ack_wait); naks queued messages already delivered to us.
            stop_wait.cancel()
            await _cancel(fetch)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            await _release_pending(sub)
            if cancelled:  # cancelled from outside: in-flight handlers are cancelled and nak
                for t in tasks:
                    t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    # --- ordered consumers (replay + follow) ---------------------------------------------------
    async def serve(self, subject: str, answer: Callable[[Msg], Awaitable[bytes]], *, stop: asyncio.Event) -> None:
        """Answer core-NATS requests on `subject` with `answer`'s bytes until `stop` is set (or cancelled).

        Requests are answered one at a time, in arrival order; an `answer` that raises is logged and the
        request goes unanswered (the asker's timeout tells it), so one bad request does not end the service.
        """
        async def on_request(msg: Msg) -> None:
            try:
                reply = await answer(msg)
            except Exception:
                log.exception("answering a request on %s failed", subject)
                return
            if msg.reply:
                await msg.respond(reply)

        sub = await self.nc.subscribe(subject, cb=on_request)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def ask(self, subject: str, payload: bytes, *, timeout: float) -> bytes | None:
        """One core-NATS request; its reply, or None when nobody answers in `timeout` (no responder
        subscribed, the responder busy or gone, NATS away)."""
        try:
            reply = await self.nc.request(subject, payload, timeout=timeout)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.errors.ConnectionClosedError,
                nats.errors.ConnectionReconnectingError):
            _reraise_swallowed_cancel()
            return None
        _reraise_swallowed_cancel()
        return reply.data

    async def watch(
        self,
        subject_filter: str,
        *,
        decoder: msgspec.json.Decoder[T],
        handler: Handler[T],
        stop: asyncio.Event,
        deliver_policy: api.DeliverPolicy = api.DeliverPolicy.ALL,
        replayed: asyncio.Event | None = None,
        start_seq: int | None = None,
        start_time: datetime | None = None,
        traced: bool = False,
        on_reset: Callable[[], Awaitable[None]] | None = None,
        check_interval: float = STREAM_CHECK_INTERVAL,
    ) -> None:
        """Replay `subject_filter` from its stream, then follow it live, until `stop` is set.

        An ordered consumer (no acks, gap-free, in stream order, re-created by the client after a
        reconnect). Handlers run one at a time in order. `replayed` is set once every message that
        existed when the watch started has been handled (at once for an empty stream). A malformed
        message is skipped with a `rejected` event; a handler exception is logged and skipped.

        A stream that does not exist yet is waited for. When the stream is lost (deleted, or replaced by
        a new one of that name) the watch starts over on the new stream from its first message, after
        `on_reset`, so a new stream's messages are not missed.
        """
        stream = self.stream_for(subject_filter)
        done = replayed if replayed is not None else asyncio.Event()
        # the stream sequences of the last message the handler finished with (where a restarted watch
        # resumes) and of the last one handed to it (its progress, as the stuck check sees it)
        handled = [0, 0]

        async def on_msg(msg: Msg) -> None:
            with contextlib.suppress(Exception):
                handled[1] = msg.metadata.sequence.stream
            try:
                await self._watch_one(msg, decoder, handler, traced)
                # only once the handler is done: a watch restarted while a handler runs cancels it (the
                # subscription's task is the one awaiting it), and that message must be handed over again
                with contextlib.suppress(Exception):
                    handled[0] = msg.metadata.sequence.stream
            finally:
                with contextlib.suppress(Exception):
                    if not done.is_set() and msg.metadata.num_pending == 0:
                        done.set()

        while True:
            stream_info = await self.wait_for_stream(stream, stop, check_interval)
            if stream_info is None:
                return
            config = api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start_seq else
                api.DeliverPolicy.BY_START_TIME if start_time else deliver_policy,
                opt_start_seq=start_seq,
                opt_start_time=start_time,
            )
            sub = await self.js.subscribe(
                subject_filter, stream=stream, cb=on_msg, ordered_consumer=True, config=config, idle_heartbeat=5
            )
            try:
                try:
                    info = await sub.consumer_info()
                    if info.num_pending == 0 and (info.delivered is None or not info.delivered.consumer_seq):
                        done.set()  # nothing to replay
                except Exception as err:  # the stream went again meanwhile, NATS away: the check below tells
                    log.info("consumer info of the watch of %s: %r", subject_filter, err)
                lost = await self._watch_alive(sub, stream, stream_info.created, stop, check_interval, handled, done)
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            if lost is None:
                return
            if not lost:
                # The ordered consumer is gone while its stream is not: in a JetStream cluster it lives on
                # one server, and when that server dies the client is never told (no heartbeat comes to
                # miss a sequence by): the watch would wait forever. Go on after the last message handled.
                log.warning("the consumer of the watch of %s is gone; resuming after stream sequence %d",
                            subject_filter, handled[0])
                if handled[0]:
                    deliver_policy, start_seq, start_time = api.DeliverPolicy.BY_START_SEQUENCE, handled[0] + 1, None
                continue
            # The ordered consumer would resume at the old stream's next sequence, which the new stream
            # reaches only much later: everything published to it until then was never seen. Watch the
            # new stream from its first message instead (all of it was published after the loss).
            metrics.STREAM_LOSSES.labels(stream).inc()
            log.warning("stream %s was lost under the watch of %s; watching the new one from its start",
                        stream, subject_filter)
            deliver_policy, start_seq, start_time = api.DeliverPolicy.ALL, None, None
            if on_reset is not None:
                await on_reset()

    async def _watch_alive(self, sub: JetStreamContext.PushSubscription, stream: str, created: datetime | None,
                           stop: asyncio.Event, interval: float, handled: list[int],
                           replayed: asyncio.Event) -> bool | None:
        """Every `interval`: True once the stream is lost (gone, or a new `created`), False once the
        watch's consumer is gone (not found, or not answering twice in a row while its stream does) or
        stuck (messages pending for it, none handled, three times in a row), None once `stop` is set.
        The watch then resumes after the last message the handler finished with: none is skipped, and
        at most the one a restart interrupted is handed over again.

        It also sets `replayed` once nothing is pending and every message delivered was handled: the
        watch's first look at its consumer may go unanswered (a loaded server), and on an empty stream
        no message comes to tell the replay is over."""
        unanswered = stuck = 0
        seen = handled[1]
        while not await _wait(stop, interval):
            lost, info = await self._look_at_stream(stream, created)
            if lost:
                return True
            if info is None:
                continue
            try:
                consumer = await sub.consumer_info()
                unanswered = 0
            except NotFoundError:
                return False
            except Exception as err:
                log.debug("consumer info of a watch on %s: %r", stream, err)
                unanswered += 1
                if unanswered >= 2:
                    return False
                continue
            delivered = (consumer.delivered.stream_seq or 0) if consumer.delivered is not None else 0
            if not replayed.is_set() and not consumer.num_pending and delivered <= handled[0]:
                replayed.set()
            behind = bool(consumer.num_pending) or delivered > handled[1]
            stuck = stuck + 1 if behind and handled[1] == seen else 0
            seen = handled[1]
            if stuck >= 3:
                log.warning("the watch of %s on %s is stuck (%d pending, delivered up to %s, handed over up to %d)",
                            sub.subject, stream, consumer.num_pending or 0, delivered, handled[1])
                return False
        return None

    async def stream_messages(self, base: str, subject_filter: str | None = None) -> list[api.RawStreamMsg]:
        """Every message a stream holds right now (optionally only those matching `subject_filter`),
        in sequence order, read with direct gets: no consumer, so it also works on a work queue, where
        a second consumer is not allowed. One round trip per message; the gaps a work queue leaves
        are skipped by the server (`next_by_subj`), not scanned."""
        stream = self.subjects.stream(base)
        subject = subject_filter or f"{self.prefix}.>"
        out: list[api.RawStreamMsg] = []
        seq = 1
        while True:
            try:
                msg = await self.js.get_msg(stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return out
            out.append(msg)
            assert msg.seq is not None
            seq = msg.seq + 1

    async def purge(self, subject_filter: str) -> None:
        """Drop every message of the subjects matching `subject_filter` from their stream (a prober
        forgetting the results of a pod that is gone: KB_PROBE keeps one per subject otherwise forever)."""
        await self.js.purge_stream(self.stream_for(subject_filter), subject=subject_filter)

    async def last_per_subject(self, subject_filter: str, decoder: msgspec.json.Decoder[T]) -> dict[str, T]:
        """The latest message of every subject matching `subject_filter`, decoded (malformed ones
        skipped), as the stream holds them right now.

        This is how the watcher learns what the compacted state stream still calls live: a relist must
        retire those objects too, not only the ones it happens to remember in memory.
        """
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT)
        return {subject: msg for subject, msg, _ in await self._read(subject_filter, decoder, config)}

    async def last_per_subject_stored(self, subject_filter: str,
                                      decoder: msgspec.json.Decoder[T]) -> dict[str, tuple[T, datetime]]:
        """`last_per_subject`, each message with the time the stream stored it (its JetStream timestamp)."""
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT)
        return {subject: (msg, stored) for subject, msg, stored in await self._read(subject_filter, decoder, config)}

    async def read_since(self, subject_filter: str, decoder: msgspec.json.Decoder[T], since: datetime) -> list[T]:
        """Every message matching `subject_filter` stored since `since`, decoded (malformed ones skipped).

        A one-shot read, not a watch: an ordered consumer that starts at a time cannot be re-created
        after a reconnect (the client resets it to a start sequence but keeps the start time, which the
        server refuses), so a long-lived watch must start at ALL, NEW or a sequence.
        """
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_TIME, opt_start_time=since)
        return [msg for _, msg, _ in await self._read(subject_filter, decoder, config)]

    async def _read(self, subject_filter: str, decoder: msgspec.json.Decoder[T],
                    config: api.ConsumerConfig) -> list[tuple[str, T, datetime]]:
        stream = self.stream_for(subject_filter)
        sub = await self.js.subscribe(subject_filter, stream=stream, ordered_consumer=True, config=config,
                                      idle_heartbeat=5)
        out: list[tuple[str, T, datetime]] = []
        try:
            info = await sub.consumer_info()
            # messages already pushed to the subscription count as delivered, not pending
            pending = (info.num_pending or 0) + (info.delivered.consumer_seq or 0 if info.delivered else 0)
            while pending:
                msg = await sub.next_msg(timeout=self.js_timeout)
                pending = msg.metadata.num_pending
                try:
                    out.append((msg.subject, decoder.decode(msg.data), msg.metadata.timestamp))
                except UNDECODABLE as err:
                    log.warning("skipping malformed message on %s: %s", msg.subject, err)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return out

    async def _watch_one(
        self, msg: Msg, decoder: msgspec.json.Decoder[T], handler: Handler[T], traced: bool
    ) -> None:
        try:
            decoded = decoder.decode(msg.data)
        except UNDECODABLE as err:
            log.warning("skipping malformed message on %s: %s", msg.subject, err)
            await self.reject(msg, reason=REASON_MALFORMED, message=_malformed_message(msg.subject, err))
            return
        try:
            if traced:
                with telemetry.process_span(self.tracer, msg, self.template(msg.subject), "watch"):
                    await handler(decoded, msg)
            else:
                await handler(decoded, msg)
        except Exception:
            log.exception("watch handler failed on %s; skipped", msg.subject)

    async def subscribe_events(
        self,
        filter_subject: str | None = None,
        *,
        deliver: Literal["all", "new", "last", "last_per_subject"] = "all",
        start_seq: int | None = None,
        start_time: datetime | None = None,
    ) -> AsyncGenerator[tuple[RolloutEvent | None, Msg], None]:
        """Iterate rollout events (for `kruisebus events`): `(event, msg)`, event None if malformed.

        `start_seq` / `start_time` override `deliver`. Use it inside `contextlib.aclosing(...)` so
        the subscription is removed as soon as the loop is left.
        """
        policy = {
            "all": api.DeliverPolicy.ALL,
            "new": api.DeliverPolicy.NEW,
            "last": api.DeliverPolicy.LAST,
            "last_per_subject": api.DeliverPolicy.LAST_PER_SUBJECT,
        }[deliver]
        if start_seq:
            policy = api.DeliverPolicy.BY_START_SEQUENCE
        elif start_time:
            policy = api.DeliverPolicy.BY_START_TIME
        subject = filter_subject or self.subjects.events_all()
        config = api.ConsumerConfig(deliver_policy=policy, opt_start_seq=start_seq, opt_start_time=start_time)
        sub = await self.js.subscribe(
            subject, stream=self.stream_for(subject), ordered_consumer=True, config=config, idle_heartbeat=5
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=None)
                except nats.errors.TimeoutError:
                    continue
                try:
                    ev: RolloutEvent | None = EVENT_DECODER.decode(msg.data)
                except UNDECODABLE:
                    ev = None
                yield ev, msg
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class _Settler:
    """Decode, handle inside a process span, and settle one work-queue message."""

    def __init__(
        self,
        bus: Bus,
        durable: str,
        decoder: msgspec.json.Decoder[Any],
        handler: Handler[Any],
        max_deliver: int,
        retry_delay: float,
        ack_timer: float,
    ) -> None:
        self.bus = bus
        self.durable = durable
        self.decoder = decoder
        self.handler = handler
        self.max_deliver = max_deliver
        self.retry_delay = retry_delay
        self.heartbeat = max(ack_timer / 3, 0.1)

    async def run(self, msg: Msg) -> None:
        in_flight = metrics.CONSUMER_IN_FLIGHT.labels(self.durable)
        in_flight.inc()
        try:
            await self._run(msg)
        finally:
            in_flight.dec()

    async def _run(self, msg: Msg) -> None:
        bus = self.bus
        template = bus.template(msg.subject)
        try:
            decoded = self.decoder.decode(msg.data)
        except UNDECODABLE as err:
            with telemetry.process_span(bus.tracer, msg, template, self.durable) as span:
                text = _malformed_message(msg.subject, err)
                log.warning("%s", text)
                _mark_error(span, err, REASON_MALFORMED)
                await bus.reject(msg, reason=REASON_MALFORMED, message=text)
                await _settle(msg.term())
                self._count("term")
            return

        parent = None
        rollout = getattr(decoded, "rollout_trace_id", "")
        if isinstance(rollout, str) and rollout:
            parent = telemetry.rollout_context_from_trace_id(rollout)
        with telemetry.process_span(
            bus.tracer, msg, template, self.durable, parent=parent,
            attributes=telemetry.message_attributes(decoded),
        ) as span:
            keepalive = asyncio.create_task(self._keep_alive(msg))
            try:
                await self.handler(decoded, msg)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await msg.nak()
                span.set_attribute(telemetry.KB_SETTLE, "nak")
                self._count("nak")
                raise
            except TransientError as err:
                _mark_error(span, err, "transient")
                await self._retry(msg, decoded, err.delay, str(err), span)
            except PermanentError as err:
                _mark_error(span, err, err.reason)
                log.info("rejecting message on %s: %s (%s)", msg.subject, err, err.reason)
                await bus.reject(msg, reason=err.reason, message=str(err) or err.reason, decoded=decoded)
                await _settle(msg.term())
                span.set_attribute(telemetry.KB_SETTLE, "term")
                self._count("term")
            except Exception as err:
                _mark_error(span, err, type(err).__name__, traceback=True)  # a bug: keep the trace
                log.exception("handler failed on %s", msg.subject)
                n = _num_delivered(msg)
                delay = min(self.retry_delay * 2 ** max(n - 1, 0), 60.0)
                await self._retry(msg, decoded, delay, f"{type(err).__name__}: {err}", span)
            else:
                await _settle(msg.ack())
                span.set_attribute(telemetry.KB_SETTLE, "ack")
                self._count("ack")
            finally:
                keepalive.cancel()

    async def _retry(self, msg: Msg, decoded: Any, delay: float, why: str, span: trace.Span) -> None:
        n = _num_delivered(msg)
        if n >= self.max_deliver:
            await self.bus.reject(
                msg,
                reason=REASON_MAX_DELIVERIES,
                message=f"gave up on {msg.subject} after {n} deliveries: {why}",
                decoded=decoded,
            )
            await _settle(msg.term())
            span.set_attribute(telemetry.KB_SETTLE, "term")
            self._count("term")
        else:
            await _settle(msg.nak(delay=delay))
            span.set_attribute(telemetry.KB_SETTLE, "nak")
            self._count("nak")

    def _count(self, settle: str) -> None:
        metrics.CONSUMER_MESSAGES.labels(self.durable, settle).inc()

    async def _keep_alive(self, msg: Msg) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(self.heartbeat)
                await msg.in_progress()


async def replayed_or_stopped(stop: asyncio.Event, *replayed: asyncio.Event) -> bool:
    """Wait until every `replayed` event of a service's watches is set, or `stop` is: a watch stopped
    before its replay ends never sets its event, so a service stopped while it starts must not wait for
    it (True: replayed; False: stopped)."""

    async def all_replayed() -> None:
        for event in replayed:
            await event.wait()

    ready, stopped = asyncio.ensure_future(all_replayed()), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for f in (ready, stopped):
            f.cancel()
    return all(event.is_set() for event in replayed) and not stop.is_set()


async def _settle(aw: Awaitable[Any]) -> None:
    try:
        await aw
    except nats.errors.MsgAlreadyAckdError:
        pass  # the handler settled it itself
    except Exception as err:  # lost connection: the server redelivers after ack_wait
        log.warning("could not settle message: %r", err)


async def _wait(stop: asyncio.Event, timeout: float) -> bool:
    """Wait `timeout` seconds or until `stop` is set; whether it is."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)
    return stop.is_set()


def _reraise_swallowed_cancel() -> None:
    """Re-raise a cancellation that nats-py's request lost.

    nats-py waits for the server's reply with `asyncio.wait_for`, which on CPython 3.11 returns the
    result instead of raising when the task is cancelled in the same loop iteration as the reply
    arrives (fixed in 3.12). The cancel request is still counted by `Task.cancelling()`, so a
    service being shut down would otherwise publish on and never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _cancel(fut: asyncio.Future[Any] | None) -> None:
    """Cancel a pending fetch and wait for it, swallowing its outcome."""
    if fut is None:
        return
    if not fut.done():
        fut.cancel()
    with contextlib.suppress(BaseException):
        await fut


async def _release_pending(sub: JetStreamContext.PullSubscription) -> None:
    """Nak messages a cancelled fetch left in the client's queue, so another replica gets them now
    instead of after `ack_wait`."""
    queue = getattr(getattr(sub, "_sub", None), "_pending_queue", None)
    while queue is not None and not queue.empty():
        m = queue.get_nowait()
        if m.reply and not JetStreamContext.is_status_msg(m):
            with contextlib.suppress(Exception):
                await m.nak()


def _num_pending(msg: Msg) -> int:
    """Messages still waiting for this message's consumer on the server (0 when unknown)."""
    try:
        return int(msg.metadata.num_pending)
    except Exception:
        return 0


def _num_delivered(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:
        return 1


def _mark_error(span: trace.Span, err: BaseException, error_type: str, *, traceback: bool = False) -> None:
    if traceback:
        span.record_exception(err)
    else:
        telemetry.error_event(span, err)
    span.set_status(Status(StatusCode.ERROR, str(err)))
    span.set_attribute("error.type", error_type)


def _malformed_message(subject: str, err: Exception) -> str:
    return f"malformed message on {subject}: {err}"


def _decodable(token: str) -> bool:
    try:
        decode_token(token)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _decode_or_empty(token: str) -> str:
    try:
        return decode_token(token)
    except (ValueError, UnicodeDecodeError):
        return ""


__all__ = [
    "Bus",
    "FAMILIES",
    "Handler",
    "PermanentError",
    "REASON_MALFORMED",
    "REASON_MAX_DELIVERIES",
    "TRANSIENT_NATS_ERRORS",
    "TransientError",
    "replayed_or_stopped",
    "outcome_msg_id",
    "state_msg_id",
    "stream_configs",
]
