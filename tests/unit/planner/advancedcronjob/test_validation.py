"""AdvancedCronJob admission, row for row with Kruise's webhook tests (validating and mutating handler tests)
and the rules of its validating handler, through the answers the webhook gives (`services.webhook.admission`)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import msgspec
import pytest

from schemas.admission import AdmissionRequest, AdmissionResponse
from schemas.advancedcronjob import AdvancedCronJob
from schemas.broadcastjob import BroadcastJob
from schemas.kinds import BROADCAST_JOB
from services.planner.advancedcronjob.plan import child_body
from services.planner.advancedcronjob.validation import validate_advancedcronjob
from services.planner.broadcastjob.validation import validate_broadcastjob
from services.planner.kit.cron import GoTime
from services.webhook.admission import (
    mutate_advancedcronjob,
    mutate_broadcastjob,
    validate_advancedcronjob_request,
    validate_broadcastjob_request,
)
from sim.patch import json_patch as apply_patch
from tests.unit.planner.advancedcronjob.helpers import acj_dict, t


def request(op: str, obj: dict[str, Any] | None, old: dict[str, Any] | None = None,
            resource: str = "advancedcronjobs") -> AdmissionRequest:
    kind = "AdvancedCronJob" if resource == "advancedcronjobs" else "BroadcastJob"
    return msgspec.convert({
        "uid": "r1", "operation": op, "namespace": "default", "name": "acj",
        "kind": {"group": "apps.kruise.io", "version": "v1alpha1", "kind": kind},
        "resource": {"group": "apps.kruise.io", "version": "v1alpha1", "resource": resource},
        "object": obj, "oldObject": old}, AdmissionRequest)


def valid(**kw: Any) -> dict[str, Any]:
    obj = acj_dict("0 0 * * *", **kw)
    obj.pop("status")
    return obj


def denial(resp: AdmissionResponse) -> str:
    assert not resp.allowed and resp.status is not None
    assert resp.status.code == 422
    return resp.status.message


def patched(resp: AdmissionResponse, obj: dict[str, Any]) -> dict[str, Any]:
    assert resp.allowed
    if resp.patch is None:
        return obj
    ops = msgspec.json.decode(base64.b64decode(resp.patch) if isinstance(resp.patch, str) else resp.patch)
    return apply_patch(copy.deepcopy(obj), ops)


def test_M1_valid_create_is_allowed() -> None:
    assert validate_advancedcronjob_request(request("CREATE", valid())).allowed


def test_M2_empty_schedule() -> None:
    obj = valid()
    obj["spec"]["schedule"] = ""
    assert denial(validate_advancedcronjob_request(request("CREATE", obj))) == (
        '[spec.schedule: Invalid value: "": schedule cannot be empty, please provide valid cron schedule., '
        'spec.schedule: Invalid value: "": empty spec string]')


def test_M3_invalid_schedule() -> None:
    obj = valid()
    obj["spec"]["schedule"] = "invalid-cron"
    assert denial(validate_advancedcronjob_request(request("CREATE", obj))) == (
        'spec.schedule: Invalid value: "invalid-cron": expected exactly 5 fields, found 1: [invalid-cron]')


@pytest.mark.parametrize("schedule", ["xyz", "60 0 * * *", "0 60 * * *", "0 0 * * XYZ"], ids=lambda s: f"M4-{s}")
def test_M4_robfig_errors_are_rejected(schedule: str) -> None:
    obj = valid()
    obj["spec"]["schedule"] = schedule
    assert "spec.schedule: Invalid value" in denial(validate_advancedcronjob_request(request("CREATE", obj)))


@pytest.mark.parametrize(("schedule", "text"), [
    pytest.param("0 0 10 * * *", "expected exactly 5 fields, found 6: [0 0 10 * * *]", id="M5-seconds-field"),
    pytest.param("0 0 * * 7", "end of range (7) above maximum (6): 7", id="M5-seven"),
    pytest.param("@reboot", "unrecognized descriptor: @reboot", id="M5-reboot"),
    pytest.param("TZ=Asia/Shanghai", "invalid cron schedule: runtime error: slice bounds out of range [:-1]",
                 id="parser-panic"),
])
def test_M5_messages(schedule: str, text: str) -> None:
    obj = valid()
    obj["spec"]["schedule"] = schedule
    assert denial(validate_advancedcronjob_request(request("CREATE", obj))).endswith(text)


def test_M6_no_template() -> None:
    obj = valid()
    obj["spec"]["template"] = {}
    assert denial(validate_advancedcronjob_request(request("CREATE", obj))) == (
        "spec.template: Forbidden: spec must have one template, either JobTemplate or BroadcastJobTemplate or "
        "ImageListPullJobTemplate should be provided")


def test_M7_two_templates() -> None:
    obj = valid()
    obj["spec"]["template"]["broadcastJobTemplate"] = acj_dict(broadcast=True)["spec"]["template"]["broadcastJobTemplate"]
    assert denial(validate_advancedcronjob_request(request("CREATE", obj))) == (
        "spec.template: Forbidden: spec can have only one template, either JobTemplate or BroadcastJobTemplate or "
        "ImageListPullJobTemplate should be provided")


def test_M8_v1alpha1_broadcastjob_template_is_allowed() -> None:
    assert validate_advancedcronjob_request(request("CREATE", valid(broadcast=True))).allowed


@pytest.mark.parametrize(("tz", "error"), [
    pytest.param(None, None, id="M9-nil"),
    pytest.param("America/New_York", None, id="M9-new-york"),
    pytest.param("broken", 'spec.timeZone: Invalid value: "broken": unknown time zone broken', id="M9-broken"),
    pytest.param("", 'spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string', id="empty"),
    pytest.param("UTC", None, id="utc"), pytest.param("Etc/GMT+8", None, id="etc-gmt+8"),
    pytest.param("EST5EDT", None, id="est5edt"),
    pytest.param("asia/shanghai", 'spec.timeZone: Invalid value: "asia/shanghai": unknown time zone asia/shanghai',
                 id="case-sensitive"),
])
def test_M9_time_zone(tz: str | None, error: str | None) -> None:
    resp = validate_advancedcronjob_request(request("CREATE", valid(tz=tz)))
    if error is None:
        assert resp.allowed
    else:
        assert denial(resp) == error


def test_local_time_zone_is_rejected() -> None:
    assert denial(validate_advancedcronjob_request(request("CREATE", valid(tz="Local")))) == (
        'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in '
        "https://www.iana.org/time-zones")
    # "Local" loads in Go, so only the explicit-zone rule fires; "local" fails both (independent) checks
    message = denial(validate_advancedcronjob_request(request("CREATE", valid(tz="local"))))
    assert "explicit time zone" in message and "unknown time zone local" in message


@pytest.mark.parametrize("schedule", ["TZ=Asia/Shanghai 0 0 * * *", "CRON_TZ=UTC 0 0 * * *"])
def test_time_zone_with_a_tz_prefix(schedule: str) -> None:
    obj = valid(tz="Asia/Shanghai")
    obj["spec"]["schedule"] = schedule
    assert denial(validate_advancedcronjob_request(request("CREATE", obj))) == (
        f'spec.schedule: Invalid value: "{schedule}": cannot use both timeZone field and TZ or CRON_TZ in schedule')


@pytest.mark.parametrize(("field", "value"), [("startingDeadlineSeconds", -1), ("successfulJobsHistoryLimit", -1),
                                              ("failedJobsHistoryLimit", -2)])
def test_negative_counters(field: str, value: int) -> None:
    obj = valid()
    obj["spec"][field] = value
    assert denial(validate_advancedcronjob_request(request("CREATE", obj))) == (
        f"spec.{field}: Invalid value: {value}: must be greater than or equal to 0")


@pytest.mark.parametrize(("name", "error"), [
    pytest.param("x" * 63, None, id="63-chars"),
    pytest.param("x" * 64, "must be no more than 63 characters", id="64-chars"),
    pytest.param("a.b", "AdvancedCronJob name must consist of alphanumeric characters or '-' (e.g. 'example-com', "
                        "regex used for validation is '^[a-zA-Z0-9\\-]+$')", id="dot"),
])
def test_name(name: str, error: str | None) -> None:
    resp = validate_advancedcronjob_request(request("CREATE", valid(name=name)))
    if error is None:
        assert resp.allowed
    else:
        assert denial(resp) == f'metadata.name: Invalid value: "{name}": {error}'


def test_pod_template_is_validated_under_spec_template() -> None:
    obj = valid()
    obj["spec"]["template"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] = [{"name": "c"}]
    assert denial(validate_advancedcronjob_request(request("CREATE", obj))) == (
        "spec.template.spec.containers[0].image: Required value")


def test_M10_update_without_resource_version() -> None:
    old = valid()
    new = copy.deepcopy(old)
    new["metadata"].pop("resourceVersion")
    assert denial(validate_advancedcronjob_request(request("UPDATE", new, old))) == (
        'metadata.resourceVersion: Invalid value: "": must be specified for an update')


def test_M11_update_of_the_mutable_fields_is_allowed() -> None:
    """M11 changes an imageListPullJobTemplate (v1beta1 only); the spec-level changes it makes are allowed here."""
    old = valid(policy="Replace")
    new = copy.deepcopy(old)
    new["spec"].update(schedule="1 0 * * *", timeZone="Asia/Shanghai", concurrencyPolicy="Forbid",
                       startingDeadlineSeconds=30, paused=True, successfulJobsHistoryLimit=5, failedJobsHistoryLimit=2)
    assert validate_advancedcronjob_request(request("UPDATE", new, old)).allowed


def test_M12_the_job_template_is_immutable() -> None:
    old = valid()
    new = copy.deepcopy(old)
    new["spec"]["template"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    assert denial(validate_advancedcronjob_request(request("UPDATE", new, old))) == (
        "spec: Forbidden: updates to advancedcronjob spec for fields other than 'imageListPullJobTemplate', "
        "'schedule', 'concurrencyPolicy', 'successfulJobsHistoryLimit', 'failedJobsHistoryLimit', "
        "'startingDeadlineSeconds', 'timeZone' and 'paused' are forbidden")


def bare(**kw: Any) -> dict[str, Any]:
    obj = valid(policy=None, paused=None, succ=None, fail=None, **kw)
    return obj


def test_M13_create_gets_spec_and_pod_template_defaults() -> None:
    obj = bare()
    out = patched(mutate_advancedcronjob(request("CREATE", obj)), obj)
    spec = out["spec"]
    assert (spec["concurrencyPolicy"], spec["paused"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    pod = spec["template"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert (c["imagePullPolicy"], c["terminationMessagePath"], c["terminationMessagePolicy"]) == (
        "Always", "/dev/termination-log", "File")
    assert (pod["dnsPolicy"], pod["schedulerName"], pod["securityContext"], pod["terminationGracePeriodSeconds"],
            pod["restartPolicy"]) == ("ClusterFirst", "default-scheduler", {}, 30, "OnFailure")


def test_M14_existing_spec_values_are_kept() -> None:
    obj = valid(policy="Forbid", paused=True, succ=5, fail=2)
    out = patched(mutate_advancedcronjob(request("CREATE", obj)), obj)
    assert (out["spec"]["concurrencyPolicy"], out["spec"]["paused"], out["spec"]["successfulJobsHistoryLimit"],
            out["spec"]["failedJobsHistoryLimit"]) == ("Forbid", True, 5, 2)
    assert out["spec"]["template"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_M15_update_without_template_change_gets_spec_defaults_only() -> None:
    old = bare()
    new = copy.deepcopy(old)
    out = patched(mutate_advancedcronjob(request("UPDATE", new, old)), new)
    assert out["spec"]["concurrencyPolicy"] == "Allow"
    assert out["spec"]["template"] == old["spec"]["template"]


def test_M46_broadcastjob_template_without_restart_policy_is_admitted_and_every_child_refused() -> None:
    obj = valid(broadcast=True)
    del obj["spec"]["template"]["broadcastJobTemplate"]["spec"]["template"]["spec"]["restartPolicy"]
    out = patched(mutate_advancedcronjob(request("CREATE", obj)), obj)
    pod = out["spec"]["template"]["broadcastJobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["containers"][0]["imagePullPolicy"] == "Always"
    assert validate_advancedcronjob_request(request("CREATE", out)).allowed
    a = msgspec.convert(out, AdvancedCronJob)
    body = child_body(a, BROADCAST_JOB, GoTime.of(t("2026-06-01T10:00:00Z")))
    resp = validate_broadcastjob_request(request("CREATE", body, resource="broadcastjobs"))
    assert denial(resp) == ('spec.template.spec.restartPolicy: Invalid value: "Always": pod restartPolicy can only '
                            "be Never or OnFailure")


def test_M47_a_60_char_acj_makes_a_child_name_the_broadcastjob_webhook_refuses() -> None:
    obj = valid(name="a" * 60, broadcast=True)
    assert validate_advancedcronjob_request(request("CREATE", obj)).allowed
    body = child_body(msgspec.convert(obj, AdvancedCronJob), BROADCAST_JOB, GoTime.of(t("2026-06-01T10:00:00Z")))
    assert len(body["metadata"]["name"]) == 71
    errs = validate_broadcastjob(msgspec.convert(body, BroadcastJob))
    assert [str(e) for e in errs] == [f'metadata.name: Invalid value: "{"a" * 60}-1780308000": must be no more than '
                                      "63 characters"]


def test_the_planner_applies_the_same_rules() -> None:
    obj = valid()
    obj["spec"]["schedule"] = "0 0 * * 7"
    errs = validate_advancedcronjob(msgspec.convert(obj, AdvancedCronJob))
    assert [e.field for e in errs] == ["spec.schedule"]


def test_broadcastjob_defaults() -> None:
    obj = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "BroadcastJob",
           "metadata": {"name": "b", "namespace": "default"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}
    out = patched(mutate_broadcastjob(request("CREATE", obj, resource="broadcastjobs")), obj)
    assert out["spec"]["parallelism"] == 2**31 - 1
    assert out["spec"]["completionPolicy"] == {"type": "Always"}
    assert out["spec"]["failurePolicy"] == {"type": "FailFast"}


@pytest.mark.parametrize(("change", "message"), [
    ({"completionPolicy": {"type": "Never", "ttlSecondsAfterFinished": 5}},
     "spec.completionPolicy.ttlSecondsAfterFinished: Invalid value: 5: ttlSecondsAfterFinished can only work with "
     "Always CompletionPolicyType"),
    ({"completionPolicy": {"type": "Never", "activeDeadlineSeconds": 5}},
     "spec.completionPolicy.activeDeadlineSeconds: Invalid value: 5: activeDeadlineSeconds can only work with Always "
     "CompletionPolicyType"),
    ({"parallelism": "abc"}, "spec.parallelism: Invalid value"),
], ids=["never-with-ttl", "never-with-deadline", "bad-parallelism"])
def test_broadcastjob_rules(change: dict[str, Any], message: str) -> None:
    obj = {"metadata": {"name": "b", "namespace": "default"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}},
                    **change}}
    assert denial(validate_broadcastjob_request(request("CREATE", obj, resource="broadcastjobs"))).startswith(message)
