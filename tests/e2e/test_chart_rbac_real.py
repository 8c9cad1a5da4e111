"""Least privilege, proven on a real API server (kube-apiserver with RBAC): the chart's ServiceAccounts,
ClusterRoles and bindings are applied as rendered, each service runs with its own ServiceAccount's
token, the seed rollout completes without a single 401/403 (nothing missing), and each token is
allowed exactly the calls of `services.rbac` and refused others (nothing extra)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import yaml

from schemas.messages import CLONESETS, Resource
from services import rbac
from services.kube import Kube, KubeConflict
from services.stack import Stack
from tests.conftest import RealCluster
from tests.e2e.test_seed_rollout import check_seed_rollout

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.real, pytest.mark.timeout(300)]
chart = pytest.importorskip("tests.unit.deploy.chart")

NAMESPACE = chart.NAMESPACE
NAMESPACES = Resource(plural="namespaces", namespaced=False)
SERVICE_ACCOUNTS = Resource(plural="serviceaccounts")
CLUSTER_ROLES = Resource(group="rbac.authorization.k8s.io", version="v1", plural="clusterroles", namespaced=False)
BINDINGS = Resource(group="rbac.authorization.k8s.io", version="v1", plural="clusterrolebindings", namespaced=False)
SSAR = Resource(group="authorization.k8s.io", version="v1", plural="selfsubjectaccessreviews", namespaced=False)
RUNS_ON_KUBE = ("watcher", "executor", "webhook")

# Calls no service makes: each token must be refused them.
DENIED = [
    ("watcher", "", "pods", "create", ""), ("watcher", "apps.kruise.io", "clonesets", "patch", ""),
    ("watcher", "", "secrets", "list", ""),
    ("executor", "", "pods", "list", ""), ("executor", "apps.kruise.io", "clonesets", "delete", ""),
    ("executor", "", "secrets", "get", ""), ("executor", "apps.kruise.io", "clonesets", "create", ""),
    ("webhook", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch", "someone-elses"),
    ("webhook", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "delete",
     "kruisebus-validating-webhook-configuration"),
    ("webhook", "", "pods", "list", ""),
    ("planner", "", "pods", "get", ""), ("node-agent", "", "nodes", "list", ""),
    ("node-agent", "", "secrets", "get", ""), ("node-agent", "", "pods", "patch", ""),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _apply(kube: Kube, resource: Resource, namespace: str | None, body: dict[str, Any]) -> None:
    try:
        await kube.create(resource, namespace, body)
    except KubeConflict:
        await kube.delete(resource, namespace, body["metadata"]["name"])
        await kube.create(resource, namespace, body)


def _kubeconfig(real: RealCluster, token: str) -> dict[str, Any]:
    admin = yaml.safe_load(Path(real.kubeconfig).read_text())
    cluster = admin["clusters"][0]
    return {"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
            "current-context": "sa"}


@pytest.fixture
async def tokens(real_cluster: RealCluster, tmp_path: Path) -> AsyncIterator[dict[str, Path]]:
    """The chart's RBAC objects applied; service -> a kubeconfig with its ServiceAccount's token."""
    docs = chart.render(chart.ALL_ON)
    admin = await Kube.connect(real_cluster.kubeconfig)
    created: list[tuple[Resource, str | None, str]] = []
    try:
        try:
            await admin.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": NAMESPACE}})
        except KubeConflict:
            pass
        for kind, resource, ns in (("ServiceAccount", SERVICE_ACCOUNTS, NAMESPACE), ("ClusterRole", CLUSTER_ROLES, None),
                                   ("ClusterRoleBinding", BINDINGS, None)):
            for d in chart.of_kind(docs, kind).values():
                await _apply(admin, resource, ns, d)
                created.append((resource, ns, d["metadata"]["name"]))
        out: dict[str, Path] = {}
        for d in chart.of_kind(docs, "ServiceAccount").values():
            raw = await admin.request(
                "POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{d['metadata']['name']}/token",
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": {"expirationSeconds": 3600}})
            token = msgspec.json.decode(raw)["status"]["token"]
            path = tmp_path / f"{chart.component(d)}.kubeconfig"
            path.write_text(yaml.safe_dump(_kubeconfig(real_cluster, token)))
            out[chart.component(d)] = path
        yield out
    finally:
        for resource, ns, name in reversed(created):
            try:
                await admin.delete(resource, ns, name)
            except Exception:  # noqa: BLE001 - best-effort cleanup of a shared cluster
                pass
        await admin.close()


async def _allowed(kubeconfig: Path, group: str, resource: str, verb: str, name: str) -> bool:
    plural, _, sub = resource.partition("/")
    attrs = {"group": group, "resource": plural, "verb": verb, "namespace": "default"}
    if sub:
        attrs["subresource"] = sub
    if name:
        attrs["name"] = name
    kube = await Kube.connect(str(kubeconfig))
    try:
        raw = await kube.create(SSAR, None, {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                             "spec": {"resourceAttributes": attrs}})
    finally:
        await kube.close()
    return bool(msgspec.json.decode(raw)["status"].get("allowed"))


async def test_each_token_is_allowed_exactly_its_services_calls(tokens: dict[str, Path]) -> None:
    for call in rbac.table():
        if call.service not in tokens:  # the node agent's cri-runtime role (the chart renders kube's)
            continue
        for verb in call.verbs:
            name = call.resource_names[0] if call.resource_names else ""
            assert await _allowed(tokens[call.service], call.group, call.resource, verb, name), \
                f"{call.service} may not {verb} {call.group}/{call.resource} {name}"
    for service, group, resource, verb, name in DENIED:
        assert not await _allowed(tokens[service], group, resource, verb, name), \
            f"{service} may {verb} {group}/{resource} {name}: more than its calls"


async def test_seed_rollout_with_each_service_on_its_own_service_account(
        real_cluster: RealCluster, tokens: dict[str, Path], tmp_path: Path) -> None:
    ports = {name: _free_port() for name in RUNS_ON_KUBE}
    args = {name: ("--kubeconfig", str(tokens[name]), "--metrics-port", str(ports[name]),
                   "--metrics-host", "127.0.0.1") for name in RUNS_ON_KUBE}
    stack = Stack(workdir=tmp_path / "stack", cluster=real_cluster.kubeconfig, nodes=0, service_args=args)
    try:
        await stack.start()
        kube = await Kube.connect(real_cluster.kubeconfig)
        try:
            await check_seed_rollout(stack, kube, grace_seconds=1)
            await kube.delete(CLONESETS, "default", "sample")
        finally:
            await kube.close()
        for name, port in ports.items():
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                    assert r.status == 200, f"{name} is not ready"
                async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                    text = await r.text()
            calls = [line for line in text.splitlines() if line.startswith("kruisebus_kube_requests_total{")]
            assert calls, f"{name} made no API call"
            refused = [line for line in calls if 'code="403"' in line or 'code="401"' in line]
            assert refused == [], f"{name} was refused: {refused}"
    except BaseException:
        for name in ("watcher", "executor", "webhook"):
            print(f"--- {name} log ---\n{stack.log_tail(name, 40)}")
        raise
    finally:
        await stack.stop()

