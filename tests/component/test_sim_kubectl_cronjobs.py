"""`kubectl get advancedcronjobs,broadcastjobs` against the embedded cluster as a process: the CRDs in the chart
are served with OpenKruise's names, short names, printer columns and schema."""

from __future__ import annotations

import json

import yaml

from tests.component.test_sim_kubectl import Kubectl, kubectl, sim_process  # noqa: F401  (fixtures)

ACJ = """
apiVersion: apps.kruise.io/v1alpha1
kind: AdvancedCronJob
metadata:
  name: nightly
spec:
  schedule: "30 2 * * *"
  timeZone: Asia/Shanghai
  concurrencyPolicy: Forbid
  template:
    jobTemplate:
      metadata:
        labels: {app: nightly}
      spec:
        template:
          spec:
            restartPolicy: OnFailure
            containers:
            - {name: main, image: busybox}
"""

BCJ_ACJ = """
apiVersion: apps.kruise.io/v1alpha1
kind: AdvancedCronJob
metadata:
  name: every-node
spec:
  schedule: "@every 1h"
  template:
    broadcastJobTemplate:
      metadata:
        labels: {pruned: "yes"}
      spec:
        parallelism: 30%
        completionPolicy: {type: Always}
        template:
          spec:
            restartPolicy: Never
            containers:
            - {name: main, image: busybox}
"""

BCJ = """
apiVersion: apps.kruise.io/v1alpha1
kind: BroadcastJob
metadata:
  name: sweep
spec:
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: busybox}
"""


def test_advancedcronjobs_and_broadcastjobs_with_kubectl(kubectl: Kubectl) -> None:  # noqa: F811
    for doc in (ACJ, BCJ):
        kubectl("apply", "-f", "-", stdin=doc)
    # broadcastJobTemplate.metadata is a bare object in OpenKruise's CRD: kubectl's strict validation refuses
    # labels there, and without it the API server drops them
    strict = kubectl("apply", "-f", "-", stdin=BCJ_ACJ, check=False)
    assert strict.returncode != 0
    assert 'unknown field "spec.template.broadcastJobTemplate.metadata.labels"' in strict.stderr
    kubectl("apply", "--validate=ignore", "-f", "-", stdin=BCJ_ACJ)
    rows = kubectl("get", "acj").stdout.splitlines()
    assert rows[0].split() == ["NAME", "SCHEDULE", "TYPE", "LASTSCHEDULETIME", "AGE"]
    assert rows[1].split()[:3] == ["every-node", "@every", "1h"] and rows[2].split()[:4] == ["nightly", "30", "2", "*"]
    both = kubectl("get", "advancedcronjobs,broadcastjobs").stdout
    assert "advancedcronjob.apps.kruise.io/nightly" in both and "broadcastjob.apps.kruise.io/sweep" in both
    rows = kubectl("get", "bcj").stdout.splitlines()
    assert rows[0].split() == ["NAME", "DESIRED", "ACTIVE", "SUCCEEDED", "FAILED", "AGE"]
    obj = yaml.safe_load(kubectl("get", "acj", "nightly", "-o", "yaml").stdout)
    assert obj["spec"]["timeZone"] == "Asia/Shanghai"
    assert obj["spec"]["template"]["jobTemplate"]["metadata"]["labels"] == {"app": "nightly"}  # schemaless: kept
    obj = json.loads(kubectl("get", "acj", "every-node", "-o", "json").stdout)
    assert obj["spec"]["template"]["broadcastJobTemplate"]["metadata"] == {}  # a bare object: pruned, as on Kruise
    assert obj["spec"]["template"]["broadcastJobTemplate"]["spec"]["parallelism"] == "30%"


def test_the_schema_refuses_what_openkruise_refuses(kubectl: Kubectl) -> None:  # noqa: F811
    bad = kubectl("apply", "-f", "-", stdin=ACJ.replace("Forbid", "Sometimes"), check=False)
    assert bad.returncode != 0 and "spec.concurrencyPolicy" in bad.stderr and "Sometimes" in bad.stderr
    missing = kubectl("apply", "-f", "-", stdin=ACJ.replace('  schedule: "30 2 * * *"\n', ""), check=False)
    assert missing.returncode != 0 and "spec.schedule" in missing.stderr
