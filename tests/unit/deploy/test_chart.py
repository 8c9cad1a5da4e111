"""The Helm chart, rendered and linted with Helm's own library: valid for the Kubernetes minors it
supports, restricted Pod Security, least-privilege RBAC equal to the services' API calls, Kruise's
values reaching the services' flags, and the values schema refusing bad values by name."""

from __future__ import annotations

import importlib.metadata
import shlex
from typing import Any

import pytest
import yaml

from services import rbac
from services.cli import build_parser
from services.planner.kit.gates import parse_feature_gates
from tests.unit.deploy import pss
from tests.unit.deploy.chart import (
    ALL_ON,
    CHART,
    NAMESPACE,
    component,
    crd_files,
    crds,
    helm,
    notes,
    of_kind,
    render,
)

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")

OLDEST, NEWEST = "1.25.0", "1.37.0"  # Chart.yaml kubeVersion >=1.25; the newest schema kubernetes-validate has
WORKLOAD_KINDS = ("Deployment", "DaemonSet")


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def container(doc: dict[str, Any]) -> dict[str, Any]:
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return c


def test_lint_has_no_errors() -> None:
    result = helm.lint(str(CHART), {"bus": {"url": "nats://nats:4222"}})
    assert result["errors"] == []
    failing = [m for m in result["messages"] if m["severity"] >= 3]
    assert failing == []


def test_chart_declares_the_kube_versions_the_tests_validate() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["kubeVersion"] == f">={OLDEST}-0"
    assert meta["appVersion"] == importlib.metadata.version("kruisebus")


@pytest.mark.parametrize("version", [OLDEST, NEWEST], ids=["oldest", "newest"])
@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-on"])
def test_every_manifest_is_valid_kubernetes(version: str, values: dict[str, Any]) -> None:
    docs = render(values) + crds()
    assert docs
    for d in docs:
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{d['kind']} {d['metadata']['name']} invalid for Kubernetes {version}: {e.message}")


def test_chart_ships_every_crd_in_crds_dir() -> None:
    on_disk = sorted(f"crds/{p.name}" for p in (CHART / "crds").glob("*.yaml"))
    assert on_disk and crd_files() == on_disk
    assert {d["kind"] for d in crds()} == {"CustomResourceDefinition"}


HOST_SOCKET = ["volume cri-socket has type ['hostPath']"]


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-on"])
def test_every_workload_is_restricted_pss(values: dict[str, Any]) -> None:
    """Restricted, except the node's CRI socket for the services that talk to its runtime (the
    prober's exec probes): the only departure, and only that one."""
    found = workloads(render(values))
    assert {component(d) for d in found} >= {"watcher", "planner", "executor", "webhook"}
    for d in found:
        allowed = HOST_SOCKET if component(d) == "prober" else []
        assert pss.violations(d["spec"]["template"]["spec"]) == allowed, d["metadata"]["name"]


def test_pss_check_catches_a_privileged_pod() -> None:
    """The check itself can fail: a root, privileged container with a hostPath volume is refused."""
    d = workloads(render({"securityContext": {"privileged": True, "allowPrivilegeEscalation": True},
                          "podSecurityContext": {"runAsUser": 0}}))[0]
    found = pss.violations(d["spec"]["template"]["spec"])
    assert any("privileged" in v for v in found) and any("runAsUser is 0" in v for v in found)


def test_daemonsets_are_off_by_default_and_switch_on_by_values() -> None:
    assert of_kind(render(), "DaemonSet") == {}
    daemons = of_kind(render(ALL_ON), "DaemonSet")
    assert {component(d) for d in daemons.values()} == {"node-agent", "prober"}
    for d in daemons.values():
        assert "--node=$(NODE_NAME)" in container(d)["args"]
        assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in container(d)["env"]
    (agent,) = [d for d in daemons.values() if component(d) == "node-agent"]
    args = build_parser().parse_args(_service_args(agent))
    assert (args.command, args.node, args.runtime, args.pull_namespace) == (
        "executor", ["$(NODE_NAME)"], "kube", NAMESPACE)


def test_node_agent_with_the_cri_runtime_mounts_the_socket_and_reads_pull_secrets() -> None:
    docs = render({"nodeAgent": {"enabled": True, "runtime": "cri", "criSocket": "/var/run/crio/crio.sock"}})
    (agent,) = of_kind(docs, "DaemonSet").values()
    args = build_parser().parse_args(_service_args(agent))
    assert (args.runtime, args.cri_socket) == ("cri", "/var/run/crio/crio.sock")
    pod = agent["spec"]["template"]["spec"]
    # the one departure from the restricted standard, and only with this runtime: the node's socket
    assert pss.violations(pod) == HOST_SOCKET
    role = [d for d in of_kind(docs, "ClusterRole").values() if component(d) == "node-agent"][0]
    assert _normalized(role["rules"]) == {(c.group, c.resource, v, c.resource_names) for c in rbac.table()
                                          if c.service == rbac.NODE_AGENT_CRI for v in c.verbs}
    for version in (OLDEST, NEWEST):
        kubernetes_validate.validate(agent, version, strict=True)


