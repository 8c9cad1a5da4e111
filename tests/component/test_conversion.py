"""DaemonSet and SidecarSet served as `apps.kruise.io/v1beta1` through kruisebus' CRD conversion webhook.

The sim stores them as v1alpha1 and, like kube-apiserver, converts every request at v1beta1 through
the webhook the CRD names (the webhook points the CRDs at itself when it registers). kubectl applies
v1beta1 manifests and reads the objects back in either version; a watch at v1beta1 sees v1beta1 events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.messages import Resource
from services.kube import Kube
from services.observe import poll
from tests.component.test_webhook import KUBECTL, Env, webhook_env

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")

V1BETA1_DS = Resource(group="apps.kruise.io", version="v1beta1", plural="daemonsets")
V1ALPHA1_DS = Resource(group="apps.kruise.io", version="v1alpha1", plural="daemonsets")
CRDS = Resource(group="apiextensions.k8s.io", version="v1", plural="customresourcedefinitions", namespaced=False)


def daemonset_v1beta1(name: str = "agent") -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}},
            "scaleStrategy": {"partitionedScaling": True},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
        },
    }


def sidecarset_v1beta1(name: str = "logger") -> dict[str, Any]:
    return {
        "apiVersion": "apps.kruise.io/v1beta1", "kind": "SidecarSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}},
            "customVersion": "v2",
            "containers": [{"name": "logger", "image": "busybox:1.36"}],
        },
    }


@contextlib.asynccontextmanager
async def converting(tmp_path: Path, uid: str, *, start_webhook: bool = True) -> AsyncIterator[Env]:
    async with webhook_env(tmp_path, None, uid, start_webhook=start_webhook) as env:
        if start_webhook:
            await poll(lambda: _conversion_url(env.kube, "sidecarsets.apps.kruise.io"), bool, timeout=20,
                       interval=0.05, what="CRD conversion registered")
        yield env


async def _conversion_url(kube: Kube, crd: str) -> str:
    raw = msgspec.json.decode(await kube.get(CRDS, None, crd))
    cc = raw["spec"]["conversion"]["webhook"]["clientConfig"]
    return str(cc.get("url") or "") if cc.get("caBundle") else ""


async def _get(env: Env, resource: str, name: str, *extra: str) -> dict[str, Any]:
    r = await env.kubectl("get", resource, name, "-o", "json", *extra)
    assert r.code == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


async def test_v1beta1_daemonset_applied_and_read_in_both_versions(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid) as env:
        r = await env.apply(daemonset_v1beta1())
        assert r.code == 0, r.stderr
        alpha = await _get(env, "daemonsets.v1alpha1.apps.kruise.io", "agent", "-n", "default")
        assert alpha["apiVersion"] == "apps.kruise.io/v1alpha1"
        # stored as v1alpha1: partitionedScaling is the annotation, defaults from the mutating webhook
        assert alpha["metadata"]["annotations"]["daemonset.kruise.io/progressive-create-pod"] == "true"
        assert "scaleStrategy" not in alpha["spec"]
        assert alpha["spec"]["updateStrategy"]["rollingUpdate"]["rollingUpdateType"] == "Standard"
        assert alpha["spec"]["revisionHistoryLimit"] == 10
        beta = await _get(env, "daemonsets.v1beta1.apps.kruise.io", "agent", "-n", "default")
        assert beta["apiVersion"] == "apps.kruise.io/v1beta1"
        assert beta["spec"]["scaleStrategy"] == {"partitionedScaling": True}
        assert "daemonset.kruise.io/progressive-create-pod" not in beta["metadata"].get("annotations", {})
        assert beta["metadata"]["uid"] == alpha["metadata"]["uid"]
        assert beta["metadata"]["resourceVersion"] == alpha["metadata"]["resourceVersion"]
        # kubectl's default for the kind is the preferred version, v1beta1, as on kube-apiserver
        default = await _get(env, "ads", "agent", "-n", "default")
        assert default["apiVersion"] == "apps.kruise.io/v1beta1"
        # a second apply (a patch at v1beta1) changes the stored object
        changed = daemonset_v1beta1()
        changed["spec"]["scaleStrategy"] = {}
        r = await env.apply(changed)
        assert r.code == 0, r.stderr
        alpha = await _get(env, "daemonsets.v1alpha1.apps.kruise.io", "agent", "-n", "default")
        assert "daemonset.kruise.io/progressive-create-pod" not in alpha["metadata"].get("annotations", {})


async def test_v1beta1_write_is_admitted_by_the_v1alpha1_webhook(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid) as env:
        bad = daemonset_v1beta1()
        bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        r = await env.apply(bad)
        assert r.code != 0
        assert 'admission webhook "vdaemonset.kb.io" denied the request' in r.stderr


async def test_v1alpha1_daemonset_status_reads_as_update_revision(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid) as env:
        alpha = daemonset_v1beta1("plain")
        alpha["apiVersion"] = "apps.kruise.io/v1alpha1"
        del alpha["spec"]["scaleStrategy"]
        r = await env.apply(alpha)
        assert r.code == 0, r.stderr
        status = {"status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberMisscheduled": 0,
                             "numberReady": 1, "daemonSetHash": "abc123"}}
        await env.kube.patch(V1ALPHA1_DS, "default", "plain", status, patch_type="merge", subresource="status")
        beta = msgspec.json.decode(await env.kube.get(V1BETA1_DS, "default", "plain"))
        assert beta["status"]["updateRevision"] == "abc123"
        assert "daemonSetHash" not in beta["status"]


async def test_v1beta1_sidecarset_applied_and_read_in_both_versions(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid) as env:
        r = await env.apply(sidecarset_v1beta1())
        assert r.code == 0, r.stderr
        alpha = await _get(env, "sidecarsets.v1alpha1.apps.kruise.io", "logger")
        assert alpha["metadata"]["labels"]["apps.kruise.io/sidecarset-custom-version"] == "v2"
        assert "customVersion" not in alpha["spec"]
        assert alpha["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "default"}}
        assert alpha["metadata"]["annotations"]["kruise.io/sidecarset-hash"]  # the webhook's defaulting ran
        beta = await _get(env, "sidecarsets.v1beta1.apps.kruise.io", "logger")
        assert beta["spec"]["customVersion"] == "v2"
        assert "apps.kruise.io/sidecarset-custom-version" not in beta["metadata"].get("labels", {})


async def test_v1alpha1_sidecarset_namespace_reads_as_namespace_selector(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid) as env:
        alpha = sidecarset_v1beta1("scoped")
        alpha["apiVersion"] = "apps.kruise.io/v1alpha1"
        del alpha["spec"]["customVersion"]
        alpha["spec"]["namespace"] = "default"
        alpha["spec"]["namespaceSelector"] = {"matchLabels": {"team": "a"}}
        r = await env.apply(alpha)
        assert r.code == 0, r.stderr
        beta = await _get(env, "sidecarsets.v1beta1.apps.kruise.io", "scoped")
        assert "namespace" not in beta["spec"]
        assert beta["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "default"}}


async def test_watch_at_v1beta1_sees_converted_events(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid) as env:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(env.sim.kubeconfig_path), "get", "daemonsets.v1beta1.apps.kruise.io",
            "-n", "default", "--watch", "-o", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            r = await env.apply(daemonset_v1beta1())
            assert r.code == 0, r.stderr
            assert proc.stdout is not None
            decoder = json.JSONDecoder()
            buf = ""
            seen: dict[str, Any] | None = None

            async def first_object() -> dict[str, Any]:
                nonlocal buf
                assert proc.stdout is not None
                while True:
                    chunk = await proc.stdout.read(4096)
                    assert chunk, "watch ended"
                    buf += chunk.decode()
                    with contextlib.suppress(json.JSONDecodeError):
                        obj, _ = decoder.raw_decode(buf.lstrip())
                        return dict(obj)

            seen = await asyncio.wait_for(first_object(), 20)
            assert seen["apiVersion"] == "apps.kruise.io/v1beta1"
            assert seen["spec"]["scaleStrategy"] == {"partitionedScaling": True}
        finally:
            proc.kill()
            await proc.wait()


async def test_conversion_webhook_down_is_a_500(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid, start_webhook=False) as env:
        r = await env.apply(daemonset_v1beta1())
        assert r.code != 0
        assert "conversion webhook for apps.kruise.io/v1beta1, Kind=DaemonSet failed" in r.stderr
        alpha = daemonset_v1beta1("plain")
        alpha["apiVersion"] = "apps.kruise.io/v1alpha1"
        del alpha["spec"]["scaleStrategy"]
        r = await env.apply(alpha)
        assert r.code == 0, r.stderr  # the storage version needs no conversion
        r = await env.kubectl("get", "daemonsets.v1beta1.apps.kruise.io", "plain", "-n", "default")
        assert r.code != 0
        assert "Error from server (InternalError)" in r.stderr
        assert "conversion webhook for apps.kruise.io/v1alpha1, Kind=DaemonSet failed" in r.stderr
