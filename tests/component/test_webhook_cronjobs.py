"""AdvancedCronJob and BroadcastJob admission at `kubectl apply`: `kruisebus webhook` behind the sim's admission
chain (the same setup as tests/component/test_webhook.py), with Kruise's webhook names and messages."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.component.test_webhook import Env, env  # noqa: F401  (fixture)


def acj(name: str = "nightly", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"schedule": "30 2 * * *", "timeZone": "Asia/Shanghai", "template": {"jobTemplate": {
        "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                                       "containers": [{"name": "main", "image": "busybox"}]}}}}}}
    base.update(spec)
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "AdvancedCronJob",
            "metadata": {"name": name, "namespace": "default"}, "spec": base}


async def test_defaults_are_visible_in_kubectl_get(env: Env) -> None:  # noqa: F811
    r = await env.apply(acj())
    assert r.code == 0, r.stderr
    got = await env.kubectl("get", "acj", "nightly", "-o", "yaml")
    spec = yaml.safe_load(got.stdout)["spec"]
    assert (spec["concurrencyPolicy"], spec["paused"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    pod = spec["template"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["imagePullPolicy"] == "Always" and pod["dnsPolicy"] == "ClusterFirst"


@pytest.mark.parametrize(("case", "spec", "message"), [
    ("unknown-zone", {"timeZone": "Mars/Base"}, 'spec.timeZone: Invalid value: "Mars/Base": unknown time zone Mars/Base'),
    ("tz-twice", {"schedule": "TZ=UTC 0 0 * * *"},
     'spec.schedule: Invalid value: "TZ=UTC 0 0 * * *": cannot use both timeZone field and TZ or CRON_TZ in schedule'),
    ("seven", {"schedule": "0 0 * * 7"}, 'spec.schedule: Invalid value: "0 0 * * 7": end of range (7) above maximum (6): 7'),
])
async def test_invalid_acj_rejected_at_apply(env: Env, case: str, spec: dict[str, Any], message: str) -> None:  # noqa: F811
    r = await env.apply(acj(name=case, **spec))
    assert r.code != 0
    assert f'admission webhook "vadvancedcronjob.kb.io" denied the request: {message}' in r.stderr


async def test_the_job_template_is_immutable(env: Env) -> None:  # noqa: F811
    assert (await env.apply(acj())).code == 0
    changed = acj()
    changed["spec"]["template"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    r = await env.apply(changed)
    assert r.code != 0 and "updates to advancedcronjob spec for fields other than" in r.stderr
    assert (await env.apply(acj(schedule="0 3 * * *"))).code == 0  # the schedule may change


async def test_broadcastjob_restart_policy(env: Env) -> None:  # noqa: F811
    bj = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "BroadcastJob", "metadata": {"name": "sweep", "namespace": "default"},
          "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}}}
    r = await env.apply(bj)
    assert r.code != 0
    assert ('admission webhook "vbroadcastjob.kb.io" denied the request: spec.template.spec.restartPolicy: Invalid '
            'value: "Always": pod restartPolicy can only be Never or OnFailure') in r.stderr
