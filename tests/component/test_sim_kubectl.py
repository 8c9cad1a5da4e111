"""The real kubectl against `python -m sim` running as a process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")

CLONESET = """
apiVersion: apps.kruise.io/v1alpha1
kind: CloneSet
metadata:
  name: demo
  labels: {app: demo}
spec:
  replicas: 5
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
      - name: main
        image: nginx:1.25
  updateStrategy:
    type: InPlaceIfPossible
    partition: 3
    maxUnavailable: 20%
"""

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: main
    image: nginx:1.25
"""

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("simproc")
    kubeconfig = tmp / "kubeconfig"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = tmp / "sim.log"
    with (
        log.open("w") as err,
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sim",
                "--nodes",
                "2",
                "--port",
                "0",
                "--kubeconfig",
                str(kubeconfig),
                "--pull-delay",
                "0.05",
                "--start-delay",
                "0.05",
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            cwd=tmp,
        ) as proc,
    ):
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()  # one JSON line once the server is ready
            if not line:
                proc.wait(5)
                pytest.fail(f"sim did not start: {log.read_text()}")
            info = json.loads(line)
            assert info["url"].startswith("http://127.0.0.1:")
            assert Path(info["kubeconfig"]) == kubeconfig.resolve()
            info["home"] = str(tmp)
            yield info
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0, log.read_text()  # clean exit on SIGTERM
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.fixture
def kubectl(sim_process: dict[str, str]) -> Kubectl:
    env = dict(os.environ, HOME=sim_process["home"], KUBECONFIG=sim_process["kubeconfig"])

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        r = subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True, env=env, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {r.stderr}")
        return r

    return run


