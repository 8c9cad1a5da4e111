"""compose.yaml and the observability stack it wires: valid against the compose-spec JSON schema, every
kruisebus service scraped and traced, every file it mounts present."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services import rbac
from services.cli import build_parser
from sim.cluster import kubeconfig_dict

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (via check-jsonschema) is not installed")
vendor = pytest.importorskip("check_jsonschema.builtin_schemas.vendor",
                             reason="check-jsonschema (it ships the compose-spec schema) is not installed")

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
KRUISEBUS = {n: s for n, s in SERVICES.items() if s.get("image") == "kruisebus:local" and n != "sim"}


def compose_schema() -> dict[str, Any]:
    import json

    return dict(json.loads((Path(vendor.__file__).parent / "compose-spec.json").read_text()))


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    errors = sorted(jsonschema.Draft7Validator(compose_schema()).iter_errors(COMPOSE), key=str)
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


def test_the_schema_check_can_fail() -> None:
    bad = {"services": {"nats": {"image": "nats", "ports": "4222:4222", "restart": "sometimes"}}}
    assert list(jsonschema.Draft7Validator(compose_schema()).iter_errors(bad))


def test_stack_has_nats_sim_every_service_and_the_observability_backends() -> None:
    assert {"nats", "sim", "otel-collector", "tempo", "prometheus", "grafana"} <= set(SERVICES)
    sim_nodes = int(SERVICES["sim"]["command"][SERVICES["sim"]["command"].index("--nodes") + 1])
    agents = {f"node-agent-{i}" for i in range(sim_nodes)}
    deployments = {s for s in rbac.SERVICES if s not in ("node-agent", "prober")}  # not yet: the prober
    assert set(KRUISEBUS) == deployments | agents
    assert "-js" in SERVICES["nats"]["command"]
    for name, svc in KRUISEBUS.items():
        args = build_parser().parse_args(svc["command"])
        if name in agents:
            assert (args.command, args.node, args.runtime) == ("executor", [f"sim-node-{name.rsplit('-', 1)[1]}"], "sim")
        else:
            assert args.command == name
        env = svc["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        assert env["OTEL_SERVICE_NAME"] == f"kruisebus-{name.rstrip('-0123456789')}"
        assert env["KRUISEBUS_NATS"] == "nats://nats:4222"


def test_prometheus_scrapes_every_service_at_its_metrics_port() -> None:
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:{svc['environment']['KRUISEBUS_METRICS_PORT']}" for name, svc in KRUISEBUS.items()}


def test_kubeconfig_is_the_sims_own_for_the_sim_service() -> None:
    port = SERVICES["sim"]["command"][SERVICES["sim"]["command"].index("--port") + 1]
    mounted = yaml.safe_load((ROOT / "deploy" / "compose" / "kubeconfig.yaml").read_text())
    assert mounted == kubeconfig_dict(f"http://sim:{port}")


def test_every_mounted_file_exists() -> None:
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


def test_collector_exports_to_tempo_and_grafana_has_both_datasources() -> None:
    otel = yaml.safe_load((ROOT / "deploy" / "otel" / "config.yaml").read_text())
    assert otel["exporters"]["otlp/tempo"]["endpoint"] == "tempo:4317"
    assert otel["service"]["pipelines"]["traces"]["exporters"] == ["otlp/tempo"]
    ds = yaml.safe_load((ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text())
    assert {(d["uid"], d["type"], d["url"]) for d in ds["datasources"]} == {
        ("tempo", "tempo", "http://tempo:3200"), ("prometheus", "prometheus", "http://prometheus:9090")}
