"""DaemonSet and SidecarSet served as `apps.kruise.io/v1beta1` through kruisebus' CRD conversion webhook.

The sim stores them as v1alpha1 and, like kube-apiserver, converts every request at v1beta1 through
the webhook the CRD names (the webhook points the CRDs at itself when it registers). kubectl applies
v1beta1 manifests and reads the objects back in either version; a watch at v1beta1 sees v1beta1 events.
"""

from __future__ import annotations

import asyncio
import base64
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
from services.webhook.conversion import CRDS
from tests.component.test_webhook import KUBECTL, Env, webhook_env

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")

V1BETA1_DS = Resource(group="apps.kruise.io", version="v1beta1", plural="daemonsets")
V1ALPHA1_DS = Resource(group="apps.kruise.io", version="v1alpha1", plural="daemonsets")


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
        table = await env.kubectl("get", "ads", "-n", "default")
        assert table.code == 0, table.stderr
        assert table.stdout.split()[:2] == ["NAME", "DESIRED"] and "agent" in table.stdout
        # a second apply (a patch at v1beta1) changes the stored object
        changed = daemonset_v1beta1()
        changed["spec"]["scaleStrategy"] = {}
        r = await env.apply(changed)
        assert r.code == 0, r.stderr
        alpha = await _get(env, "daemonsets.v1alpha1.apps.kruise.io", "agent", "-n", "default")
        assert "daemonset.kruise.io/progressive-create-pod" not in alpha["metadata"].get("annotations", {})


async def test_certificate_renewal_repatches_the_crds_ca_bundle(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid) as env:
        await env.server.rotate(env.kube)
        for crd in ("daemonsets.apps.kruise.io", "sidecarsets.apps.kruise.io"):
            raw = msgspec.json.decode(await env.kube.get(CRDS, None, crd))
            cc = raw["spec"]["conversion"]["webhook"]["clientConfig"]
            assert base64.b64decode(cc["caBundle"]) == env.server.ca_bundle()
            assert cc["url"].endswith("/convert") and "service" not in cc
        r = await env.apply(daemonset_v1beta1())  # served with the new certificate, trusted
        assert r.code == 0, r.stderr


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
        # server-side apply at v1beta1 (an apply patch): applied to the v1beta1 form, stored converted
        changed = sidecarset_v1beta1()
        changed["spec"]["customVersion"] = "v3"
        r = await env.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(changed))
        assert r.code == 0, r.stderr
        alpha = await _get(env, "sidecarsets.v1alpha1.apps.kruise.io", "logger")
        assert alpha["metadata"]["labels"]["apps.kruise.io/sidecarset-custom-version"] == "v3"


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

            async def next_object() -> dict[str, Any]:
                nonlocal buf
                assert proc.stdout is not None
                while True:
                    with contextlib.suppress(json.JSONDecodeError):
                        obj, end = decoder.raw_decode(buf.lstrip())
                        buf = buf.lstrip()[end:]
                        return dict(obj)
                    chunk = await proc.stdout.read(4096)
                    assert chunk, "watch ended"
                    buf += chunk.decode()

            seen = await asyncio.wait_for(next_object(), 20)  # from kubectl's list or from the watch
            assert seen["apiVersion"] == "apps.kruise.io/v1beta1"
            # a change written at the storage version now can only reach kubectl as a watch event
            await env.kube.patch(V1ALPHA1_DS, "default", seen["metadata"]["name"],
                                 {"metadata": {"labels": {"watched": "yes"}}}, "merge")
            while seen["metadata"].get("labels", {}).get("watched") != "yes":
                seen = await asyncio.wait_for(next_object(), 20)
            assert seen["apiVersion"] == "apps.kruise.io/v1beta1"
            assert seen["spec"]["scaleStrategy"] == {"partitionedScaling": True}
        finally:
            proc.kill()
            await proc.wait()


async def test_conversion_webhook_down_is_a_500(tmp_path: Path, uid: str) -> None:
    async with converting(tmp_path, uid, start_webhook=False) as env:
        r = await env.apply(daemonset_v1beta1())
        assert r.code != 0
        assert ("Error from server (InternalError): error when creating \"STDIN\": Internal error occurred: "
                "conversion webhook for apps.kruise.io/v1beta1, Kind=DaemonSet failed: Post") in r.stderr
        alpha = daemonset_v1beta1("plain")
        alpha["apiVersion"] = "apps.kruise.io/v1alpha1"
        del alpha["spec"]["scaleStrategy"]
        r = await env.apply(alpha)
        assert r.code == 0, r.stderr  # the storage version needs no conversion
        r = await env.kubectl("get", "daemonsets.v1beta1.apps.kruise.io", "plain", "-n", "default")
        assert r.code != 0
        assert ("Error from server: conversion webhook for apps.kruise.io/v1alpha1, Kind=DaemonSet failed: "
                "Post") in r.stderr


