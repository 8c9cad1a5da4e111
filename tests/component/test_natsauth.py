"""NATS security against a real nats-server running the install's account and users: every subject a
service uses is allowed to its user, a forbidden publish or subscribe fails, nobody gets in anonymously,
and the permissions table in docs/operations.md is the one the code generates."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.msg import Msg

from schemas.kinds import POD
from schemas.messages import COMMAND_DECODER, EVENT_DECODER, STATE_DECODER, Command, RolloutEvent, StateEvent
from schemas.subjects import EVENT_REJECTED, LEASE_WATCHER, STREAM_CMD, STREAM_EVENTS
from services import natsauth
from services.bus import Bus
from services.lease import Lease, LeaseStore, PartitionClaims
from services.natsd import NatsServer
from tests.component.test_bus import command, pod_state

PREFIX = "kb"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    s = NatsServer(auth=natsauth.generate_passwords(), prefix=PREFIX).start()
    try:
        yield s
    finally:
        s.cleanup()


class Violations:
    """What the server told a connection it refused (nats-py reports it to `error_cb`)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, err: Exception) -> None:
        self.seen.append(str(err))

    def any(self) -> bool:
        return any("permissions violation" in s.lower() for s in self.seen)


async def connect(server: NatsServer, user: str, violations: Violations | None = None) -> Bus:
    creds = server.credentials(user)
    assert creds is not None
    bus = await Bus.connect(
        server.url, name=f"test-{user}", prefix=PREFIX, user=creds[0], password=creds[1], js_timeout=1.0
    )
    if violations is not None:
        bus.nc._error_cb = violations  # noqa: SLF001 - observe what the server refuses
    return bus


@pytest.fixture
async def admin(server: NatsServer) -> AsyncIterator[Bus]:
    bus = await connect(server, natsauth.ADMIN)
    await bus.ensure_streams()
    await LeaseStore.open(bus)
    try:
        yield bus
    finally:
        await bus.close()


async def test_no_anonymous_access(server: NatsServer) -> None:
    with pytest.raises(nats.errors.Error, match="(?i)authorization"):
        await nats.connect(server.url, allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0)


async def test_watcher_publishes_state_reads_it_back_and_holds_its_lease(
    server: NatsServer, admin: Bus
) -> None:
    v = Violations()
    bus = await connect(server, natsauth.WATCHER, v)
    try:
        await bus.publish_state(pod_state("p-w1"))
        view = await bus.last_per_subject(bus.subjects.state_of_kind(POD.token), STATE_DECODER)
        assert any(ev.object.metadata.uid == "p-w1" for ev in view.values())
        lease = Lease(await LeaseStore.open(bus, create=False), LEASE_WATCHER, "w-1", 5)
        assert await lease.acquire() and await lease.renew()
        await lease.release()
    finally:
        await bus.close()
    assert not v.any(), v.seen


async def test_planner_reads_state_and_rejections_publishes_commands_and_claims(
    server: NatsServer, admin: Bus
) -> None:
    await admin.publish_state(pod_state("p-p1"))
    await admin.publish_event(
        RolloutEvent(
            type=EVENT_REJECTED,
            namespace="default",
            workload="web",
            message="stale",
            time="2026-01-01T00:00:00Z",
        ),
        msg_id="rej-1",
    )
    v = Violations()
    bus = await connect(server, natsauth.PLANNER, v)
    try:
        stop, replayed = asyncio.Event(), asyncio.Event()
        seen: list[StateEvent] = []

        async def on_state(ev: StateEvent, _: Msg) -> None:
            seen.append(ev)

        watch = asyncio.create_task(
            bus.watch(
                bus.subjects.state_all(),
                decoder=STATE_DECODER,
                handler=on_state,
                stop=stop,
                replayed=replayed,
            )
        )
        await asyncio.wait_for(replayed.wait(), 5)
        stop.set()
        await watch
        assert seen
        rejected = await bus.read_since(
            bus.subjects.events_of_type(EVENT_REJECTED),
            EVENT_DECODER,
            datetime.now(UTC) - timedelta(minutes=5),
        )
        assert rejected
        await bus.publish_command(command(901))
        await bus.publish_command(command(906, node="sim-node-1"))  # node work (an image pre-pull)
        assert await bus.stream_messages(STREAM_CMD)
        await bus.publish_event(
            RolloutEvent(
                type="create", namespace="default", workload="web", message="m", time="2026-01-01T00:00:00Z"
            ),
            msg_id="plan-1",
        )

        async def nothing(p: int) -> None:
            return None

        claims = PartitionClaims(
            await LeaseStore.open(bus, create=False),
            "planner-t",
            4,
            5,
            on_gained=nothing,
            on_released=nothing,
        )
        await claims.step()
        assert claims.held() == [0, 1, 2, 3]
        await claims.release_all()
    finally:
        await bus.close()
    assert not v.any(), v.seen