def wait(pred: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def test_kubeconfig_is_accepted(kubectl: Kubectl, sim_process: dict[str, str]) -> None:
    cfg = yaml.safe_load(Path(sim_process["kubeconfig"]).read_text())
    assert cfg["current-context"] == "kruisebus-sim"
    assert kubectl("config", "current-context").stdout.strip() == "kruisebus-sim"
    out = kubectl("get", "pods", "-A")
    assert out.returncode == 0
    nodes = kubectl("get", "nodes").stdout
    assert "sim-node-0" in nodes and "Ready" in nodes
    assert "clonesets" in kubectl("api-resources").stdout


def test_apply_get_describe_pod(kubectl: Kubectl) -> None:
    assert "pod/web created" in kubectl("apply", "-f", "-", stdin=POD).stdout
    # Running comes before Ready (the sim's readiness follows the container start, as a kubelet's does)
    wait(lambda: "1/1" in kubectl("get", "pod", "web").stdout)
    table = kubectl("get", "pods", "-o", "wide").stdout
    assert table.split("\n")[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "web" in table and "1/1" in table and "sim-node-" in table
    pod = yaml.safe_load(kubectl("get", "pod", "web", "-o", "yaml").stdout)
    assert pod["status"]["containerStatuses"][0]["imageID"].startswith("nginx:1.25@sha256:")
    desc = kubectl("describe", "pod", "web").stdout
    assert "Status:" in desc and "Running" in desc and "Scheduled" in desc and "Started" in desc
    # apply an image change: in-place restart
    assert "configured" in kubectl("apply", "-f", "-", stdin=POD.replace("1.25", "1.26")).stdout
    wait(
        lambda: (
            kubectl("get", "pod", "web", "-o", "jsonpath={.status.containerStatuses[0].restartCount}").stdout
            == "1"
        )
    )
    # a forbidden change is rejected with Kubernetes' message
    bad = kubectl(
        "patch", "pod", "web", "-p", '{"spec":{"containers":[{"name":"main","command":["sh"]}]}}', check=False
    )
    assert bad.returncode != 0
    assert 'The Pod "web" is invalid: spec: Forbidden: pod updates may not change fields' in bad.stderr
    # failed JSON patch test op
    jp = kubectl(
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        '[{"op":"test","path":"/metadata/name","value":"other"}]',
        check=False,
    )
    assert jp.returncode != 0
    assert "the server rejected our request due to an error in our request" in jp.stderr
    kubectl("label", "pod", "web", "tier=frontend")
    assert "frontend" in kubectl("get", "pods", "-L", "tier").stdout
    kubectl("delete", "pod", "web", "--wait=false")
    wait(lambda: "web" not in kubectl("get", "pods").stdout)


def test_cloneset_with_kubectl(kubectl: Kubectl) -> None:
    assert "cloneset.apps.kruise.io/demo created" in kubectl("apply", "-f", "-", stdin=CLONESET).stdout
    out = kubectl("get", "clone").stdout.split("\n")
    assert out[0].split() == [
        "NAME",
        "DESIRED",
        "UPDATED",
        "UPDATED_READY",
        "UPDATED_AVAILABLE",
        "READY",
        "TOTAL",
        "AGE",
    ]
    assert out[1].split()[:2] == ["demo", "5"]
    assert "demo" in kubectl("get", "clonesets", "-A").stdout
    wide = kubectl("get", "clone", "demo", "-o", "wide").stdout
    assert "nginx:1.25" in wide and "IMAGES" in wide
    obj = yaml.safe_load(kubectl("get", "clone", "demo", "-o", "yaml").stdout)
    assert obj["spec"]["updateStrategy"] == {
        "type": "InPlaceIfPossible",
        "partition": 3,
        "maxUnavailable": "20%",
    }
    assert obj["metadata"]["generation"] == 1
    kubectl("apply", "-f", "-", stdin=CLONESET.replace("replicas: 5", "replicas: 6"))
    kubectl("patch", "clone", "demo", "--type=merge", "-p", '{"spec":{"updateStrategy":{"partition":1}}}')
    kubectl("scale", "clone", "demo", "--replicas=2")
    obj = json.loads(kubectl("get", "clone", "demo", "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 2 and obj["spec"]["updateStrategy"]["partition"] == 1
    assert obj["metadata"]["generation"] == 4
    assert "Name:" in kubectl("describe", "clone", "demo").stdout
    kubectl("delete", "clone", "demo")
    assert "No resources found" in kubectl("get", "clone").stderr


def test_namespaces_and_typed_create(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "team-a")  # kubectl sends protobuf here
    kubectl("-n", "team-a", "create", "configmap", "cfg", "--from-literal=k=v")
    assert json.loads(kubectl("-n", "team-a", "get", "cm", "cfg", "-o", "json").stdout)["data"] == {"k": "v"}
    kubectl("delete", "namespace", "team-a")
    wait(lambda: "team-a" not in kubectl("get", "ns").stdout)


def test_get_label_columns_yaml_and_watch(kubectl: Kubectl, sim_process: dict[str, str]) -> None:
    pod = POD.replace("name: web", "name: watched").replace(
        "labels: {app: web}", "labels: {app: watched, controller-revision-hash: demo-5f7b8c9d}"
    )
    env = dict(os.environ, HOME=sim_process["home"], KUBECONFIG=sim_process["kubeconfig"])
    assert KUBECTL is not None
    with subprocess.Popen(
        [KUBECTL, "get", "pods", "-w", "-l", "app=watched"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as w:
        try:
            kubectl("apply", "-f", "-", stdin=pod)
            assert w.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any("Running" in ln for ln in lines):
                line = w.stdout.readline()
                if not line:
                    break
                lines.append(line)
            assert lines[0].split()[:3] == ["NAME", "READY", "STATUS"]
            assert any(ln.startswith("watched") and "Running" in ln for ln in lines), lines
        finally:
            w.kill()
    out = kubectl("get", "pods", "-L", "controller-revision-hash").stdout.split("\n")
    assert out[0].split()[-1] == "CONTROLLER-REVISION-HASH"
    assert [ln.split()[-1] for ln in out if ln.startswith("watched")] == ["demo-5f7b8c9d"]
    obj = yaml.safe_load(kubectl("get", "pod", "watched", "-o", "yaml").stdout)
    assert obj["kind"] == "Pod" and obj["metadata"]["labels"]["controller-revision-hash"] == "demo-5f7b8c9d"
    lst = yaml.safe_load(kubectl("get", "pods", "-o", "yaml").stdout)
    assert lst["kind"] == "List" and any(i["metadata"]["name"] == "watched" for i in lst["items"])
    kubectl("delete", "pod", "watched", "--wait=false", "--cascade=orphan")


def test_describe_node_and_events(kubectl: Kubectl) -> None:
    desc = kubectl("describe", "node", "sim-node-0").stdout
    for want in ("Name:", "sim-node-0", "Capacity:", "Allocatable:", "Conditions:", "Ready"):
        assert want in desc, want
    ev = kubectl("get", "events", "-A").stdout
    assert ev.split("\n")[0].split()[:2] in (["NAMESPACE", "LAST"], ["NAMESPACE", "TYPE"])
    kubectl("get", "events", "-o", "yaml")


def test_server_side_apply_and_patch_types(kubectl: Kubectl) -> None:
    pod = POD.replace("name: web", "name: ssa").replace("{app: web}", "{app: ssa}")
    out = kubectl("apply", "--server-side", "-f", "-", stdin=pod).stdout
    assert "pod/ssa serverside-applied" in out
    out = kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=pod.replace("1.25", "1.26"))
    assert "serverside-applied" in out.stdout
    assert kubectl("get", "pod", "ssa", "-o", "jsonpath={.spec.containers[0].image}").stdout == "nginx:1.26"
    # the three patch types
    kubectl("patch", "pod", "ssa", "--type=strategic", "-p", '{"metadata":{"labels":{"s":"1"}}}')
    kubectl("patch", "pod", "ssa", "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    kubectl(
        "patch", "pod", "ssa", "--type=json", "-p", '[{"op":"add","path":"/metadata/labels/j","value":"1"}]'
    )
    labels = json.loads(kubectl("get", "pod", "ssa", "-o", "json").stdout)["metadata"]["labels"]
    assert labels == {"app": "ssa", "s": "1", "m": "1", "j": "1"}
    kubectl(
        "patch",
        "node",
        "sim-node-1",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/x","value":"y"}]',
    )
    kubectl("patch", "node", "sim-node-1", "-p", '{"metadata":{"labels":{"x":null}}}')
    assert (
        "x" not in json.loads(kubectl("get", "node", "sim-node-1", "-o", "json").stdout)["metadata"]["labels"]
    )
    # CloneSet: server-side apply, merge and json patches; strategic is refused like a real server
    clone = CLONESET.replace("name: demo", "name: ssa-clone")
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", stdin=clone).stdout
    kubectl("patch", "clone", "ssa-clone", "--type=merge", "-p", '{"spec":{"replicas":4}}')
    kubectl(
        "patch",
        "clone",
        "ssa-clone",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":7}]',
    )
    assert kubectl("get", "clone", "ssa-clone", "-o", "jsonpath={.spec.replicas}").stdout == "7"
    bad = kubectl(
        "patch", "clone", "ssa-clone", "--type=strategic", "-p", '{"spec":{"replicas":1}}', check=False
    )
    assert bad.returncode != 0
    # schema validation through kubectl: 422 from the server's CRD schema
    bad = kubectl(
        "patch", "clone", "ssa-clone", "--type=merge", "-p", '{"spec":{"replicas":"x"}}', check=False
    )
    assert bad.returncode != 0 and "spec.replicas in body must be of type integer" in bad.stderr
    kubectl("delete", "clone", "ssa-clone")
    kubectl("delete", "pod", "ssa", "--wait=false")


def _owned_pod(kubectl: Kubectl, clone: str, name: str) -> None:
    uid = kubectl("get", "clone", clone, "-o", "jsonpath={.metadata.uid}").stdout
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": "apps.kruise.io/v1alpha1",
                    "kind": "CloneSet",
                    "name": clone,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
    }
    kubectl("create", "-f", "-", stdin=json.dumps(body))


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_delete_cascade(kubectl: Kubectl, cascade: str) -> None:
    name = f"casc-{cascade}"
    kubectl("apply", "-f", "-", stdin=CLONESET.replace("name: demo", f"name: {name}"))
    _owned_pod(kubectl, name, f"{name}-pod")
    kubectl("delete", "clone", name, f"--cascade={cascade}")
    assert name not in kubectl("get", "clone").stdout  # --wait (default) returns once the owner is gone
    pods = lambda: kubectl("get", "pods", "-o", "json").stdout  # noqa: E731
    if cascade == "orphan":
        pod = json.loads(kubectl("get", "pod", f"{name}-pod", "-o", "json").stdout)
        assert not pod["metadata"].get("ownerReferences")
        kubectl("delete", "pod", f"{name}-pod", "--wait=false")
    else:
        wait(
            lambda: (
                f'"{name}-pod"' not in pods()
                or "deletionTimestamp"
                in kubectl("get", "pod", f"{name}-pod", "-o", "json", "--ignore-not-found").stdout
            )
        )


def test_delete_events_namespaces_and_nodes(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "doomed")
    kubectl("-n", "doomed", "create", "configmap", "c", "--from-literal=a=b")
    kubectl("delete", "namespace", "doomed", "--cascade=foreground")
    wait(lambda: "doomed" not in kubectl("get", "ns").stdout)
    kubectl("delete", "events", "--all", "-n", "default")
    assert "No resources found" in kubectl("get", "events", "-n", "default").stderr
    kubectl("delete", "node", "sim-node-1", "--cascade=background")
    assert "sim-node-1" not in kubectl("get", "nodes").stdout


TYPO_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  containers:
  - name: main
    image: nginx:1.25
    imagePullPolicyy: Always
  restartPolicyy: Never
"""


def test_unknown_fields_of_a_builtin_kind(kubectl: Kubectl) -> None:
    """kubectl validates strictly by default: a typo in a Pod is refused, naming every unknown field, as
    kube-apiserver does; `--validate=warn` creates it without them and prints the warnings."""
    strict = kubectl("apply", "-f", "-", stdin=TYPO_POD, check=False)
    assert strict.returncode != 0
    assert 'Pod in version "v1" cannot be handled as a Pod: strict decoding error: ' in strict.stderr
    assert 'unknown field "spec.containers[0].imagePullPolicyy"' in strict.stderr
    assert 'unknown field "spec.restartPolicyy"' in strict.stderr
    assert "typo" not in kubectl("get", "pods").stdout
    warned = kubectl("apply", "--validate=warn", "-f", "-", stdin=TYPO_POD)
    assert 'unknown field "spec.restartPolicyy"' in warned.stderr and "pod/typo created" in warned.stdout
    pod = yaml.safe_load(kubectl("get", "pod", "typo", "-o", "yaml").stdout)
    assert "restartPolicyy" not in pod["spec"] and "imagePullPolicyy" not in pod["spec"]["containers"][0]
    kubectl("delete", "pod", "typo", "--wait=false")


NODE_IMAGE = """
apiVersion: apps.kruise.io/v1alpha1
kind: NodeImage
metadata:
  name: sim-node-0
  labels: {apps.kruise.io/fake-nodeimage: "true"}
spec:
  images:
    nginx:
      tags:
      - tag: "1.21"
        version: 1
        createdAt: "2026-01-01T00:00:00Z"
        pullPolicy: {timeoutSeconds: 600, backoffLimit: 3}
"""


def test_image_pull_jobs_and_node_images_are_served(kubectl: Kubectl) -> None:
    resources = kubectl("api-resources", "--api-group", "apps.kruise.io").stdout
    assert "imagepulljobs" in resources and "nodeimages" in resources
    ni_line = next(line for line in resources.splitlines() if line.startswith("nodeimages"))
    assert " false " in f" {ni_line} "  # NAMESPACED false: one per node, cluster-wide
    assert kubectl("get", "imagepulljobs").returncode == 0
    assert "nodeimage.apps.kruise.io/sim-node-0 created" in kubectl("apply", "-f", "-", stdin=NODE_IMAGE).stdout
    got = yaml.safe_load(kubectl("get", "nodeimage", "sim-node-0", "-o", "yaml").stdout)
    assert got["spec"]["images"]["nginx"]["tags"][0]["version"] == 1
    table = kubectl("get", "nodeimages").stdout
    assert "DESIRED" in table and "sim-node-0" in table
    bad = NODE_IMAGE.replace("name: sim-node-0", "name: broken").replace("      - tag: \"1.21\"", "      - {}")
    r = kubectl("apply", "-f", "-", stdin=bad.split("        version")[0], check=False)
    assert r.returncode != 0 and "tag" in r.stderr  # the structural schema requires tags[].tag
    kubectl("delete", "nodeimage", "sim-node-0")