def test_every_object_has_the_recommended_labels() -> None:
    for d in render(ALL_ON):
        labels = d["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"):
            assert key in labels, f"{d['kind']} {d['metadata']['name']} has no {key}"
    for d in workloads(render(ALL_ON)):
        assert set(d["spec"]["selector"]["matchLabels"]) == {
            "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}


def _service_args(d: dict[str, Any]) -> list[str]:
    return [str(a) for a in container(d)["args"]]


def test_every_deployments_args_parse_with_the_kruisebus_cli() -> None:
    """What the chart passes is what `kruisebus <service>` accepts (no flag renamed under it)."""
    for d in of_kind(render(ALL_ON), "Deployment").values():
        args = build_parser().parse_args(_service_args(d))
        assert args.command == component(d)


def test_feature_gates_reach_the_planner_and_the_webhook() -> None:
    gates = "PreDownloadImageForInPlaceUpdate=true,CloneSetShortHash=true"
    deployments = {component(d): d for d in of_kind(render({"featureGates": gates}), "Deployment").values()}
    for name in ("planner", "webhook"):
        args = build_parser().parse_args(_service_args(deployments[name]))
        assert args.feature_gates == gates, shlex.join(_service_args(deployments[name]))
        parse_feature_gates(args.feature_gates)
    without = {component(d): d for d in of_kind(render(), "Deployment").values()}
    assert build_parser().parse_args(_service_args(without["planner"])).feature_gates == ""


def test_manager_image_overrides_reach_every_container() -> None:
    docs = render({**ALL_ON, "manager": {"image": {"repository": "registry.local/kb", "tag": "v9"}}})
    assert {container(d)["image"] for d in workloads(docs)} == {"registry.local/kb:v9"}


def test_probes_and_metrics_use_the_health_listener() -> None:
    for d in workloads(render(ALL_ON)):
        c = container(d)
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"name": "KRUISEBUS_METRICS_PORT", "value": "8080"} in c["env"]
        assert d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8080"


def test_pod_disruption_budgets_only_for_replicated_services() -> None:
    pdbs = {component(d) for d in of_kind(render(), "PodDisruptionBudget").values()}
    assert pdbs == {"watcher", "planner", "executor", "webhook"}
    pdbs = {component(d) for d in of_kind(render({"watcher": {"replicas": 1}}), "PodDisruptionBudget").values()}
    assert "watcher" not in pdbs