async def test_executor_consumes_commands_and_reports(server: NatsServer, admin: Bus) -> None:
    await admin.publish_command(command(902))
    v = Violations()
    bus = await connect(server, natsauth.EXECUTOR, v)
    handled: list[str] = []
    stop = asyncio.Event()

    async def handle(cmd: Command, _: Msg) -> None:
        handled.append(cmd.id)
        await bus.publish_event(
            RolloutEvent(
                type=cmd.verb,
                namespace=cmd.namespace,
                workload=cmd.workload.name,
                message="done",
                time="2026-01-01T00:00:00Z",
            ),
            msg_id=f"done:{cmd.id}",
        )
        if "cmd-902" in handled:
            stop.set()

    try:
        await asyncio.wait_for(
            bus.consume(
                STREAM_CMD,
                natsauth.EXECUTOR_DURABLE,
                filter_subject=bus.subjects.command_all(),
                decoder=COMMAND_DECODER,
                handler=handle,
                stop=stop,
            ),
            10,
        )
    finally:
        await bus.close()
    assert "cmd-902" in handled
    assert not v.any(), v.seen


async def test_viewer_reads_the_event_log(server: NatsServer, admin: Bus) -> None:
    await admin.publish_event(
        RolloutEvent(
            type="create", namespace="default", workload="web", message="m", time="2026-01-01T00:00:00Z"
        ),
        msg_id="view-1",
    )
    v = Violations()
    bus = await connect(server, natsauth.VIEWER, v)
    try:
        assert await bus.stream_messages(STREAM_EVENTS)
        events = bus.subscribe_events()
        ev, _ = await asyncio.wait_for(events.__anext__(), 5)
        await events.aclose()
        assert ev is not None
    finally:
        await bus.close()
    assert not v.any(), v.seen


async def test_a_stock_client_reads_the_event_log_as_viewer(server: NatsServer, admin: Bus) -> None:
    """What docs/bus.md shows: plain nats-py, no inbox prefix, the viewer's password."""
    await admin.publish_event(
        RolloutEvent(
            type="create", namespace="default", workload="web", message="m", time="2026-01-01T00:00:00Z"
        ),
        msg_id="view-2",
    )
    creds = server.credentials(natsauth.VIEWER)
    assert creds is not None
    nc = await nats.connect(server.url, user=creds[0], password=creds[1])
    try:
        sub = await nc.jetstream().subscribe("kb.events.default.>", stream="KB_EVENTS", ordered_consumer=True)
        msg = await sub.next_msg(timeout=5)
        assert EVENT_DECODER.decode(msg.data).workload == "web"
    finally:
        await nc.close()


