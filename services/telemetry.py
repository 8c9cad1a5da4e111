"""OpenTelemetry for kruisebus: provider setup, NATS messaging spans and rollout trace ids.

There is no OpenTelemetry instrumentation for nats-py, so this module is our own thin layer, split
the way FastStream splits it: one generic span helper (`_messaging_span`) and a NATS attribute
provider (`NatsAttributes`) that knows the messaging semantic conventions (`send <template>` as a
PRODUCER span whose context travels in the W3C `traceparent` header, `process <template>` as a
CONSUMER span). All attribute names live here so a semconv change is a one-module edit.

One trace per rollout (docs/observability.md): the trace id is a hash of (workload uid, update revision), and the
rollout's root span id is a hash of that trace id. Every service can therefore compute the rollout
context on its own (`rollout_context`), in any process and after any restart, and parent its spans
there; `start_rollout_root_span` emits the real root span with exactly those ids so Tempo shows one
tree. Message provenance (which send span produced the message) is kept as a span *link*.

Every helper takes a tracer or tracer provider (default: the global one) so tests can inject a
provider with an in-memory exporter instead of touching global state.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

from schemas.messages import WorkloadRef
from schemas.traceids import rollout_trace_id

log = logging.getLogger(__name__)

TRACER_NAME = "kruisebus"

# Attribute names (OpenTelemetry messaging semconv, k8s semconv, ours under kruisebus.*).
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_DESTINATION_NAME = "messaging.destination.name"
MESSAGING_DESTINATION_TEMPLATE = "messaging.destination.template"
MESSAGING_MESSAGE_ID = "messaging.message.id"
MESSAGING_CONSUMER_GROUP = "messaging.consumer.group.name"
MESSAGING_BODY_SIZE = "messaging.message.body.size"
NATS_STREAM = "messaging.nats.stream"
NATS_STREAM_SEQUENCE = "messaging.nats.stream.sequence"
NATS_DELIVERY_COUNT = "messaging.nats.delivery_count"
NATS_DUPLICATE = "messaging.nats.duplicate"
K8S_NAMESPACE = "k8s.namespace.name"
K8S_POD_NAME = "k8s.pod.name"
K8S_POD_UID = "k8s.pod.uid"
K8S_NODE_NAME = "k8s.node.name"
KB_WORKLOAD = "kruisebus.workload"
KB_WORKLOAD_UID = "kruisebus.workload.uid"
KB_WORKLOAD_KIND = "kruisebus.workload.kind"
KB_REVISION = "kruisebus.revision"
KB_VERB = "kruisebus.verb"
KB_COMMAND_ID = "kruisebus.command.id"
KB_EVENT_TYPE = "kruisebus.event.type"
KB_REASON = "kruisebus.reason"
KB_SETTLE = "kruisebus.settle"

_configured: TracerProvider | None = None


# --- setup -----------------------------------------------------------------------------------------


def setup_tracing(service_name: str) -> TracerProvider:
    """Create the process's TracerProvider and make it global (once; later calls return the first).

    Spans are exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (the exporter reads them itself); otherwise spans are
    created (trace ids still propagate) but go nowhere. Call `provider.shutdown()` on exit to flush.
    """
    global _configured
    if _configured is not None:
        return _configured
    attrs: dict[str, str] = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attrs))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = provider
    return provider


def get_tracer(tracer_provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """The kruisebus tracer from `tracer_provider` (default: the global provider)."""
    return (tracer_provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)


# --- rollout traces --------------------------------------------------------------------------------


def rollout_root_span_id(trace_id: int) -> int:
    """The deterministic 64-bit span id of a rollout's root span (derived from its trace id alone)."""
    digest = hashlib.sha256(b"kruisebus/rollout-root/" + trace_id.to_bytes(16, "big")).digest()
    return int.from_bytes(digest[:8], "big") or 1


def format_trace_id(trace_id: int) -> str:
    """32 lowercase hex digits, as in `traceparent` and Tempo's URLs."""
    return trace.format_trace_id(trace_id)


