"""Every long-running service takes the same service flags (metrics/health listener, NATS), so the
chart and the compose stack can start any of them the same way."""

from __future__ import annotations

import pytest

from services.cli import build_parser

SERVICES = {
    "watcher": [],
    "planner": [],
    "executor": [],
    "webhook": [],
    "prober": ["--node", "n1"],
    "node agent": ["--node", "n1"],
}


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_service_takes_the_metrics_listener_flags(service: str) -> None:
    command = "executor" if service == "node agent" else service
    args = build_parser().parse_args([command, *SERVICES[service], "--metrics-port", "9102"])
    assert args.metrics_port == 9102


@pytest.mark.parametrize("command", ["prober", "executor"])
def test_a_prober_or_node_agent_serves_every_node_it_is_given_once_flags_replacing_the_environment(
        monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    from services.cli import served_nodes

    parser = build_parser()
    monkeypatch.setenv("KRUISEBUS_NODE_NAME", "env-a,env-b")
    assert served_nodes(parser.parse_args([command])) == ["env-a", "env-b"]
    assert served_nodes(parser.parse_args([command, "--node", "b", "--node", "a", "--node", "b"])) == ["b", "a"]
    monkeypatch.delenv("KRUISEBUS_NODE_NAME")
    # `kruisebus prober` refuses to start (exit 2); `kruisebus executor` is then the cluster's executor
    assert served_nodes(parser.parse_args([command])) == []