async def _refused(bus: Bus, v: Violations, action: object) -> None:
    """The action fails (no reply comes to a refused request) and the server says why."""
    assert asyncio.iscoroutine(action)
    with pytest.raises(Exception):  # noqa: B017, PT011 - a timeout or a retry give-up, by operation
        await action
    for _ in range(100):
        if v.any():
            return
        await bus.nc.flush()
    raise AssertionError(f"no permissions violation reported: {v.seen}")


@pytest.mark.parametrize(
    ("user", "what"),
    [
        (natsauth.EXECUTOR, "publish-state"),
        (natsauth.WATCHER, "consume-commands"),
        (natsauth.WATCHER, "publish-command"),
        (natsauth.WEBHOOK, "publish-command"),
        (natsauth.VIEWER, "publish-event"),
        (natsauth.PLANNER, "take-watcher-lease"),
        (natsauth.PLANNER, "create-stream"),
        (natsauth.EXECUTOR, "read-state"),
        (natsauth.NODE_AGENT, "publish-command"),
        (natsauth.NODE_AGENT, "publish-state"),
    ],
)
async def test_forbidden_operations_fail(server: NatsServer, admin: Bus, user: str, what: str) -> None:
    v = Violations()
    bus = await connect(server, user, v)
    try:
        if what == "publish-state":
            action: object = bus.publish_state(pod_state("p-x"))
        elif what == "consume-commands":
            action = _fetch_one(bus)
        elif what == "publish-command":
            action = bus.publish_command(command(903))
        elif what == "publish-event":
            action = bus.publish_event(
                RolloutEvent(
                    type="create",
                    namespace="default",
                    workload="web",
                    message="m",
                    time="2026-01-01T00:00:00Z",
                ),
                msg_id="forged",
            )
        elif what == "take-watcher-lease":
            store = LeaseStore(bus, LeaseStore.bucket_of(bus))
            action = Lease(store, LEASE_WATCHER, "intruder", 5).acquire()
        elif what == "create-stream":
            action = bus.ensure_streams()
        else:
            action = bus.last_per_subject(bus.subjects.state_all(), STATE_DECODER)
        bus.publish_attempts = 1
        await _refused(bus, v, action)
    finally:
        await bus.close(drain=False)


async def _fetch_one(bus: Bus) -> None:
    sub = await bus.js.pull_subscribe_bind(natsauth.EXECUTOR_DURABLE, stream=bus.subjects.stream(STREAM_CMD))
    await sub.fetch(1, timeout=1)


async def test_the_watcher_answers_the_planners_state_barrier_and_nobody_else_can(server: NatsServer) -> None:
    """The barrier is a core request: the planner may ask, the watcher may subscribe and reply to the
    asker's inbox (`allow_responses`), and an executor cannot pose as the watcher."""
    v = Violations()
    watcher, planner = await connect(server, natsauth.WATCHER, v), await connect(server, natsauth.PLANNER, v)
    executor_v = Violations()
    executor = await connect(server, natsauth.EXECUTOR, executor_v)
    stop = asyncio.Event()
    try:
        async def answer(_msg: Msg) -> bytes:
            return b'{"seq": 7}'

        serving = asyncio.create_task(watcher.serve(watcher.subjects.state_sync(), answer, stop=stop))
        reply = None
        deadline = asyncio.get_running_loop().time() + 10
        while reply is None and asyncio.get_running_loop().time() < deadline:
            # until the subscription is in place (the first asks may find no responder)
            reply = await planner.ask(planner.subjects.state_sync(), b"", timeout=2.0)
        assert reply == b'{"seq": 7}'
        assert not v.any(), v.seen
        await executor.nc.subscribe(executor.subjects.state_sync())
        for _ in range(100):
            if executor_v.any():
                break
            await executor.nc.flush()
        assert executor_v.any(), executor_v.seen
        stop.set()
        await serving
    finally:
        stop.set()
        for bus in (watcher, planner, executor):
            await bus.close(drain=False)


