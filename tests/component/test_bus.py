"""The bus contract against a real nats-server: streams, dedup, settle rules, replay, tracing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js.api import RetentionPolicy
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from schemas.kinds import CLONESET
from schemas.kube import ObjectMeta, OwnerReference, Pod
from schemas.messages import COMMAND_DECODER, EVENT_DECODER, STATE_DECODER, Command, PodState, RolloutEvent
from schemas.subjects import STREAM_CMD, STREAM_EVENTS, STREAM_STATE
from schemas.traceids import rollout_trace_id
from services import telemetry
from services.bus import Bus
from services.errors import StaleError, TransientError
from services.natsd import NatsServer

DEADLINE = 10.0


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = DEADLINE) -> Any:
    """Poll `check` until it returns a truthy value (or raise the last error at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
            err: BaseException | None = None
        except (AssertionError, nats.errors.Error) as e:
            err = e
        if time.monotonic() > deadline:
            if err:
                raise err
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


@pytest.fixture
async def bus(
    nats_server: NatsServer, uid: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> AsyncIterator[Bus]:
    b = await Bus.connect(nats_server.url, name=f"test-{uid}", prefix=f"t{uid}", tracer_provider=spans[0])
    await b.ensure_streams()
    try:
        yield b
    finally:
        await b.close(drain=False)


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def command(i: int = 1, **kw: Any) -> Command:
    fields: dict[str, Any] = dict(
        id=f"cmd-{i}", verb="update-in-place",
        workload=CLONESET.ref(ObjectMeta(name="web", namespace="default", uid="w-uid")),
        pod=f"web-{i}", pod_uid=f"p-{i}", revision="rev2",
    )
    fields.update(kw)
    return Command(**fields)


def pod_state(uid: str = "p-1", rv: str = "1", *, deleted: bool = False, owner: str = "w-uid") -> PodState:
    meta = ObjectMeta(
        name="web.1", namespace="default", uid=uid, resource_version=rv,
        owner_references=[OwnerReference(api_version="apps.kruise.io/v1alpha1", kind="CloneSet",
                                         name="web", uid=owner, controller=True)],
    )
    return PodState(object=Pod(metadata=meta), deleted=deleted)


class Runner:
    """Runs bus.consume / bus.watch in the background and stops it at the end of the test."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, coro: Awaitable[None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 10)


@pytest.fixture
async def runner() -> AsyncIterator[Runner]:
    r = Runner()
    try:
        yield r
    finally:
        await r.close()


async def start_consumer(bus: Bus, runner: Runner, handler: Any, **kw: Any) -> None:
    ready = asyncio.Event()
    runner.start(bus.consume(
        STREAM_CMD, "executor", filter_subject=bus.subjects.command_all(), decoder=COMMAND_DECODER,
        handler=handler, stop=runner.stop, ready=ready, **kw,
    ))
    await asyncio.wait_for(ready.wait(), DEADLINE)


async def stream_messages(bus: Bus, base: str) -> int:
    return (await bus.js.stream_info(bus.subjects.stream(base))).state.messages


async def rejected_events(bus: Bus) -> list[RolloutEvent]:
    out: list[RolloutEvent] = []
    async for ev, _msg in _take_all(bus, f"{bus.prefix}.events.*.*.rejected"):
        assert ev is not None
        out.append(ev)
    return out


async def _take_all(bus: Bus, subject: str) -> AsyncIterator[tuple[RolloutEvent | None, Msg]]:
    """Every event currently stored under `subject` (stops when the replay is done)."""
    info = await bus.js.stream_info(bus.subjects.stream(STREAM_EVENTS), subjects_filter=subject)
    total = sum((info.state.subjects or {}).values())
    if not total:
        return
    n = 0
    async with contextlib.aclosing(bus.subscribe_events(subject)) as events:
        async for item in events:
            yield item
            n += 1
            if n >= total:
                break


# --- streams ---------------------------------------------------------------------------------------


async def test_ensure_streams_is_idempotent_and_updates(bus: Bus) -> None:
    first = await bus.ensure_streams()
    second = await bus.ensure_streams()
    assert sorted(first) == sorted(second) == sorted(
        bus.subjects.stream(b) for b in ("STATE", "CMD", "NODE", "PROBE", "EVENTS")
    )
    state = second[bus.subjects.stream(STREAM_STATE)].config
    assert state.max_msgs_per_subject == 1 and state.allow_msg_ttl and state.allow_direct
    assert state.subjects == [f"{bus.prefix}.state.>"]
    cmd = second[bus.subjects.stream(STREAM_CMD)].config
    assert cmd.retention == RetentionPolicy.WORK_QUEUE and cmd.duplicate_window == 120
    events = second[bus.subjects.stream(STREAM_EVENTS)].config
    assert events.max_age == 7 * 24 * 3600 and events.max_bytes == 1 << 30
    # a changed setting is applied to the existing stream
    third = await bus.ensure_streams(events_max_age=3600)
    assert third[bus.subjects.stream(STREAM_EVENTS)].config.max_age == 3600


# --- publish -----------------------------------------------------------------------------------------


async def test_publish_dedups_by_msg_id(bus: Bus) -> None:
    cmd = command()
    first = await bus.publish_command(cmd)
    again = await bus.publish_command(cmd)
    assert not first.duplicate and again.duplicate and again.seq == first.seq
    assert await stream_messages(bus, STREAM_CMD) == 1
    raw = await bus.js.get_msg(bus.subjects.stream(STREAM_CMD), first.seq)
    assert raw.subject == f"{bus.prefix}.cmd.default.w-uid.update-in-place"
    assert raw.headers and raw.headers["Nats-Msg-Id"] == "cmd-1" and "traceparent" in raw.headers
    assert COMMAND_DECODER.decode(raw.data) == cmd


async def test_state_stream_keeps_latest_per_subject(bus: Bus) -> None:
    await bus.publish_state(pod_state(rv="1"))
    ack = await bus.publish_state(pod_state(rv="2"))
    await bus.publish_state(pod_state(uid="p-2", rv="3"))
    subject = bus.subjects.state("default", "w-uid", "pod", "p-1")
    last = await bus.js.get_last_msg(bus.subjects.stream(STREAM_STATE), subject)
    assert last.seq == ack.seq and last.headers and last.headers["Nats-Msg-Id"] == "p-1@2"
    assert STATE_DECODER.decode(last.data) == pod_state(rv="2")
    assert await stream_messages(bus, STREAM_STATE) == 2


async def test_tombstone_expires_by_ttl(bus: Bus) -> None:
    await bus.publish_state(pod_state(rv="1"))
    ack = await bus.publish_state(pod_state(rv="2", deleted=True), ttl=1)
    stream = bus.subjects.stream(STREAM_STATE)
    subject = bus.subjects.state("default", "w-uid", "pod", "p-1")
    tomb = await bus.js.get_last_msg(stream, subject)
    assert tomb.seq == ack.seq and tomb.headers and tomb.headers["Nats-Msg-Id"] == "p-1@deleted@2"
    assert tomb.headers["Nats-TTL"] == "1"

    async def gone() -> bool:
        return await stream_messages(bus, STREAM_STATE) == 0

    await eventually(gone)


# --- consume: settle rules ------------------------------------------------------------------------------


async def test_transient_error_naks_and_redelivers(bus: Bus, runner: Runner) -> None:
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(cmd: Command, msg: Msg) -> None:
        seen.append(msg.metadata.num_delivered)
        if len(seen) == 1:
            raise TransientError("not yet", delay=0.2)
        done.set()

    await start_consumer(bus, runner, handler)
    await bus.publish_command(command())
    await asyncio.wait_for(done.wait(), DEADLINE)
    assert seen == [1, 2]

    async def acked() -> bool:
        return await stream_messages(bus, STREAM_CMD) == 0

    await eventually(acked)
    assert await rejected_events(bus) == []


async def test_permanent_error_terms_and_rejects(
    bus: Bus, runner: Runner, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    calls: list[str] = []

    async def handler(cmd: Command, msg: Msg) -> None:
        calls.append(cmd.id)
        raise StaleError(f"pod {cmd.pod} changed since the plan")

    await start_consumer(bus, runner, handler, ack_wait=1)
    await bus.publish_command(command())
    rejected = await eventually(lambda: rejected_events(bus))
    ev = rejected[0]
    assert ev.type == "rejected" and ev.reason == "stale"
    assert ev.subject == f"{bus.prefix}.cmd.default.w-uid.update-in-place"
    assert ev.namespace == "default" and ev.workload == "web" and ev.command_id == "cmd-1"
    assert "web-1 changed" in ev.message
    last = await bus.js.get_last_msg(
        bus.subjects.stream(STREAM_EVENTS), bus.subjects.event("default", "web", "rejected")
    )
    assert last.headers and last.headers["Nats-Msg-Id"].startswith("outcome@")

    async def settled() -> bool:
        info = await bus.js.consumer_info(bus.subjects.stream(STREAM_CMD), "executor")
        return info.num_ack_pending == 0 and info.num_pending == 0 and info.num_redelivered == 0

    await eventually(settled)
    assert await stream_messages(bus, STREAM_CMD) == 0  # termed: removed from the work queue
    assert calls == ["cmd-1"]
    # the process span: an error, with the exception as an event but no traceback (an expected outcome)
    (process,) = [s for s in spans[1].get_finished_spans() if s.name.startswith("process ")]
    assert process.status.status_code == StatusCode.ERROR and "web-1 changed" in (process.status.description or "")
    (event,) = [e for e in process.events if e.name == "exception"]
    attrs = dict(event.attributes or {})
    assert attrs["exception.type"] == "services.errors.StaleError" and "web-1 changed" in attrs["exception.message"]
    assert "exception.stacktrace" not in attrs


async def test_malformed_message_is_rejected_and_the_loop_goes_on(bus: Bus, runner: Runner) -> None:
    handled: list[str] = []

    async def handler(cmd: Command, msg: Msg) -> None:
        handled.append(cmd.id)

    await start_consumer(bus, runner, handler, concurrency=1)
    bad_subject = f"{bus.prefix}.cmd.default.w-uid.update-in-place"
    await bus.js.publish(bad_subject, b'{"id": 7, "verb": "x"}', headers={"Nats-Msg-Id": "bad-1"})
    await bus.js.publish(bad_subject, b"{not json", headers={"Nats-Msg-Id": "bad-2"})
    await bus.publish_command(command(2))

    async def good_handled() -> bool:
        return handled == ["cmd-2"]

    await eventually(good_handled)
    rejected = await eventually(lambda: _at_least(rejected_events(bus), 2))
    by_id = {ev.command_id: ev for ev in rejected}
    assert by_id["bad-1"].reason == "malformed" and by_id["bad-1"].subject == bad_subject
    assert "$.id" in by_id["bad-1"].message and bad_subject in by_id["bad-1"].message
    assert by_id["bad-2"].reason == "malformed"
    # located from the subject tokens: namespace, and the owner token in place of the workload
    assert by_id["bad-2"].namespace == "default" and by_id["bad-2"].workload == "w-uid"

    async def empty() -> bool:
        return await stream_messages(bus, STREAM_CMD) == 0

    await eventually(empty)


async def _at_least(aw: Awaitable[list[RolloutEvent]], n: int) -> list[RolloutEvent] | None:
    got = await aw
    return got if len(got) >= n else None


async def test_max_deliveries_terms_and_rejects(bus: Bus, runner: Runner) -> None:
    seen: list[int] = []

    async def handler(cmd: Command, msg: Msg) -> None:
        seen.append(msg.metadata.num_delivered)
        raise TransientError("api down", delay=0.05)

    await start_consumer(bus, runner, handler, max_deliver=3)
    await bus.publish_command(command())
    rejected = await eventually(lambda: rejected_events(bus))
    assert rejected[0].reason == "max-deliveries" and "3 deliveries" in rejected[0].message
    assert seen == [1, 2, 3]

    async def empty() -> bool:
        return await stream_messages(bus, STREAM_CMD) == 0

    await eventually(empty)


async def test_unexpected_exception_is_retried_not_fatal(bus: Bus, runner: Runner) -> None:
    seen: list[str] = []

    async def handler(cmd: Command, msg: Msg) -> None:
        seen.append(cmd.id)
        if cmd.id == "cmd-1" and seen.count("cmd-1") == 1:
            raise RuntimeError("boom")

    await start_consumer(bus, runner, handler, retry_delay=0.05)
    await bus.publish_command(command(1))
    await bus.publish_command(command(2))

    async def both() -> bool:
        return sorted(seen) == ["cmd-1", "cmd-1", "cmd-2"]

    await eventually(both)


async def test_handlers_run_concurrently(bus: Bus, runner: Runner) -> None:
    running = 0
    peak = 0
    release = asyncio.Event()

    async def handler(cmd: Command, msg: Msg) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    await start_consumer(bus, runner, handler, concurrency=4)
    for i in range(6):
        await bus.publish_command(command(i))

    async def four() -> bool:
        return peak == 4

    await eventually(four)
    release.set()

    async def empty() -> bool:
        return await stream_messages(bus, STREAM_CMD) == 0

    await eventually(empty)
    assert peak == 4


# --- watch ----------------------------------------------------------------------------------------------


async def test_watch_replays_then_follows(bus: Bus, runner: Runner) -> None:
    for i in range(3):
        await bus.publish_state(pod_state(uid=f"p-{i}", rv="1"))
    await bus.publish_state(pod_state(uid="p-0", rv="2"))  # replaces p-0@1
    await bus.js.publish(f"{bus.prefix}.state.default.w-uid.pod.bad", b"[]", headers={"Nats-Msg-Id": "bad"})
    seen: list[tuple[str, str]] = []

    async def handler(ev: Any, msg: Msg) -> None:
        seen.append((ev.object.metadata.uid, ev.object.metadata.resource_version))

    replayed = asyncio.Event()
    runner.start(bus.watch(bus.subjects.state_all(), decoder=STATE_DECODER, handler=handler,
                           stop=runner.stop, replayed=replayed))
    await asyncio.wait_for(replayed.wait(), DEADLINE)
    assert sorted(seen) == [("p-0", "2"), ("p-1", "1"), ("p-2", "1")]
    await bus.publish_state(pod_state(uid="p-3", rv="5"))

    async def live() -> bool:
        return ("p-3", "5") in seen

    await eventually(live)
    rejected = await eventually(lambda: rejected_events(bus))
    assert rejected[0].reason == "malformed"
    assert rejected[0].subject == f"{bus.prefix}.state.default.w-uid.pod.bad"


async def test_watch_on_empty_stream_signals_replay_at_once(bus: Bus, runner: Runner) -> None:
    replayed = asyncio.Event()
    seen: list[Any] = []

    async def handler(ev: Any, msg: Msg) -> None:
        seen.append(ev)

    runner.start(bus.watch(bus.subjects.state_all(), decoder=STATE_DECODER, handler=handler,
                           stop=runner.stop, replayed=replayed))
    await asyncio.wait_for(replayed.wait(), DEADLINE)
    assert seen == []
    await bus.publish_state(pod_state())

    async def one() -> bool:
        return len(seen) == 1

    await eventually(one)


# --- events ----------------------------------------------------------------------------------------------


async def test_subscribe_events_filters_and_starts_at_sequence(bus: Bus) -> None:
    def ev(wl: str, t: str) -> RolloutEvent:
        return RolloutEvent(type=t, namespace="ns.a", workload=wl, message=f"{wl} {t}",
                            time="2026-01-01T00:00:00Z")

    acks = [await bus.publish_event(ev(wl, t), msg_id=f"{wl}-{t}")
            for wl, t in [("a", "pod-updated"), ("b", "pod-updated"), ("a", "rollout-completed")]]
    assert bus.subjects.event("ns.a", "a", "x") == f"{bus.prefix}.events.ns%2Ea.a.x"
    got = []
    wildcard = bus.subjects.event("ns.a", "a", "*").replace("%2A", "*")
    async with contextlib.aclosing(bus.subscribe_events(wildcard)) as events:
        async for e, _m in events:
            assert e is not None
            got.append(e.type)
            if len(got) == 2:
                break
    assert got == ["pod-updated", "rollout-completed"]
    async with contextlib.aclosing(bus.subscribe_events(start_seq=acks[1].seq)) as events:
        async for e, m in events:
            assert e is not None and e.workload == "b" and m.metadata.sequence.stream == acks[1].seq
            break


# --- tracing -----------------------------------------------------------------------------------------------


async def test_command_trace_joins_the_rollout(
    nats_server: NatsServer, uid: str, spans: tuple[TracerProvider, InMemorySpanExporter], runner: Runner
) -> None:
    provider, exporter = spans
    bus = await Bus.connect(nats_server.url, name="traced", prefix=f"t{uid}", tracer_provider=provider)
    try:
        await bus.ensure_streams()
        trace_id = rollout_trace_id("w-uid", "rev2")
        done = asyncio.Event()

        async def handler(cmd: Command, msg: Msg) -> None:
            done.set()

        await start_consumer(bus, runner, handler)
        await bus.publish_command(command(rollout_trace_id=telemetry.format_trace_id(trace_id)))
        await asyncio.wait_for(done.wait(), DEADLINE)
        runner.stop.set()
        await asyncio.wait_for(asyncio.gather(*runner.tasks), DEADLINE)

        finished = {s.name: s for s in exporter.get_finished_spans()}
        template = f"t{uid}.cmd.{{namespace}}.{{owner}}.{{verb}}"
        send, process = finished[f"send {template}"], finished[f"process {template}"]
        root_span_id = telemetry.rollout_root_span_id(trace_id)
        assert send.kind == SpanKind.PRODUCER and process.kind == SpanKind.CONSUMER
        assert send.context.trace_id == process.context.trace_id == trace_id
        assert send.parent is not None and send.parent.span_id == root_span_id
        assert process.parent is not None and process.parent.span_id == root_span_id
        assert [link.context.span_id for link in process.links] == [send.context.span_id]
        attrs = dict(process.attributes or {})
        assert attrs["messaging.system"] == "nats"
        assert attrs["messaging.destination.name"] == f"t{uid}.cmd.default.w-uid.update-in-place"
        assert attrs["messaging.destination.template"] == template
        assert attrs["messaging.consumer.group.name"] == "executor"
        assert attrs["messaging.message.id"] == "cmd-1"
        assert attrs["kruisebus.workload"] == "web" and attrs["kruisebus.settle"] == "ack"
    finally:
        await bus.close(drain=False)


def test_json_payload_is_readable_by_any_subscriber() -> None:
    data = msgspec.json.encode(command())
    assert msgspec.json.decode(data)["verb"] == "update-in-place"
    assert EVENT_DECODER is not None


async def test_stopped_consumer_does_not_swallow_messages(bus: Bus) -> None:
    """Stopping cancels the pending fetch; a message published afterwards goes to the next replica
    at once (not after ack_wait)."""
    first = Runner()
    await start_consumer(bus, first, _noop, ack_wait=30)
    await first.close()
    await bus.publish_command(command())
    second = Runner()
    got = asyncio.Event()

    async def handler(cmd: Command, msg: Msg) -> None:
        got.set()

    await start_consumer(bus, second, handler, ack_wait=30)
    try:
        await asyncio.wait_for(got.wait(), 5)
    finally:
        await second.close()


async def _noop(cmd: Command, msg: Msg) -> None:
    return None


def test_asyncapi_streams_match_the_streams_the_bus_creates() -> None:
    from schemas.jsonschema import asyncapi
    from schemas.subjects import Subjects
    from services.bus import stream_configs

    doc = asyncapi("kb")
    configs = {c.name: c for c in stream_configs(Subjects("kb"))}
    for chan in doc["channels"].values():
        stream = chan["x-nats-stream"]
        cfg = configs.pop(stream["stream"])
        assert cfg.subjects == [chan["address"].split("{")[0] + ">"]
        assert str(cfg.retention.value if cfg.retention else "") == stream["retention"]
        assert cfg.max_msgs_per_subject == stream.get("maxMsgsPerSubject", -1)
        assert bool(cfg.allow_msg_ttl) == stream.get("allowMsgTTL", False)
    assert configs == {}


async def test_publish_and_consume_survive_a_server_restart(
    private_nats_server: NatsServer, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    srv = private_nats_server
    caplog.set_level("INFO", logger="services.bus")
    bus = await Bus.connect(srv.url, name="restart", prefix=f"t{uid}", js_timeout=1.0)
    r = Runner()
    try:
        await bus.ensure_streams()
        got: list[str] = []

        async def handler(cmd: Command, msg: Msg) -> None:
            got.append(cmd.id)

        await start_consumer(bus, r, handler)
        await bus.publish_command(command(1))
        await eventually(lambda: _true_if(got == ["cmd-1"]))

        srv.kill()
        publishing = asyncio.ensure_future(bus.publish_command(command(2)))  # retried across the outage
        await asyncio.sleep(1.5)  # the outage itself (not waiting for a condition)
        assert not publishing.done()
        await asyncio.to_thread(srv.start)
        ack = await asyncio.wait_for(publishing, 30)
        assert any("retry" in r.getMessage() for r in caplog.records if r.name == "services.bus")
        again = await bus.publish_command(command(2))
        assert again.duplicate and again.seq == ack.seq
        await eventually(lambda: _true_if(got == ["cmd-1", "cmd-2"]), timeout=30)
    finally:
        await r.close()
        await bus.close(drain=False)


async def _true_if(cond: bool) -> bool:
    return cond


async def test_cancelled_consumer_naks_in_flight_messages(bus: Bus) -> None:
    started = asyncio.Event()

    async def stuck(cmd: Command, msg: Msg) -> None:
        started.set()
        await asyncio.Event().wait()

    first = Runner()
    await start_consumer(bus, first, stuck, ack_wait=30)
    await bus.publish_command(command())
    await asyncio.wait_for(started.wait(), DEADLINE)
    for t in first.tasks:
        t.cancel()
    await asyncio.gather(*first.tasks, return_exceptions=True)

    second = Runner()
    got = asyncio.Event()

    async def handler(cmd: Command, msg: Msg) -> None:
        assert msg.metadata.num_delivered == 2
        got.set()

    await start_consumer(bus, second, handler, ack_wait=30)
    try:
        await asyncio.wait_for(got.wait(), 5)  # well before ack_wait
    finally:
        await second.close()


# --- stream loss -----------------------------------------------------------------------------------


async def test_a_watch_follows_a_stream_deleted_and_recreated_under_it(bus: Bus, runner: Runner) -> None:
    """The ordered consumer alone resumes at the old stream's next sequence, which a new stream reaches
    only after as many messages: everything published to the new stream until then was never seen."""
    for i in range(20):
        await bus.publish_state(pod_state(uid=f"old-{i}", rv="1"))
    seen: list[str] = []
    resets = 0

    async def handler(ev: Any, msg: Msg) -> None:
        seen.append(ev.object.metadata.uid)

    async def on_reset() -> None:
        nonlocal resets
        resets += 1

    replayed = asyncio.Event()
    runner.start(bus.watch(bus.subjects.state_all(), decoder=STATE_DECODER, handler=handler, stop=runner.stop,
                           replayed=replayed, on_reset=on_reset, check_interval=0.1))
    await asyncio.wait_for(replayed.wait(), DEADLINE)
    assert len(seen) == 20
    await bus.js.delete_stream(bus.subjects.stream(STREAM_STATE))
    await bus.ensure_streams()
    await bus.publish_state(pod_state(uid="new-1", rv="1"))  # sequence 1 of the new stream
    await eventually(lambda: _true_if("new-1" in seen))
    assert resets == 1


async def test_a_watch_restarted_while_its_handler_runs_hands_that_message_over_again(
        bus: Bus, runner: Runner) -> None:
    """A watch taken for stuck (its handler busy while messages wait) restarts, which cancels the
    running handler: that message was not handled and must come again, not be skipped."""
    await bus.publish_state(pod_state(uid="slow", rv="1"))
    await bus.publish_state(pod_state(uid="next", rv="1"))
    started: list[str] = []
    finished: list[str] = []
    never = asyncio.Event()

    async def handler(ev: Any, msg: Msg) -> None:
        uid = ev.object.metadata.uid
        started.append(uid)
        if uid == "slow" and started.count("slow") == 1:
            await asyncio.wait_for(never.wait(), 20)  # busy until the restart cancels it
        finished.append(uid)

    runner.start(bus.watch(bus.subjects.state_all(), decoder=STATE_DECODER, handler=handler, stop=runner.stop,
                           check_interval=0.1))
    await eventually(lambda: _true_if(finished == ["slow", "next"]), timeout=DEADLINE)
    assert started == ["slow", "slow", "next"]


async def test_a_stream_lost_is_recreated_by_its_owner_with_its_config(bus: Bus, runner: Runner) -> None:
    await bus.ensure_streams(events_max_age=3600.0)  # a deploy-time setting the owner must keep
    name = bus.subjects.stream(STREAM_EVENTS)
    lost: list[tuple[str, Any]] = []

    async def on_lost(base: str, info: Any) -> None:
        lost.append((base, info.created))

    runner.start(bus.guard_stream(STREAM_EVENTS, stop=runner.stop, recreate=True, on_lost=on_lost, interval=0.1))
    first = await bus.js.stream_info(name)
    await asyncio.sleep(0.3)  # the guard has looked at least once (not waiting for a condition)
    assert lost == []
    await bus.js.delete_stream(name)
    await eventually(lambda: _true_if(bool(lost)))
    info = await bus.js.stream_info(name)
    assert lost == [(STREAM_EVENTS, info.created)] and info.created != first.created
    assert info.config.max_age == 3600.0 and info.config.subjects == [bus.subjects.events_all()]


async def test_a_consumer_whose_stream_was_recreated_gets_the_new_commands(bus: Bus, runner: Runner) -> None:
    got: list[str] = []

    async def handler(cmd: Command, msg: Msg) -> None:
        got.append(cmd.id)

    await start_consumer(bus, runner, handler, fetch_timeout=0.2)
    await bus.publish_command(command(1))
    await eventually(lambda: _true_if(got == ["cmd-1"]))
    await bus.js.delete_stream(bus.subjects.stream(STREAM_CMD))  # the durable consumer goes with it
    await bus.ensure_streams()
    await bus.publish_command(command(2))
    await eventually(lambda: _true_if(got == ["cmd-1", "cmd-2"]), timeout=30)
