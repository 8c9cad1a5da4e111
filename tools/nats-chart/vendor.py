"""Vendor the official NATS chart into deploy/helm/kruisebus/charts/ as `helm dependency update` would.

`helm dependency update` needs the chart repository on the network; this does the same offline from a
checkout of github.com/nats-io/k8s (the chart is helm/charts/nats): it packages the chart with Helm's
own library (helm-python-sdk), with the repository's LICENSE inside, and writes Chart.lock with
Helm's digest of the declared and the locked dependencies (`HashReq`: sha256 of the JSON of both lists),
so `helm dependency build` and `helm dependency list` accept the result.

    .venv/bin/python tools/nats-chart/vendor.py /path/to/nats-io-k8s
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "kruisebus"
# chart.Dependency's JSON fields in Go's order; all but name and repository are omitempty
_FIELDS = ("name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias")


def _go_json(dep: dict[str, Any]) -> dict[str, Any]:
    return {k: dep.get(k, "") for k in _FIELDS if k in ("name", "repository") or dep.get(k)}


def lock_digest(declared: list[dict[str, Any]], locked: list[dict[str, Any]]) -> str:
    """Helm's `resolver.HashReq`."""
    data = json.dumps([[_go_json(d) for d in declared], [_go_json(d) for d in locked]], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    import helm_python as helm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkout", type=Path, help="a checkout of github.com/nats-io/k8s")
    args = p.parse_args(argv)
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (declared,) = [d for d in meta["dependencies"] if d["name"] == "nats"]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "nats"
        shutil.copytree(args.checkout / "helm" / "charts" / "nats", src)
        shutil.copy(args.checkout / "LICENSE", src / "LICENSE")
        version = yaml.safe_load((src / "Chart.yaml").read_text())["version"]
        for old in (CHART / "charts").glob("nats-*.tgz"):
            old.unlink()
        (CHART / "charts").mkdir(exist_ok=True)
        helm.package(str(src), destination=str(CHART / "charts"))
    locked = [{"name": "nats", "repository": declared["repository"], "version": version}]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    lock = {"dependencies": locked, "digest": lock_digest(meta["dependencies"], locked), "generated": now}
    (CHART / "Chart.lock").write_text(yaml.safe_dump(lock, sort_keys=True))
    print(f"charts/nats-{version}.tgz and Chart.lock written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
