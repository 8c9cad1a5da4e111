"""Tracing helpers: W3C propagation, parent/link policy, deterministic rollout traces."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from schemas.kinds import CLONESET
from schemas.kube import ObjectMeta
from schemas.messages import Command
from schemas.traceids import rollout_trace_id
from services import telemetry

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = "kb.cmd.{namespace}.{owner}.{verb}"
SUBJECT = "kb.cmd.default.w-uid.update-in-place"


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


class NoMetadata:
    """Stands in for a core NATS message: no JetStream metadata."""

    def __init__(self, headers: dict[str, str] | None) -> None:
        self.subject = SUBJECT
        self.data = b"{}"
        self.headers = headers

    @property
    def metadata(self) -> Any:
        raise ValueError("not a JetStream message")


def test_rollout_trace_id_is_deterministic_128_bit() -> None:
    a = rollout_trace_id("uid-1", "rev-a")
    assert a == rollout_trace_id("uid-1", "rev-a")
    assert a != rollout_trace_id("uid-1", "rev-b")
    assert a != rollout_trace_id("uid-2", "rev-a")
    assert 0 < a < 2**128 and a.bit_length() > 64
    sid = telemetry.rollout_root_span_id(a)
    assert 0 < sid < 2**64 and sid == telemetry.rollout_root_span_id(a)
    assert len(telemetry.format_trace_id(a)) == 32


def test_rollout_context_round_trips_through_the_hex_trace_id() -> None:
    ctx = telemetry.rollout_context("uid-1", "rev-a")
    sc = trace.get_current_span(ctx).get_span_context()
    assert sc.trace_id == rollout_trace_id("uid-1", "rev-a") and sc.trace_flags.sampled
    again = telemetry.rollout_context_from_trace_id(telemetry.format_trace_id(sc.trace_id))
    assert again is not None and trace.get_current_span(again).get_span_context() == sc
    assert telemetry.rollout_context_from_trace_id("nothex") is None
    assert telemetry.rollout_context_from_trace_id("0" * 32) is None


def test_publish_injects_traceparent_and_process_is_parented_by_rollout_and_linked_to_producer(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    rollout = telemetry.rollout_context("uid-1", "rev-a")
    trace_id = rollout_trace_id("uid-1", "rev-a")
    headers: dict[str, str] = {"Nats-Msg-Id": "cmd-1"}
    with telemetry.publish_span(tracer, SUBJECT, TEMPLATE, "cmd-1", headers, context=rollout) as send:
        send_ctx = send.get_span_context()
    version, tid, sid, _flags = headers["traceparent"].split("-")
    assert version == "00" and int(tid, 16) == trace_id and int(sid, 16) == send_ctx.span_id

    msg = NoMetadata(headers)
    with telemetry.process_span(tracer, msg, TEMPLATE, "executor", parent=rollout):
        pass
    s = by_name(exporter)
    send_span, process = s[f"send {TEMPLATE}"], s[f"process {TEMPLATE}"]
    root_id = telemetry.rollout_root_span_id(trace_id)
    assert send_span.kind == SpanKind.PRODUCER and process.kind == SpanKind.CONSUMER
    assert send_span.parent is not None and send_span.parent.span_id == root_id
    assert process.context.trace_id == trace_id
    assert process.parent is not None and process.parent.span_id == root_id
    assert [link.context.span_id for link in process.links] == [send_ctx.span_id]
    attrs = dict(send_span.attributes or {})
    assert attrs == {
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": SUBJECT,
        "messaging.destination.template": TEMPLATE,
        "messaging.message.id": "cmd-1",
    }
    pattrs = dict(process.attributes or {})
    assert pattrs["messaging.consumer.group.name"] == "executor"
    assert pattrs["messaging.operation.type"] == "process"
    assert pattrs["messaging.message.id"] == "cmd-1"


def test_process_without_rollout_is_child_of_producer(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    headers: dict[str, str] = {}
    with telemetry.publish_span(tracer, SUBJECT, TEMPLATE, "m", headers) as send:
        producer = send.get_span_context()
    with telemetry.process_span(tracer, NoMetadata(headers), TEMPLATE, "g"):
        pass
    process = by_name(exporter)[f"process {TEMPLATE}"]
    assert process.parent is not None and process.parent.span_id == producer.span_id
    assert process.links[0].context.span_id == producer.span_id


def test_process_span_without_headers_has_no_link(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    with telemetry.process_span(provider.get_tracer("t"), NoMetadata(None), TEMPLATE, "g"):
        pass
    process = by_name(exporter)[f"process {TEMPLATE}"]
    assert process.parent is None and list(process.links) == []


def test_root_span_has_exactly_the_derived_ids(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("ambient"):  # must not become the root's parent
        root = telemetry.start_rollout_root_span(
            "uid-1", "rev-a", name="rollout default/web", attributes={"kruisebus.workload": "web"},
            tracer_provider=provider,
        )
    with tracer.start_as_current_span("pod update", context=telemetry.rollout_context("uid-1", "rev-a")):
        pass
    root.end()
    with tracer.start_as_current_span("unrelated"):  # the shared tracer still makes random ids
        pass
    s = by_name(exporter)
    trace_id = rollout_trace_id("uid-1", "rev-a")
    r = s["rollout default/web"]
    assert r.context.trace_id == trace_id
    assert r.context.span_id == telemetry.rollout_root_span_id(trace_id)
    assert r.parent is None
    assert dict(r.attributes or {})["kruisebus.revision"] == "rev-a"
    assert s["pod update"].parent is not None and s["pod update"].parent.span_id == r.context.span_id
    assert s["unrelated"].context.trace_id != trace_id
    assert s["unrelated"].context.span_id != r.context.span_id


def test_root_span_with_noop_provider_is_non_recording() -> None:
    span = telemetry.start_rollout_root_span("u", "r", tracer_provider=trace.NoOpTracerProvider())
    assert not span.is_recording()
    assert span.get_span_context().trace_id == rollout_trace_id("u", "r")


def test_message_attributes() -> None:
    cmd = SimpleNamespace(id="c1", verb="delete", namespace="ns", workload="web", pod="web-1", revision="")
    assert telemetry.message_attributes(cmd) == {
        "k8s.namespace.name": "ns", "kruisebus.workload": "web", "k8s.pod.name": "web-1",
        "kruisebus.verb": "delete", "kruisebus.command.id": "c1",
    }


def test_message_attributes_of_a_command_name_its_workload_kind() -> None:
    cmd = Command(id="c1", verb="delete", workload=CLONESET.ref(ObjectMeta(name="web", namespace="ns", uid="w")),
                  pod="web-1")
    attrs = telemetry.message_attributes(cmd)
    assert attrs["kruisebus.workload"] == "web" and attrs["kruisebus.workload.kind"] == "CloneSet"
    assert attrs["kruisebus.workload.uid"] == "w" and attrs["k8s.namespace.name"] == "ns"


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=60,
    )


def test_setup_tracing_sets_global_once_and_exports_only_with_an_endpoint() -> None:
    # In a subprocess: the global provider can be set only once per process.
    code = """
        from opentelemetry import trace
        from services.telemetry import setup_tracing
        p = setup_tracing("kb-test")
        assert trace.get_tracer_provider() is p
        assert setup_tracing("other") is p
        assert p.resource.attributes["service.name"] == "{name}"
        procs = p._active_span_processor._span_processors
        print(len(procs), [type(x).__name__ for x in procs])
        p.shutdown()
    """
    off = _run(code.replace("{name}", "kb-test"))
    assert off.returncode == 0, off.stderr
    assert off.stdout.startswith("0 ")
    on = _run(code.replace("{name}", "kb-test"), OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert on.returncode == 0, on.stderr
    assert on.stdout.strip() == "1 ['BatchSpanProcessor']"
    named = _run(code.replace("{name}", "from-env"), OTEL_SERVICE_NAME="from-env")
    assert named.returncode == 0, named.stderr
