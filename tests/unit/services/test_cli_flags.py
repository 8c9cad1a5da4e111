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


def test_a_prober_serves_every_node_it_is_given_once_flags_replacing_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from services.cli import prober_nodes

    parser = build_parser()
    monkeypatch.setenv("KRUISEBUS_NODE_NAME", "env-a,env-b")
    assert prober_nodes(parser.parse_args(["prober"])) == ["env-a", "env-b"]
    assert prober_nodes(parser.parse_args(["prober", "--node", "b", "--node", "a", "--node", "b"])) == ["b", "a"]
    monkeypatch.delenv("KRUISEBUS_NODE_NAME")
    assert prober_nodes(parser.parse_args(["prober"])) == []  # `kruisebus prober` refuses to start (exit 2)