def rollout_span_context(trace_id: int) -> SpanContext:
    """The (remote, sampled) span context of a rollout's root span."""
    return SpanContext(
        trace_id=trace_id,
        span_id=rollout_root_span_id(trace_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def rollout_context(workload_uid: str, revision: str, context: otel_context.Context | None = None) -> otel_context.Context:
    """A Context whose current span is the rollout's root: parent spans here to join its trace."""
    sc = rollout_span_context(rollout_trace_id(workload_uid, revision))
    return trace.set_span_in_context(NonRecordingSpan(sc), context)


def rollout_context_from_trace_id(trace_id_hex: str) -> otel_context.Context | None:
    """The rollout context for a hex trace id carried in a message (`Command.rollout_trace_id`)."""
    try:
        trace_id = int(trace_id_hex, 16)
    except ValueError:
        return None
    if not trace_id or trace_id >> 128:
        return None
    return trace.set_span_in_context(NonRecordingSpan(rollout_span_context(trace_id)))


class _FixedIds(IdGenerator):
    """Hands out one given trace id and span id (for the rollout root span)."""

    def __init__(self, trace_id: int, span_id: int) -> None:
        self._trace_id = trace_id
        self._span_id = span_id

    def generate_trace_id(self) -> int:
        return self._trace_id

    def generate_span_id(self) -> int:
        return self._span_id


def start_rollout_root_span(
    workload_uid: str,
    revision: str,
    *,
    name: str = "rollout",
    attributes: Mapping[str, AttributeValue] | None = None,
    start_time: int | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Span:
    """Start the rollout's real root span, with exactly the ids of `rollout_context`; the caller ends it.

    The SDK has no public way to choose a span's ids, so this uses a shallow copy of the SDK tracer
    with a fixed-id generator (tracers are cached and shared; the copy is private to this call).
    With a non-SDK provider (no-op API) it returns a non-recording span with the same context.
    """
    trace_id = rollout_trace_id(workload_uid, revision)
    tracer = get_tracer(tracer_provider)
    attrs: dict[str, AttributeValue] = {KB_WORKLOAD_UID: workload_uid, KB_REVISION: revision}
    attrs.update(attributes or {})
    if not hasattr(tracer, "id_generator"):
        return NonRecordingSpan(rollout_span_context(trace_id))
    fixed = copy.copy(tracer)
    fixed.id_generator = _FixedIds(trace_id, rollout_root_span_id(trace_id))
    # An empty Context: no ambient span may become the parent of a root.
    return fixed.start_span(
        name, context=otel_context.Context(), kind=SpanKind.INTERNAL, attributes=attrs, start_time=start_time
    )


# --- messaging spans -------------------------------------------------------------------------------


class NatsAttributes:
    """Attribute provider for NATS messaging spans (FastStream's split: generic span + provider)."""

    system = "nats"

    @classmethod
    def publish(cls, subject: str, template: str, msg_id: str) -> dict[str, AttributeValue]:
        return {
            MESSAGING_SYSTEM: cls.system,
            MESSAGING_OPERATION_TYPE: "send",
            MESSAGING_OPERATION_NAME: "publish",
            MESSAGING_DESTINATION_NAME: subject,
            MESSAGING_DESTINATION_TEMPLATE: template,
            MESSAGING_MESSAGE_ID: msg_id,
        }

    @classmethod
    def process(cls, msg: Any, template: str, consumer_group: str) -> dict[str, AttributeValue]:
        headers = msg.headers or {}
        attrs: dict[str, AttributeValue] = {
            MESSAGING_SYSTEM: cls.system,
            MESSAGING_OPERATION_TYPE: "process",
            MESSAGING_OPERATION_NAME: "process",
            MESSAGING_DESTINATION_NAME: msg.subject,
            MESSAGING_DESTINATION_TEMPLATE: template,
            MESSAGING_CONSUMER_GROUP: consumer_group,
            MESSAGING_BODY_SIZE: len(msg.data or b""),
        }
        if msg_id := headers.get("Nats-Msg-Id"):
            attrs[MESSAGING_MESSAGE_ID] = msg_id
        try:
            md = msg.metadata
        except Exception:  # a core (non-JetStream) message has no metadata
            return attrs
        attrs[NATS_STREAM] = md.stream
        attrs[NATS_STREAM_SEQUENCE] = md.sequence.stream
        attrs[NATS_DELIVERY_COUNT] = md.num_delivered
        return attrs


def message_attributes(message: Any) -> dict[str, AttributeValue]:
    """kruisebus/k8s attributes of a decoded bus message (Command, RolloutEvent, ...), when present."""
    out: dict[str, AttributeValue] = {}
    for field, attr in (
        ("namespace", K8S_NAMESPACE),
        ("workload", KB_WORKLOAD),
        ("workload_uid", KB_WORKLOAD_UID),
        ("pod", K8S_POD_NAME),
        ("pod_uid", K8S_POD_UID),
        ("revision", KB_REVISION),
        ("verb", KB_VERB),
        ("reason", KB_REASON),
    ):
        value = getattr(message, field, None)
        if isinstance(value, str) and value:
            out[attr] = value
    if isinstance(ref := getattr(message, "workload", None), WorkloadRef):
        out[K8S_NAMESPACE] = ref.namespace
        out[KB_WORKLOAD] = ref.name
        out[KB_WORKLOAD_UID] = ref.uid
        out[KB_WORKLOAD_KIND] = ref.kind
    if isinstance(cmd_id := getattr(message, "id", None), str) and cmd_id:
        out[KB_COMMAND_ID] = cmd_id
    if isinstance(ev_type := getattr(message, "type", None), str) and ev_type:
        out[KB_EVENT_TYPE] = ev_type
    return out


def error_event(span: trace.Span, err: BaseException) -> None:
    """An `exception` span event without the stack trace, for the errors the design expects (a stale
    command, a throttled call, a rejected message). `Span.record_exception` formats the traceback, which
    on CPython 3.11 re-parses source for caret positions: in one profiled 1,000-pod rollout it was ~12% of
    the executor's CPU samples. Unexpected errors keep `record_exception` and their traceback."""
    span.add_event(
        "exception",
        {"exception.type": f"{type(err).__module__}.{type(err).__qualname__}", "exception.message": str(err)},
    )


@contextmanager
def _messaging_span(
    tracer: trace.Tracer,
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, AttributeValue],
    *,
    context: otel_context.Context | None = None,
    links: list[Link] | None = None,
) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=attributes, links=links
    ) as span:
        yield span


@contextmanager
def publish_span(
    tracer: trace.Tracer | None,
    subject: str,
    template: str,
    msg_id: str,
    headers: dict[str, str],
    *,
    context: otel_context.Context | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """A `send <template>` PRODUCER span (child of `context`, default current) whose context is
    injected into `headers` as W3C `traceparent`/`tracestate`."""
    attrs = NatsAttributes.publish(subject, template, msg_id)
    attrs.update(attributes or {})
    with _messaging_span(
        tracer or get_tracer(), f"send {template}", SpanKind.PRODUCER, attrs, context=context
    ) as span:
        propagate.inject(headers)  # current context = the send span
        yield span


def producer_context(msg: Any) -> otel_context.Context:
    """The creation context carried in a message's headers (empty when it has none)."""
    return propagate.extract(msg.headers or {})


@contextmanager
def process_span(
    tracer: trace.Tracer | None,
    msg: Any,
    template: str,
    consumer_group: str,
    *,
    parent: otel_context.Context | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """A `process <template>` CONSUMER span for one message.

    Parent: `parent` (the rollout context) when given, else the producer's context from the headers.
    Link: always the producer's send span, when the message carried one.
    """
    producer_ctx = producer_context(msg)
    producer = trace.get_current_span(producer_ctx).get_span_context()
    links = [Link(producer)] if producer.is_valid else []
    attrs = NatsAttributes.process(msg, template, consumer_group)
    attrs.update(attributes or {})
    with _messaging_span(
        tracer or get_tracer(),
        f"process {template}",
        SpanKind.CONSUMER,
        attrs,
        context=parent if parent is not None else producer_ctx,
        links=links,
    ) as span:
        yield span
