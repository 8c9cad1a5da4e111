"""The Grafana dashboards: each parses as a Grafana dashboard (grafana-foundation-sdk's types), uses only
the provisioned datasources, and queries only metrics and span attributes the code emits (checked against
services.metrics and services.telemetry, not a list kept here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import metrics, telemetry

sdk = pytest.importorskip("grafana_foundation_sdk.models.dashboard", reason="grafana-foundation-sdk is not installed")
from grafana_foundation_sdk.cog.plugins import register_default_plugins  # noqa: E402
from grafana_foundation_sdk.models import prometheus, tempo  # noqa: E402

promql = pytest.importorskip("promql_parser", reason="promql-parser is not installed")

register_default_plugins()  # the query types of the datasource plugins (prometheus, tempo, ...)

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = {d["uid"]: d["type"] for d in yaml.safe_load(
    (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text())["datasources"]}
QUERY_TYPES = {"prometheus": prometheus.Dataquery, "tempo": tempo.TempoQuery}

# Span attribute names are the string constants of services.telemetry (its one place for them).
SPAN_ATTRIBUTES = {v for k, v in vars(telemetry).items() if k.isupper() and isinstance(v, str) and "." in v}
TRACEQL_INTRINSICS = {"name", "status", "duration", "kind", "rootName", "rootServiceName", "traceDuration"}


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def targets(dash: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query of every panel, and the template variables' queries."""
    out = [(p["title"], t) for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            out.append((f"${var['name']}", {"datasource": var["datasource"], "expr": var["query"]["query"]}))
    return out


def test_there_are_the_overview_and_the_trace_view() -> None:
    assert {load(p)["uid"] for p in DASHBOARDS} == {"kruisebus-rollouts", "kruisebus-workload-traces"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_parses_as_a_grafana_dashboard(path: Path) -> None:
    raw = load(path)
    dash = sdk.Dashboard.from_json(raw)
    assert dash.uid == raw["uid"] and dash.title == raw["title"]
    panels = [p for p in dash.panels or [] if isinstance(p, sdk.Panel)]
    assert len(panels) == len(raw["panels"]), "every panel is a panel"
    assert len({p.id_val for p in panels}) == len(panels), "panel ids are unique"
    for p in panels:
        assert p.datasource is not None and p.grid_pos is not None, p.title
        for t in p.targets or []:
            assert isinstance(t, QUERY_TYPES[p.datasource.type_val or ""]), (p.title, type(t))
    again = json.loads(json.dumps(dash.to_json(), default=lambda o: o.to_json()))
    assert again["uid"] == raw["uid"] and len(again["panels"]) == len(raw["panels"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_uses_only_the_provisioned_datasources(path: Path) -> None:
    raw = load(path)
    for p in raw["panels"]:
        assert DATASOURCES.get(p["datasource"]["uid"]) == p["datasource"]["type"], p["title"]
    for title, t in targets(raw):
        assert DATASOURCES.get(t["datasource"]["uid"]) == t["datasource"]["type"], title


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects, from its syntax tree (promql-parser).

    Grafana's variables are replaced first as Grafana does before sending the query: `$__rate_interval`
    by a duration; `label_values(metric, label)` (a Grafana templating function) by its metric.
    """
    expr = re.sub(r"label_values\(\s*([^,)]+),[^)]*\)", r"\1", expr)
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    names: list[str] = []
    promql.walk(promql.parse(expr),
                lambda node: names.append(node.name) if isinstance(node, promql.VectorSelector) else None)
    return set(names)


def span_attributes(query: str) -> set[str]:
    return set(re.findall(r"\b(?:span|resource)\.([a-zA-Z0-9_.]+)", query))


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_metric_and_attribute_queried_is_one_the_code_emits(path: Path) -> None:
    for title, t in targets(load(path)):
        if t["datasource"]["type"] == "prometheus":
            names = metric_names(t["expr"])
            assert names, f"{title}: no metric in {t['expr']!r}"
            assert names <= metrics.METRIC_NAMES, f"{title}: {sorted(names - metrics.METRIC_NAMES)} not emitted"
        else:
            query = t["query"]
            if query.startswith("$"):
                continue  # a trace id typed by the user
            attrs = span_attributes(query)
            assert attrs <= SPAN_ATTRIBUTES, f"{title}: {sorted(attrs - SPAN_ATTRIBUTES)} not set by the code"
            bare = set(re.findall(r"(?<![.\w])([a-zA-Z]+)\s*(?:=~|!=|=|>|<)", query))
            assert bare <= TRACEQL_INTRINSICS, f"{title}: unknown intrinsic {sorted(bare - TRACEQL_INTRINSICS)}"


def test_the_trace_view_filters_by_the_workload_attribute() -> None:
    raw = load(ROOT / "deploy" / "grafana" / "dashboards" / "workload-traces.json")
    queries = [t["query"] for _, t in targets(raw) if t["datasource"]["type"] == "tempo"]
    assert any(f'span.{telemetry.KB_WORKLOAD} = "$workload"' in q for q in queries)


def test_a_malformed_query_is_refused() -> None:
    with pytest.raises(ValueError):
        metric_names("sum(rate(kruisebus_planner_passes_total[5m])")


def test_the_name_check_can_fail() -> None:
    assert metric_names('sum by (verb) (rate(kruisebus_no_such_thing_total{verb="x"}[5m]))') == {
        "kruisebus_no_such_thing_total"}
    assert not {"kruisebus_no_such_thing_total"} <= metrics.METRIC_NAMES
    assert span_attributes('{ span.kruisebus.nope = "x" }') - SPAN_ATTRIBUTES == {"kruisebus.nope"}


def test_demo_links_to_the_trace_view() -> None:
    from services.demo import TRACE_DASHBOARD_UID, grafana_trace_url

    raw = load(ROOT / "deploy" / "grafana" / "dashboards" / "workload-traces.json")
    assert raw["uid"] == TRACE_DASHBOARD_UID
    names = {v["name"] for v in raw["templating"]["list"]}
    url = grafana_trace_url("ab" * 16, "sample", base="http://g:3000/")
    assert url == f"http://g:3000/d/{TRACE_DASHBOARD_UID}?var-workload=sample&var-traceId={'ab' * 16}"
    assert {"workload", "traceId"} <= names
