"""Dynamic admission as kube-apiserver does it, checked on the sim and (optionally) a real cluster.

A small test webhook (TLS with its own CA, random port) answers per path: allow, deny, patch with a
warning, sleep. Each test registers uniquely named configurations limited by an objectSelector to its
own objects, so tests never see each other's webhooks. The control plane `make test` builds runs on
this machine and reaches the webhook on loopback; another cluster (KRUISEBUS_E2E_KUBECONFIG) must reach
this machine: set KRUISEBUS_E2E_WEBHOOK_HOST to an address of it the cluster can dial (skipped
otherwise). Objects are ConfigMaps created with kubectl, which shows webhook warnings as
`Warning: ...` and denials as kube-apiserver words them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import shutil
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import yaml
from aiohttp import web
from conftest import Cluster
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from services.webhook import certs

KUBECTL = shutil.which("kubectl")
HOST_ENV = "KRUISEBUS_E2E_WEBHOOK_HOST"
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")


@dataclass
class FakeWebhook:
    """A real HTTPS webhook with canned answers per path; records what it was asked."""

    host: str
    bundle: certs.CertBundle
    port: int = 0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://{self.host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        review = msgspec.json.decode(await request.read())
        req = review["request"]
        path = request.path
        self.calls.append((path, req))
        resp: dict[str, Any] = {"uid": req["uid"], "allowed": True}
        obj = req.get("object") or {}
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if path == "/deny":
            resp = {"uid": req["uid"], "allowed": False, "status": {"code": 403, "message": "no thanks"}}
        elif path == "/need-label":  # validating: only objects a mutating webhook labelled
            if labels.get("admitted") != "yes":
                resp = {"uid": req["uid"], "allowed": False, "status": {"message": "not admitted"}}
        elif path == "/patch":
            ops = [{"op": "add", "path": "/metadata/labels/admitted", "value": "yes"}]
            resp.update(patchType="JSONPatch", patch=base64.b64encode(msgspec.json.encode(ops)).decode(),
                        warnings=["patched by test"])
        elif path == "/see-b":  # reinvocation: records whether b's label was there when called
            seen = "yes" if "b" in labels else "no"
            if labels.get("seen-b") != seen:
                op = "replace" if "seen-b" in labels else "add"
                ops = [{"op": op, "path": "/metadata/labels/seen-b", "value": seen}]
                resp.update(patchType="JSONPatch", patch=base64.b64encode(msgspec.json.encode(ops)).decode())
        elif path == "/add-b":
            if "b" not in labels:
                ops = [{"op": "add", "path": "/metadata/labels/b", "value": "1"}]
                resp.update(patchType="JSONPatch", patch=base64.b64encode(msgspec.json.encode(ops)).decode())
        elif path == "/slow":
            await asyncio.sleep(3)  # the slow webhook under test, not a wait for a condition
        return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                  "response": resp})


@dataclass
class Admission:
    cluster: Cluster
    hook: FakeWebhook
    tag: str
    configs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def api(self) -> client.AdmissionregistrationV1Api:
        return client.AdmissionregistrationV1Api(self.cluster.api)

    def entry(self, name: str, path: str, *, ops: list[str] | None = None, policy: str = "Fail",
              url: str | None = None, ca: bytes | None = None, timeout: int = 10,
              resources: list[str] | None = None, mutating: bool = False, reinvoke: bool = False,
              namespace_selector: dict[str, Any] | None = None) -> dict[str, Any]:
        e: dict[str, Any] = {
            "name": f"{name}.{self.tag}.conf.kruisebus.io",
            "clientConfig": {"url": url or self.hook.url(path),
                             "caBundle": base64.b64encode(ca or self.hook.bundle.ca_pem).decode()},
            "rules": [{"operations": ops or ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": resources or ["configmaps"]}],
            "failurePolicy": policy, "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "timeoutSeconds": timeout,
            "objectSelector": {"matchLabels": {"conf-tag": self.tag}},
        }
        if namespace_selector is not None:
            e["namespaceSelector"] = namespace_selector
        if mutating:
            e["reinvocationPolicy"] = "IfNeeded" if reinvoke else "Never"
        return e

    async def register(self, kind: str, name: str, *webhooks: dict[str, Any]) -> None:
        cname = f"{name}-{self.tag}"
        body = {"metadata": {"name": cname}, "webhooks": list(webhooks)}
        if kind == "mutating":
            await self.api.create_mutating_webhook_configuration(body)
        else:
            await self.api.create_validating_webhook_configuration(body)
        self.configs.append((kind, cname))

    def cm(self, name: str, **labels: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": self.cluster.ns,
                             "labels": {"conf-tag": self.tag, **labels}}, "data": {"k": "v"}}

    async def kubectl(self, *args: str, obj: dict[str, Any] | None = None) -> tuple[int, str, str]:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", self.cluster.kubeconfig, *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(yaml.safe_dump(obj).encode() if obj is not None else None)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def create(self, obj: dict[str, Any], *extra: str) -> tuple[int, str, str]:
        return await self.kubectl("create", "-f", "-", *extra, obj=obj)

    async def labels(self, name: str) -> dict[str, str]:
        got = await self.cluster.core.read_namespaced_config_map(name, self.cluster.ns)
        return dict(got.metadata.labels or {})


@pytest.fixture
async def admission(cluster: Cluster) -> AsyncIterator[Admission]:
    # the sim and the control plane `make test` builds run on this machine: they reach loopback
    local = cluster.is_sim or not os.environ.get("KRUISEBUS_E2E_KUBECONFIG")
    host = "127.0.0.1" if local else os.environ.get(HOST_ENV, "")
    if not host:
        pytest.skip(f"{HOST_ENV} is not set: the real cluster cannot reach a local webhook")
    bundle = certs.generate([host, "localhost", f"webhook.{cluster.ns}.svc"], validity=dt.timedelta(hours=1))
    hook = FakeWebhook(host, bundle)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tmp = cluster.kubeconfig + f".{uuid.uuid4().hex[:6]}"
    with open(tmp + ".crt", "wb") as f:
        f.write(bundle.cert_pem)
    with open(tmp + ".key", "wb") as f:
        f.write(bundle.key_pem)
    ctx.load_cert_chain(tmp + ".crt", tmp + ".key")
    app = web.Application()
    app.router.add_post("/{tail:.*}", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host if cluster.is_sim else "0.0.0.0", 0, ssl_context=ctx)
    await site.start()
    assert site._server is not None
    hook.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    adm = Admission(cluster, hook, "t" + uuid.uuid4().hex[:6])  # a letter first: "1e5432" would be a YAML number
    try:
        yield adm
    finally:
        for kind, name in adm.configs:
            if kind == "mutating":
                await adm.api.delete_mutating_webhook_configuration(name)
            else:
                await adm.api.delete_validating_webhook_configuration(name)
        await runner.cleanup()
        for p in (tmp + ".crt", tmp + ".key"):
            os.unlink(p)


def _dead_url() -> str:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"https://127.0.0.1:{port}/x"


async def test_validating_denial_uses_kube_apiserver_words(admission: Admission) -> None:
    await admission.register("validating", "deny", admission.entry("deny", "/deny"))
    code, _, err = await admission.create(admission.cm("c1"))
    assert code != 0
    assert f'admission webhook "deny.{admission.tag}.conf.kruisebus.io" denied the request: no thanks' in err
    with pytest.raises(ApiException) as e:
        await admission.cluster.core.create_namespaced_config_map(admission.cluster.ns, admission.cm("c2"))
    assert e.value.status == 403  # the webhook's status code is the response's
    assert msgspec.json.decode(e.value.body)["message"].endswith("denied the request: no thanks")


async def test_mutating_patch_and_warnings_then_validating_sees_the_patch(admission: Admission) -> None:
    await admission.register("validating", "need", admission.entry("need", "/need-label"))
    code, _, err = await admission.create(admission.cm("c0"))
    assert code != 0 and "not admitted" in err
    await admission.register("mutating", "patch", admission.entry("patch", "/patch", mutating=True))
    code, _, err = await admission.create(admission.cm("c1"))
    assert code == 0, err
    assert "Warning: patched by test" in err
    assert (await admission.labels("c1"))["admitted"] == "yes"
    paths = [p for p, _ in admission.hook.calls]
    assert paths.index("/patch") < len(paths) - 1 and paths[-1] == "/need-label"  # mutating first


async def test_rules_operations_and_object_selector(admission: Admission) -> None:
    await admission.register("validating", "upd", admission.entry("upd", "/deny", ops=["UPDATE"]))
    code, _, err = await admission.create(admission.cm("c1"))
    assert code == 0, err  # CREATE is not in the rule
    other = admission.cm("c2")
    other["metadata"]["labels"] = {"conf-tag": "someone-else"}
    assert (await admission.create(other))[0] == 0
    code, _, err = await admission.kubectl("label", "configmap", "c1", "-n", admission.cluster.ns, "x=1")
    assert code != 0 and "denied the request: no thanks" in err
    code, _, err = await admission.kubectl("label", "configmap", "c2", "-n", admission.cluster.ns, "x=1")
    assert code == 0, err  # objectSelector does not match


async def test_object_selector_matches_the_new_or_the_old_labels(admission: Admission) -> None:
    await admission.register("validating", "upd", admission.entry("upd", "/deny", ops=["UPDATE"]))
    other = admission.cm("c1")
    other["metadata"]["labels"] = {"conf-tag": "someone-else"}
    assert (await admission.create(other))[0] == 0
    ns = admission.cluster.ns
    code, _, err = await admission.kubectl("label", "configmap", "c1", "-n", ns, f"conf-tag={admission.tag}",
                                           "--overwrite")
    assert code != 0 and "no thanks" in err  # the new object matches


async def test_namespace_selector(admission: Admission) -> None:
    sel = {"matchLabels": {f"conf-{admission.tag}": "guarded"}}
    await admission.register("validating", "ns", admission.entry("ns", "/deny", namespace_selector=sel))
    assert (await admission.create(admission.cm("c1")))[0] == 0
    await admission.cluster.core.patch_namespace(
        admission.cluster.ns, {"metadata": {"labels": {f"conf-{admission.tag}": "guarded"}}})
    code, _, err = await admission.create(admission.cm("c2"))
    assert code != 0 and "no thanks" in err


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_failure_policy_for_an_unreachable_webhook(admission: Admission, policy: str) -> None:
    if not admission.cluster.is_sim:
        admission.cluster.require_sim("127.0.0.1 is the API server's own loopback on a real cluster")
    await admission.register("validating", "dead", admission.entry("dead", "", url=_dead_url(), policy=policy))
    code, _, err = await admission.create(admission.cm("c1"))
    name = f"dead.{admission.tag}.conf.kruisebus.io"
    if policy == "Fail":
        assert code != 0
        assert f'Internal error occurred: failed calling webhook "{name}": failed to call webhook: Post "' in err
        assert "connect: connection refused" in err
    else:
        assert code == 0, err


async def test_ca_bundle_is_verified(admission: Admission) -> None:
    stranger = certs.generate(["127.0.0.1"], validity=dt.timedelta(hours=1))
    await admission.register("validating", "ca", admission.entry("ca", "/need-label", ca=stranger.ca_pem))
    code, _, err = await admission.create(admission.cm("c1", admitted="yes"))
    assert code != 0
    assert f'failed calling webhook "ca.{admission.tag}.conf.kruisebus.io"' in err
    assert "certificate" in err or "x509" in err
    assert not admission.hook.calls  # the TLS handshake failed before any request


async def test_timeout_seconds(admission: Admission) -> None:
    await admission.register("validating", "slow", admission.entry("slow", "/slow", timeout=1))
    code, _, err = await admission.create(admission.cm("c1"))
    assert code != 0
    assert "?timeout=1s" in err and "context deadline exceeded" in err


async def test_dry_run_calls_webhooks_and_stores_nothing(admission: Admission) -> None:
    await admission.register("mutating", "patch", admission.entry("patch", "/patch", mutating=True))
    code, out, err = await admission.create(admission.cm("c1"), "--dry-run=server", "-o", "yaml")
    assert code == 0, err
    assert yaml.safe_load(out)["metadata"]["labels"]["admitted"] == "yes"
    assert admission.hook.calls[-1][1]["dryRun"] is True
    assert await admission.cluster.gone(
        lambda: admission.cluster.core.read_namespaced_config_map("c1", admission.cluster.ns))


async def test_reinvocation_if_needed(admission: Admission) -> None:
    # configurations run in name order: "a-..." (IfNeeded) before "b-..."
    await admission.register("mutating", "a", admission.entry("a", "/see-b", mutating=True, reinvoke=True))
    await admission.register("mutating", "b", admission.entry("b", "/add-b", mutating=True))
    code, _, err = await admission.create(admission.cm("c1"))
    assert code == 0, err
    labels = await admission.labels("c1")
    assert labels["b"] == "1" and labels["seen-b"] == "yes"  # a ran again after b changed the object
    assert [p for p, _ in admission.hook.calls] == ["/see-b", "/add-b", "/see-b"]


async def test_delete_is_admitted(admission: Admission) -> None:
    assert (await admission.create(admission.cm("c1")))[0] == 0
    await admission.register("validating", "del", admission.entry("del", "/deny", ops=["DELETE"]))
    code, _, err = await admission.kubectl("delete", "configmap", "c1", "-n", admission.cluster.ns)
    assert code != 0 and "no thanks" in err
    _, req = admission.hook.calls[-1]
    assert req["operation"] == "DELETE" and req["object"] is None and req["oldObject"]["metadata"]["name"] == "c1"


async def test_service_reference_resolves_through_a_service(admission: Admission) -> None:
    """`clientConfig.service`: TLS names `<svc>.<ns>.svc`; the sim dials the Service's targetPort on
    127.0.0.1 (or the `sim.kruisebus.io/address` annotation's host:port)."""
    admission.cluster.require_sim("on the sim, a Service's targetPort is dialled on 127.0.0.1")
    ns = admission.cluster.ns
    await admission.cluster.core.create_namespaced_service(ns, {
        "metadata": {"name": "webhook"}, "spec": {"ports": [{"port": 8443, "targetPort": admission.hook.port}]}})
    entry = admission.entry("svc", "/deny")
    entry["clientConfig"] = {"service": {"namespace": ns, "name": "webhook", "path": "/deny", "port": 8443},
                             "caBundle": base64.b64encode(admission.hook.bundle.ca_pem).decode()}
    await admission.register("validating", "svc", entry)
    code, _, err = await admission.create(admission.cm("c1"))
    assert code != 0 and "denied the request: no thanks" in err, err
    assert admission.hook.calls and admission.hook.calls[-1][0] == "/deny"