def test_otel_settings_reach_the_services() -> None:
    docs = render({"otel": {"endpoint": "http://otel-collector:4318", "sampler": "parentbased_always_on"}})
    for d in workloads(docs):
        env = {e["name"]: e.get("value") for e in container(d)["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
        assert env["OTEL_SERVICE_NAME"] == f"kruisebus-{component(d)}"


AUTH = {"bus": {"streamReplicas": 3, "auth": {
    "enabled": True,
    "users": {"executor": {"user": "kb-executor", "secretName": "kb-nats", "secretKey": "executor"}},
    "admin": {"user": "kb-admin", "secretName": "kb-nats", "secretKey": "admin"}}}}


def test_per_service_nats_users_reach_their_pods() -> None:
    docs = render(AUTH)
    by = {component(d): d for d in workloads(docs)}
    env = {e["name"]: e.get("value") for e in container(by["executor"])["env"]}
    assert env["KRUISEBUS_NATS_USER"] == "kb-executor"
    assert env["KRUISEBUS_NATS_PASSWORD_FILE"] == "/etc/kruisebus/nats/password"
    assert env["KRUISEBUS_ENSURE_STREAMS"] == "false" and env["KRUISEBUS_STREAM_REPLICAS"] == "3"
    (secret,) = [v["secret"] for v in by["executor"]["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert secret == {"secretName": "kb-nats", "items": [{"key": "executor", "path": "password"}]}
    assert "KRUISEBUS_NATS_USER" not in {e["name"] for e in container(by["planner"])["env"]}


@pytest.mark.parametrize("version", [OLDEST, NEWEST], ids=["oldest", "newest"])
def test_nats_init_job_creates_the_streams_as_admin(version: str) -> None:
    (job,) = of_kind(render(AUTH), "Job").values()
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["nats-init"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["KRUISEBUS_NATS_USER"] == "kb-admin"
    assert pss.violations(pod) == []
    assert pod["automountServiceAccountToken"] is False
    kubernetes_validate.validate(job, version, strict=True)
    assert of_kind(render(), "Job") == {}


def test_nats_auth_without_an_admin_is_a_clear_error() -> None:
    with pytest.raises(helm.HelmError) as info:
        render({"bus": {"auth": {"enabled": True}}})
    assert "bus.auth.admin" in str(info.value)


def test_nats_subchart_url_when_enabled() -> None:
    """With nats.enabled the services reach the release's NATS Service (the vendored dependency itself:
    tests/unit/deploy/test_chart_nats.py)."""
    deps = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    assert [(d["name"], d["condition"]) for d in deps] == [("nats", "nats.enabled")]
    docs = render({"bus": {"url": ""}, "nats": {"enabled": True}})
    for d in workloads(docs):
        if d["metadata"]["labels"].get("app.kubernetes.io/part-of") != "kruisebus":
            continue  # the nats chart's own (nats-box)
        env = {e["name"]: e.get("value") for e in container(d)["env"]}
        assert env["KRUISEBUS_NATS"] == f"nats://kb-nats.{NAMESPACE}.svc:4222"
    text = notes()
    assert "nats://nats.nats.svc:4222" in text and "external" in text


# --- least privilege -------------------------------------------------------------------------------


def _normalized(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """(group, resource, verb, resourceNames) for every permission the rules grant."""
    return {(g, r, v, tuple(rule.get("resourceNames") or ()))
            for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_rbac_file_is_generated_from_the_table() -> None:
    assert (CHART / "files" / "rbac.yaml").read_text() == rbac.chart_file(), \
        "deploy/helm/kruisebus/files/rbac.yaml is stale: run `python -m services.rbac --write`"


def test_webhooks_file_is_generated_from_the_endpoint_table() -> None:
    from services.webhook import endpoints

    assert (CHART / "files" / "webhooks.yaml").read_text() == endpoints.chart_file(), \
        "deploy/helm/kruisebus/files/webhooks.yaml is stale: run `python -m services.webhook.endpoints --write`"


def test_each_services_cluster_role_is_exactly_its_api_calls() -> None:
    docs = render(ALL_ON)
    roles = {component(d): d for d in of_kind(docs, "ClusterRole").values()}
    bindings = {component(d): d for d in of_kind(docs, "ClusterRoleBinding").values()}
    accounts = {component(d): d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount").values()}
    assert set(accounts) == set(rbac.SERVICES)
    assert "nats-init" in {component(d) for d in of_kind(render(AUTH), "ServiceAccount").values()}
    for service in rbac.SERVICES:
        want = {(c.group, c.resource, v, c.resource_names) for c in rbac.table() if c.service == service
                for v in c.verbs}
        got = _normalized(roles[service]["rules"]) if service in roles else set()
        assert got - want == set(), f"{service}: granted beyond its calls"
        assert want - got == set(), f"{service}: calls it is not granted"
        if service in roles:
            subject = bindings[service]["subjects"][0]
            assert (subject["name"], subject["namespace"]) == (accounts[service], NAMESPACE)
            assert bindings[service]["roleRef"]["name"] == roles[service]["metadata"]["name"]


def test_only_services_with_api_calls_get_a_token() -> None:
    for d in workloads(render(ALL_ON)):
        has_calls = any(c.service == component(d) for c in rbac.table())
        assert d["spec"]["template"]["spec"]["automountServiceAccountToken"] is has_calls


def test_table_covers_every_watched_kind_and_every_planned_workload() -> None:
    from schemas.kinds import LISTED, WORKLOADS

    watched = {(c.group, c.resource) for c in rbac.table() if c.service == rbac.WATCHER}
    assert watched == {(k.resource.group, k.resource.plural) for k in LISTED if k.resource}
    executed = {(c.group, c.resource) for c in rbac.table() if c.service == rbac.EXECUTOR}
    for k in WORKLOADS:
        if k.resource:
            assert {(k.resource.group, k.resource.plural), (k.resource.group, k.resource.plural + "/status")} <= executed


# --- webhook ---------------------------------------------------------------------------------------


def test_webhook_configurations_match_what_the_webhook_registers() -> None:
    from datetime import timedelta

    from services.planner.kit.gates import DEFAULT_GATES
    from services.webhook.server import WebhookOptions, WebhookServer

    docs = render({"webhook": {"podHook": True}})
    opts = WebhookOptions(host="127.0.0.1", port=0, service_name="kb-kruisebus-webhook",
                          service_namespace=NAMESPACE, url_host=None, cert_dir=None,
                          cert_validity=timedelta(days=1), failure_policy="Fail", pod_hook=True, gates=DEFAULT_GATES)
    server = WebhookServer(opts)
    server.bundle = server.new_bundle()
    for _, desired in server.configurations():
        rendered = of_kind(docs, desired["kind"])[desired["metadata"]["name"]]
        strip = [{**w, "clientConfig": {k: v for k, v in w["clientConfig"].items() if k != "caBundle"}}
                 for w in desired["webhooks"]]
        assert rendered["webhooks"] == strip
    (svc,) = of_kind(docs, "Service").values()
    assert svc["metadata"]["name"] == "kb-kruisebus-webhook"
    assert svc["spec"]["ports"][0]["port"] == 443


# --- values schema ---------------------------------------------------------------------------------

BAD_VALUES = [
    ("feature-gates-syntax", {"featureGates": "PreDownloadImageForInPlaceUpdate"}, "/featureGates"),
    ("nats-url-scheme", {"bus": {"url": "http://nats:4222"}}, "/bus/url"),
    ("typo-in-key", {"watcher": {"replica": 3}}, "'replica' not allowed"),
    ("negative-replicas", {"planner": {"replicas": -1}}, "/planner/replicas"),
    ("failure-policy", {"webhook": {"failurePolicy": "Sometimes"}}, "/webhook/failurePolicy"),
    ("pull-policy", {"manager": {"image": {"pullPolicy": "Sometimes"}}}, "/manager/image/pullPolicy"),
    ("metrics-port", {"metrics": {"port": 70000}}, "/metrics/port"),
    ("sampler-ratio", {"otel": {"samplerArg": "2"}}, "/otel/samplerArg"),
    ("nats-user-service", {"bus": {"auth": {"users": {"palnner": {"user": "u", "secretName": "s",
                                                                  "secretKey": "k"}}}}}, "palnner"),
]


@pytest.mark.parametrize(("values", "where"), [(v, w) for _, v, w in BAD_VALUES], ids=[i for i, _, _ in BAD_VALUES])
def test_values_schema_rejects_bad_values_by_name(values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render(values)
    assert where in str(info.value)


def test_no_nats_at_all_is_a_clear_error() -> None:
    with pytest.raises(helm.HelmError) as info:
        render({"bus": {"url": ""}})
    assert "bus.url" in str(info.value) and "nats.enabled" in str(info.value)


def test_cert_manager_is_optional_and_feeds_the_webhooks_cert_source() -> None:
    assert [d for d in render() if d["apiVersion"].startswith("cert-manager.io/")] == []
    docs = render({"webhook": {"certManager": {"enabled": True}}})
    certs = of_kind(docs, "Certificate")
    serving = certs["kb-kruisebus-webhook-cert"]
    assert "kb-kruisebus-webhook.kruisebus-system.svc" in serving["spec"]["dnsNames"]
    assert {d["metadata"]["name"] for d in of_kind(docs, "Issuer").values()} == {
        "kb-kruisebus-selfsigned", serving["spec"]["issuerRef"]["name"]}
    (webhook,) = [d for d in of_kind(docs, "Deployment").values() if component(d) == "webhook"]
    args = build_parser().parse_args(_service_args(webhook))
    pod = webhook["spec"]["template"]["spec"]
    (mount,) = [m for m in container(webhook)["volumeMounts"] if m["name"] == "webhook-certs"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "webhook-certs"]
    assert args.cert_source == mount["mountPath"]
    assert volume["secret"]["secretName"] == serving["spec"]["secretName"]
    assert pss.violations(pod) == []
    for d in docs:
        if not d["apiVersion"].startswith("cert-manager.io/"):
            kubernetes_validate.validate(d, NEWEST, strict=True)
    external = render({"webhook": {"certManager": {"enabled": True,
                                                   "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}})
    assert of_kind(external, "Issuer") == {}
    assert of_kind(external, "Certificate")["kb-kruisebus-webhook-cert"]["spec"]["issuerRef"] == {
        "name": "corp-ca", "kind": "ClusterIssuer"}


def test_prober_args_parse_with_the_kruisebus_cli() -> None:
    parser = build_parser()
    (prober,) = [d for d in of_kind(render(ALL_ON), "DaemonSet").values() if component(d) == "prober"]
    args = parser.parse_args(_service_args(prober))
    assert (args.command, args.node, args.runtime) == ("prober", ["$(NODE_NAME)"], "cri")  # one node per pod