async def _kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", kubeconfig, *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.real
@pytest.mark.timeout(180)
async def test_v1beta1_through_kruisebus_webhook_on_a_real_api_server(real_cluster: Any, uid: str) -> None:
    """The same conversion served to kube-apiserver: the webhook registers (admission and the CRDs'
    conversion), kubectl applies v1beta1 manifests, both versions read back. Everything registered is
    removed again (the control plane is shared by the session)."""
    from services.webhook.conversion import CONVERTED
    from services.webhook.server import (
        MUTATING_CONFIG_NAME,
        MUTATING_CONFIGS,
        VALIDATING_CONFIG_NAME,
        VALIDATING_CONFIGS,
        WebhookOptions,
        WebhookServer,
        run_webhook,
    )

    kubeconfig = real_cluster.kubeconfig
    kube = await Kube.connect(kubeconfig)
    originals = {c.crd_name: msgspec.json.decode(await kube.get(CRDS, None, c.crd_name))["spec"]["conversion"]
                 for c in CONVERTED}
    server = WebhookServer(WebhookOptions(url_host="127.0.0.1"))
    stop = asyncio.Event()
    task = asyncio.create_task(run_webhook(None, kube, server.opts, stop=stop, server=server))
    ns = f"conv-{uid}"
    sidecarset_name = f"logger-{uid}"
    try:
        await poll(lambda: _conversion_url(kube, "daemonsets.apps.kruise.io"), bool, timeout=30, interval=0.2,
                   what="CRD conversion registered")
        code, _, err = await _kubectl(kubeconfig, "create", "namespace", ns)
        assert code == 0, err
        ds = daemonset_v1beta1()
        ds["metadata"]["namespace"] = ns

        async def applied() -> tuple[int, str, str]:
            return await _kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(ds))

        # kube-apiserver picks up the CRD's new clientConfig a moment after the patch
        code, _, err = await poll(applied, lambda r: r[0] == 0, timeout=30, interval=0.5, what="v1beta1 apply")
        v1alpha1 = Resource(group="apps.kruise.io", version="v1alpha1", plural="daemonsets")
        alpha = msgspec.json.decode(await kube.get(v1alpha1, ns, "agent"))
        assert alpha["metadata"]["annotations"]["daemonset.kruise.io/progressive-create-pod"] == "true"
        assert "scaleStrategy" not in alpha["spec"]
        assert alpha["spec"]["revisionHistoryLimit"] == 10  # our mutating webhook saw the write
        beta = msgspec.json.decode(await kube.get(V1BETA1_DS, ns, "agent"))
        assert beta["apiVersion"] == "apps.kruise.io/v1beta1"
        assert beta["spec"]["scaleStrategy"] == {"partitionedScaling": True}
        sc = sidecarset_v1beta1(sidecarset_name)
        code, _, err = await _kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(sc))
        assert code == 0, err
        code, out, err = await _kubectl(kubeconfig, "get", "sidecarsets.v1alpha1.apps.kruise.io", sidecarset_name,
                                        "-o", "json")
        assert code == 0, err
        got = json.loads(out)
        assert got["metadata"]["labels"]["apps.kruise.io/sidecarset-custom-version"] == "v2"
        assert "customVersion" not in got["spec"]
        code, out, err = await _kubectl(kubeconfig, "get", "sidecarsets.v1beta1.apps.kruise.io", sidecarset_name,
                                        "-o", "json")
        assert code == 0, err
        assert json.loads(out)["spec"]["customVersion"] == "v2"
        # the webhook down: the storage version is still served, the other one is a 500 (the sim's words)
        code, _, err = await _kubectl(kubeconfig, "delete", "daemonsets.v1alpha1.apps.kruise.io", "agent", "-n", ns)
        assert code == 0, err
        stop.set()
        await asyncio.wait_for(task, 10)
        code, _, err = await _kubectl(kubeconfig, "get", "sidecarsets.v1alpha1.apps.kruise.io", sidecarset_name)
        assert code == 0, err
        code, _, err = await _kubectl(kubeconfig, "get", "sidecarsets.v1beta1.apps.kruise.io", sidecarset_name)
        assert code != 0
        assert ("Error from server: conversion webhook for apps.kruise.io/v1alpha1, Kind=SidecarSet failed: "
                "Post") in err, err
    finally:
        await _kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false")
        await _kubectl(kubeconfig, "delete", "sidecarsets.v1alpha1.apps.kruise.io", sidecarset_name,
                       "--ignore-not-found")
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        for res, name in ((MUTATING_CONFIGS, MUTATING_CONFIG_NAME), (VALIDATING_CONFIGS, VALIDATING_CONFIG_NAME)):
            with contextlib.suppress(Exception):
                await kube.delete(res, None, name)
        for crd, conversion in originals.items():  # back to the chart's form (no caBundle, no url)
            cc = dict(conversion["webhook"]["clientConfig"])
            cc.setdefault("url", None)
            cc.setdefault("caBundle", None)
            with contextlib.suppress(Exception):
                await kube.patch(CRDS, None, crd, {"spec": {"conversion": {**conversion, "webhook": {
                    **conversion["webhook"], "clientConfig": cc}}}}, patch_type="merge")
        await kube.close()