async def test_a_user_cannot_read_another_users_replies(server: NatsServer) -> None:
    v = Violations()
    bus = await connect(server, natsauth.VIEWER, v)
    try:
        await bus.nc.subscribe(f"{natsauth.inbox_prefix(natsauth.PLANNER)}.>")
        await bus.nc.flush()
        for _ in range(100):
            if v.any():
                break
            await bus.nc.flush()
        assert v.any(), v.seen
    finally:
        await bus.close(drain=False)


def test_every_permission_names_the_install_prefix() -> None:
    for user in natsauth.SERVICE_USERS + (natsauth.VIEWER,):
        p = natsauth.permissions(user, "other")
        for subject in p.publish + p.subscribe:
            if user == natsauth.VIEWER and subject == "_INBOX.>":
                continue  # stock clients' inbox, for the read-only viewer only
            assert re.search(r"(^|[._])(other|OTHER)[._]|_INBOX_", subject), (user, subject)


def test_docs_carry_the_generated_permissions_table() -> None:
    assert natsauth.permissions_table() in DOCS.read_text(), (
        "docs/operations.md: paste the output of `python -c 'from services.natsauth import permissions_table; "
        "print(permissions_table())'`"
    )


def test_unknown_user_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'sidecar'"):
        natsauth.permissions("sidecar")


async def test_nats_init_creates_the_streams_and_the_lease_bucket(server: NatsServer, admin: Bus) -> None:
    creds = server.credentials(natsauth.ADMIN)
    assert creds is not None
    env = {**os.environ, "KRUISEBUS_NATS_USER": creds[0], "KRUISEBUS_NATS_PASSWORD": creds[1]}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "nats-init",
        "--nats",
        server.url,
        "--prefix",
        "init",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    for stream in ("INIT_STATE", "INIT_CMD", "INIT_EVENTS", "KV_INIT_LEASES"):
        assert (await admin.js.stream_info(stream)).config.name == stream


async def test_node_agent_consumes_its_node_work_and_reports(server: NatsServer, admin: Bus) -> None:
    from schemas.kube import ObjectMeta
    from schemas.messages import PullResultState
    from schemas.nodework import PullResult
    from schemas.subjects import STREAM_NODE
    from services.nodeagent.service import consumer_name

    await admin.publish_command(command(904, node="sim-node-0"))
    v = Violations()
    bus = await connect(server, natsauth.NODE_AGENT, v)
    stop = asyncio.Event()

    async def handle(cmd: Command, _: Msg) -> None:
        await bus.publish_state(
            PullResultState(
                object=PullResult(
                    metadata=ObjectMeta(name="sim-node-0", uid="pull-1", resource_version="1"),
                    node="sim-node-0",
                    image="nginx:1.21",
                    phase="succeeded",
                    command_id=cmd.id,
                )
            )
        )
        await bus.publish_event(
            RolloutEvent(
                type="pull",
                namespace="",
                workload="sim-node-0",
                message="pulled",
                time="2026-01-01T00:00:00Z",
            ),
            msg_id=f"pull:{cmd.id}",
        )
        stop.set()

    try:
        await asyncio.wait_for(
            bus.consume(
                STREAM_NODE,
                consumer_name("sim-node-0"),
                filter_subject=bus.subjects.node_all("sim-node-0"),
                decoder=COMMAND_DECODER,
                handler=handle,
                stop=stop,
            ),
            10,
        )
    finally:
        await bus.close()
    assert stop.is_set()
    assert not v.any(), v.seen


async def test_nats_permissions_prints_the_table_the_server_enforces() -> None:
    """What a chart renders into its NATS server config comes from the same function."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "nats-permissions",
        "--prefix",
        "kb",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    printed = json.loads(out)
    assert set(printed) == set(natsauth.USERS)
    for user in natsauth.USERS:
        p = natsauth.permissions(user, "kb")
        assert printed[user] == {"publish": list(p.publish), "subscribe": list(p.subscribe),
                                 "allow_responses": p.allow_responses}
