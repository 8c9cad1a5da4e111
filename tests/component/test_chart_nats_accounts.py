"""The NATS accounts the Helm chart renders, enforced by a real nats-server: it starts with the chart's
accounts.conf included (passwords from its environment, as in the bundled NATS's pod), each service
may do what it does, and a publish or subscribe outside its permissions fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from services.names import EXECUTOR, WATCHER
from services.natsd import NatsServer
from services.observe import poll
from tests.unit.deploy.test_chart_nats import accounts_conf, auth_values, render

PASSWORDS = {"ADMIN": "pw-admin", "WATCHER": "pw-watcher", "PLANNER": "pw-planner", "EXECUTOR": "pw-executor",
             "WEBHOOK": "pw-webhook", "NODE_AGENT": "pw-agent", "PROBER": "pw-prober", "VIEWER": "pw-viewer"}


class ChartNats(NatsServer):
    """nats-server with a main config that includes the chart's accounts.conf, as the nats chart's does."""

    def _config_args(self) -> list[str]:
        conf_dir = self.workdir / "nats-config"
        (self.workdir / "kruisebus-nats").mkdir(exist_ok=True)
        conf_dir.mkdir(exist_ok=True)
        (self.workdir / "kruisebus-nats" / "accounts.conf").write_text(accounts_conf(render(auth_values("kb"))))
        (conf_dir / "nats.conf").write_text("{\n  include ../kruisebus-nats/accounts.conf;\n"
                                            '  "jetstream": {"max_memory_store": 1073741824}\n}\n')
        return ["-c", str(conf_dir / "nats.conf")]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChartNats]:
    for user, password in PASSWORDS.items():
        monkeypatch.setenv(f"KRUISEBUS_NATS_PASSWORD_{user}", password)
    s = ChartNats(tmp_path / "nats")
    (tmp_path / "nats").mkdir()
    s.start()
    try:
        yield s
    finally:
        s.cleanup()


async def connect(server: ChartNats, service: str, password: str, errors: list[Exception]) -> nats.NATS:
    async def on_error(e: Exception) -> None:
        errors.append(e)

    return await nats.connect(server.url, user=f"kb-{service}", password=password, error_cb=on_error,
                              inbox_prefix=f"_INBOX_kb-{service}".encode(), allow_reconnect=False)


async def wait_for(errors: list[Exception], text: str) -> str:
    """The server reports a violation asynchronously: poll the client's error reports for it."""

    async def found() -> list[str]:
        return [str(e) for e in errors if text in str(e)]

    return (await poll(found, bool, timeout=5, interval=0.01, what=f"an error containing {text!r}"))[0]


async def test_server_enforces_the_rendered_permissions(server: ChartNats) -> None:
    errors: list[Exception] = []
    watcher = await connect(server, WATCHER, "pw-watcher", errors)
    executor = await connect(server, EXECUTOR, "pw-executor", errors)
    try:
        got: list[str] = []

        async def collect(msg: nats.aio.msg.Msg) -> None:
            got.append(msg.subject)

        admin_errors: list[Exception] = []
        admin = await connect(server, "admin", "pw-admin", admin_errors)
        await admin.subscribe("kb.>", cb=collect)
        await admin.flush()
        await watcher.publish("kb.state.default._.pod.p1", b"{}")  # the watcher's own subject
        await watcher.flush()
        await executor.publish("kb.state.default._.pod.p2", b"{}")  # not the executor's
        await executor.flush()
        message = await wait_for(errors, "permissions violation for publish")
        assert "kb.state.default._.pod.p2" in message
        await executor.subscribe("kb.state.>")  # nor may it read the state
        await executor.flush()
        await wait_for(errors, "permissions violation for subscription")
        # A callback runs after its message is read: the admin's own sentinel, sent after the server refused
        # the executor, marks the end of everything that could have reached the subscription.
        await admin.publish("kb.sentinel", b"")
        async def received() -> list[str]:
            return list(got)

        await poll(received, lambda subjects: "kb.sentinel" in subjects, timeout=5, interval=0.01,
                   what="the admin's sentinel")
        assert got == ["kb.state.default._.pod.p1", "kb.sentinel"]
        await admin.close()
    finally:
        await watcher.close()
        await executor.close()


async def test_a_wrong_password_or_no_user_is_refused(server: ChartNats) -> None:
    with pytest.raises(nats.errors.Error):
        await nats.connect(server.url, user="kb-watcher", password="wrong", allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=2)
    with pytest.raises(nats.errors.Error):
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
