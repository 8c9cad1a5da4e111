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
    wait(lambda: "Running" in kubectl("get", "pod", "web").stdout)
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
    assert out[0].split() == ["NAME", "DESIRED", "UPDATED", "UPDATED_READY", "UPDATED_AVAILABLE", "READY", "TOTAL", "AGE"]
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
