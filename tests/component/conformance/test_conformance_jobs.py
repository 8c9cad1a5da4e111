"""batch/v1 Jobs, run by the sim's Job controller and kubelets (`[sim]`) and by kube-controller-manager 1.20
with the sim's kubelets as its nodes (`[real]`): what a workload that creates Jobs sees.

The pods' containers run to completion through the sim's annotations on the Job's pod template
(`sim.kruisebus.io/run-seconds`, `sim.kruisebus.io/exit-code`), which the simulated kubelets honour on
both variants; the same pods carry a `sleep N; exit C` command for a cluster with real kubelets
(`KRUISEBUS_E2E_KUBECONFIG`).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from typing import Any

import pytest
from conftest import Cluster
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from sim.nodes import ANNOTATION_EXIT_CODE, ANNOTATION_RUN_SECONDS

KUBECTL = shutil.which("kubectl")
IMAGE = "busybox:1.36"


def job(
    name: str, *, run: float = 0.3, exit_code: int = 0, restart: str = "Never", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            **spec,
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {ANNOTATION_RUN_SECONDS: str(run), ANNOTATION_EXIT_CODE: str(exit_code)},
                },
                "spec": {
                    "restartPolicy": restart,
                    "terminationGracePeriodSeconds": 1,
                    # the annotations drive the sim's kubelets; a real kubelet runs the command
                    "containers": [
                        {"name": "work", "image": IMAGE, "command": ["sh", "-c", f"sleep {run}; exit {exit_code}"]}
                    ],
                },
            },
        },
    }


def batch(cluster: Cluster) -> client.BatchV1Api:
    return client.BatchV1Api(cluster.api)


async def raw_job(cluster: Cluster, name: str) -> dict[str, Any]:
    """The Job as JSON (the typed model drops nothing here, but dicts compare more plainly)."""
    return dict(cluster.api.sanitize_for_serialization(await batch(cluster).read_namespaced_job(name, cluster.ns)))


def condition(j: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (j.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


async def finished(cluster: Cluster, name: str, timeout: float | None = None) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        j = await raw_job(cluster, name)
        return j if condition(j, "Complete") or condition(j, "Failed") else None

    result: dict[str, Any] = await cluster.wait_for(done, timeout=timeout, what=f"job {name} to finish")
    return result


async def job_pods(cluster: Cluster, j: dict[str, Any]) -> list[dict[str, Any]]:
    uid = j["metadata"]["uid"]
    pods = await cluster.core.list_namespaced_pod(cluster.ns, label_selector=f"controller-uid={uid}")
    return [cluster.api.sanitize_for_serialization(p) for p in pods.items]


def assert_failed_counts_the_deleted_pod(cluster: Cluster, j: dict[str, Any]) -> None:
    """A Job that fails with a pod still running deletes it and counts it in `failed`. kube-controller-
    manager 1.20 often ends at 0 instead: the pod's deletion event reaches it before its own status
    write, and the next pass, from its stale copy of the Job, fails the Job again with no active pod and
    overwrites the status (one `DeadlineExceeded`/`BackoffLimitExceeded` Event, count 2). The sim's
    controller reads the store it writes, so it keeps the 1."""
    failed = j["status"].get("failed", 0)
    if cluster.is_sim:
        assert failed == 1, j["status"]
    else:
        assert failed in (0, 1), j["status"]


async def test_job_is_defaulted_and_selects_its_pods_by_controller_uid(cluster: Cluster) -> None:
    created = batch(cluster).create_namespaced_job(cluster.ns, job("defaults"))
    j = cluster.api.sanitize_for_serialization(await created)
    spec, uid = j["spec"], j["metadata"]["uid"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["selector"] == {"matchLabels": {"controller-uid": uid}}
    assert spec["template"]["metadata"]["labels"] == {"app": "defaults", "controller-uid": uid, "job-name": "defaults"}
    # a Job without labels gets its template's, the generated ones too (defaulted again on the read back)
    assert j["metadata"]["labels"] == spec["template"]["metadata"]["labels"]


async def test_job_has_a_generation(cluster: Cluster) -> None:
    await cluster.require_version(21, "Jobs have metadata.generation since 1.21")
    created = await batch(cluster).create_namespaced_job(cluster.ns, job("gen"))
    assert created.metadata.generation == 1


async def test_job_with_restart_policy_always_is_invalid(cluster: Cluster) -> None:
    bad = job("always")
    del bad["spec"]["template"]["spec"]["restartPolicy"]  # defaulted to Always, which a Job may not have
    with pytest.raises(ApiException) as e:
        await batch(cluster).create_namespaced_job(cluster.ns, bad)
    assert e.value.status == 422
    body = json.loads(e.value.body)
    assert body["reason"] == "Invalid"
    assert (
        'Job.batch "always" is invalid: spec.template.spec.restartPolicy: Required value: '
        'valid values: "OnFailure", "Never"'
    ) == body["message"], body
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": 'Required value: valid values: "OnFailure", "Never"',
            "field": "spec.template.spec.restartPolicy",
        }
    ]


async def test_job_with_completions_3_and_parallelism_2_completes(cluster: Cluster) -> None:
    await batch(cluster).create_namespaced_job(cluster.ns, job("three", run=0.5, completions=3, parallelism=2))
    seen_active: list[int] = []

    async def done() -> dict[str, Any] | None:
        j = await raw_job(cluster, "three")
        seen_active.append(int((j.get("status") or {}).get("active") or 0))
        return j if condition(j, "Complete") or condition(j, "Failed") else None

    j = await cluster.wait_for(done, what="job three to finish")
    status = j["status"]
    assert condition(j, "Failed") is None
    complete = condition(j, "Complete")
    assert complete is not None and complete["status"] == "True"
    assert status["succeeded"] == 3
    assert not status.get("failed") and not status.get("active")
    assert status["startTime"] <= status["completionTime"]
    assert max(seen_active) <= 2
    pods = await job_pods(cluster, j)
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["name"].startswith("three-")
        assert p["metadata"]["labels"]["job-name"] == "three"
        (ref,) = p["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "Job", "three", j["metadata"]["uid"], True, True)
        assert p["status"]["phase"] == "Succeeded"
        (cs,) = p["status"]["containerStatuses"]
        assert cs["state"]["terminated"]["exitCode"] == 0
        assert cs["state"]["terminated"]["reason"] == "Completed"
        assert cs["ready"] is False


async def test_failing_job_with_backoff_limit_0_fails_at_the_first_failure(cluster: Cluster) -> None:
    await batch(cluster).create_namespaced_job(cluster.ns, job("fails", exit_code=2, backoffLimit=0))
    j = await finished(cluster, "fails")
    failed = condition(j, "Failed")
    assert failed is not None
    assert (failed["status"], failed["reason"], failed["message"]) == (
        "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert condition(j, "Complete") is None
    assert j["status"]["failed"] == 1 and not j["status"].get("succeeded")
    assert "completionTime" not in j["status"] or j["status"]["completionTime"] is None
    (p,) = await job_pods(cluster, j)
    assert p["status"]["phase"] == "Failed"
    term = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (2, "Error")


@pytest.mark.slow
async def test_failing_job_retries_backoff_limit_times(cluster: Cluster) -> None:
    """backoffLimit 2: three pods fail, then the Job does (on kube-controller-manager the retries wait
    10 s and 20 s: the work queue's back-off)."""
    await batch(cluster).create_namespaced_job(cluster.ns, job("retries", exit_code=1, backoffLimit=2))
    j = await finished(cluster, "retries", timeout=None if cluster.is_sim else 120)
    failed = condition(j, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert j["status"]["failed"] == 3
    pods = await job_pods(cluster, j)
    assert sorted(p["status"]["phase"] for p in pods) == ["Failed"] * 3


async def test_job_past_active_deadline_fails_and_its_pod_is_deleted(cluster: Cluster) -> None:
    await batch(cluster).create_namespaced_job(cluster.ns, job("deadline", run=120, activeDeadlineSeconds=2))
    t0 = time.monotonic()
    j = await finished(cluster, "deadline", timeout=30 if cluster.is_sim else 90)
    assert time.monotonic() - t0 >= 1.0  # not before the deadline (startTime has second precision)
    failed = condition(j, "Failed")
    assert failed is not None
    assert (failed["reason"], failed["message"]) == ("DeadlineExceeded", "Job was active longer than specified deadline")
    assert not j["status"].get("active")
    assert_failed_counts_the_deleted_pod(cluster, j)

    async def pods_gone() -> bool:
        return not [p for p in await job_pods(cluster, j) if not p["metadata"].get("deletionTimestamp")]

    await cluster.wait_for(pods_gone, what="the running pod of the failed job to be deleted")


async def test_deleting_a_job_without_a_policy_orphans_its_pods(cluster: Cluster) -> None:
    """batch/v1 Jobs' default GC policy is Orphan (kubectl sends Background explicitly)."""
    await batch(cluster).create_namespaced_job(cluster.ns, job("orphans", run=120))
    j = await raw_job(cluster, "orphans")

    async def one_pod() -> list[dict[str, Any]] | None:
        pods = await job_pods(cluster, j)
        return pods if pods else None

    (pod,) = await cluster.wait_for(one_pod, what="the job's pod")
    await batch(cluster).delete_namespaced_job("orphans", cluster.ns)
    await cluster.wait_for(lambda: cluster.gone(lambda: batch(cluster).read_namespaced_job("orphans", cluster.ns)),
                           what="the job to be deleted")

    async def orphaned() -> bool:
        p = await cluster.core.read_namespaced_pod(pod["metadata"]["name"], cluster.ns)
        return not p.metadata.owner_references and not p.metadata.deletion_timestamp

    await cluster.wait_for(orphaned, what="the pod to lose its owner reference and stay")


async def test_deleting_a_job_in_the_foreground_deletes_its_pods_first(cluster: Cluster) -> None:
    await batch(cluster).create_namespaced_job(cluster.ns, job("fg", run=120, parallelism=2, completions=2))
    j = await raw_job(cluster, "fg")

    async def two_pods() -> bool:
        return len(await job_pods(cluster, j)) == 2

    await cluster.wait_for(two_pods, what="the job's two pods")
    await batch(cluster).delete_namespaced_job("fg", cluster.ns, propagation_policy="Foreground")
    held = await raw_job(cluster, "fg")
    assert held["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in held["metadata"]["finalizers"]
    await cluster.wait_for(lambda: cluster.gone(lambda: batch(cluster).read_namespaced_job("fg", cluster.ns)),
                           what="the job to be deleted")
    assert await job_pods(cluster, j) == []


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
async def test_kubectl_get_jobs_prints_completions_and_duration(cluster: Cluster) -> None:
    await batch(cluster).create_namespaced_job(cluster.ns, job("printed", run=0.3, completions=2, parallelism=2))
    j = await finished(cluster, "printed")
    assert condition(j, "Complete") is not None

    def kubectl(*args: str) -> str:
        assert KUBECTL is not None
        out = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "-n", cluster.ns, *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    lines = (await asyncio.to_thread(kubectl, "get", "jobs")).splitlines()
    assert lines[0].split() == ["NAME", "COMPLETIONS", "DURATION", "AGE"]
    name, completions, duration, age = lines[1].split()
    assert (name, completions) == ("printed", "2/2")
    assert duration.endswith("s") and duration[:-1].isdigit()
    assert age.endswith("s")
    wide = (await asyncio.to_thread(kubectl, "get", "jobs", "-o", "wide")).splitlines()
    assert wide[0].split() == ["NAME", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    cells = wide[1].split()
    assert cells[4:] == ["work", IMAGE, f"controller-uid={j['metadata']['uid']}"]


@pytest.mark.slow
async def test_on_failure_job_fails_when_restarts_reach_the_backoff_limit(cluster: Cluster) -> None:
    """restartPolicy OnFailure: the pod is restarted in place, and the kubelet's restart count is what
    counts against backoffLimit (the second restart comes after the kubelet's 10 s back-off)."""
    await batch(cluster).create_namespaced_job(
        cluster.ns, job("crashes", exit_code=1, restart="OnFailure", backoffLimit=2))
    j = await finished(cluster, "crashes", timeout=90)
    failed = condition(j, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert not j["status"].get("active"), j["status"]
    assert_failed_counts_the_deleted_pod(cluster, j)

    async def pod_deleted() -> bool:
        return not [p for p in await job_pods(cluster, j) if not p["metadata"].get("deletionTimestamp")]

    await cluster.wait_for(pod_deleted, what="the crashing pod to be deleted")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
async def test_kubectl_create_job(cluster: Cluster) -> None:
    """`kubectl create job` sends the Job as protobuf."""
    def create() -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "-n", cluster.ns, "create", "job",
                               "made", f"--image={IMAGE}", "--", "sleep", "1"],
                              capture_output=True, text=True, timeout=60)

    out = await asyncio.to_thread(create)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "job.batch/made created"
    j = await raw_job(cluster, "made")
    (c,) = j["spec"]["template"]["spec"]["containers"]
    assert (c["name"], c["image"], c["command"]) == ("made", IMAGE, ["sleep", "1"])
    assert j["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "priority" not in j["spec"]["template"]["spec"]

    async def has_pod() -> bool:
        return len(await job_pods(cluster, j)) == 1

    await cluster.wait_for(has_pod, what="the job's pod")
