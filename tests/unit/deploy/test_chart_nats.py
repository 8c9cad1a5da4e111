"""The chart's NATS: the accounts it renders are the permissions of services/natsauth.py (for any
prefix and logins), and the official nats chart is vendored (charts/ + Chart.lock) so the release's
3-node JetStream StatefulSet renders offline, valid for the Kubernetes minors the chart supports."""

from __future__ import annotations

import importlib.util
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import natsauth
from services.names import SERVICES
from tests.unit.deploy.chart import CHART, helm, of_kind, render

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
OLDEST, NEWEST = "1.25.0", "1.37.0"
BUNDLED = {"bus": {"url": ""}, "nats": {"enabled": True}}


def login(user: str) -> dict[str, str]:
    return {"user": f"kb-{user}", "secretName": "kb-nats", "secretKey": f"KRUISEBUS_NATS_PASSWORD_{user.upper()}"}


def auth_values(prefix: str = "kb") -> dict[str, Any]:
    return {"bus": {"prefix": prefix, "auth": {"enabled": True, "users": {s: login(s) for s in SERVICES},
                                               "admin": login("admin"), "viewer": login("viewer")}}}


def accounts_conf(docs: list[dict[str, Any]]) -> str:
    return str(of_kind(docs, "ConfigMap")["kb-kruisebus-nats-accounts"]["data"]["accounts.conf"])


def parse_accounts(conf: str) -> dict[str, Any]:
    """The included file as data: its `$VAR` passwords quoted, the rest is JSON already."""
    body = "\n".join(line for line in conf.splitlines() if not line.lstrip().startswith("#"))
    parsed: dict[str, Any] = json.loads("{" + re.sub(r'"password": (\$\w+)', r'"password": "\1"', body) + "}")
    return parsed


def test_nats_users_file_is_generated_from_the_table() -> None:
    assert (CHART / "files" / "nats-users.yaml").read_text() == natsauth.chart_file(), \
        "deploy/helm/kruisebus/files/nats-users.yaml is stale: run `python -m services.natsauth --write`"


@pytest.mark.parametrize("prefix", ["kb", "team-a"])
def test_rendered_accounts_are_the_codes_permissions(prefix: str) -> None:
    accounts = parse_accounts(accounts_conf(render(auth_values(prefix))))["accounts"]
    assert list(accounts) == [natsauth.account_name(prefix)]
    (account,) = accounts.values()
    assert account["jetstream"] == "enabled"
    users = {u["user"]: u for u in account["users"]}
    assert set(users) == {f"kb-{u}" for u in natsauth.USERS}
    for user in natsauth.USERS:
        want = natsauth.permissions(user, prefix)
        # the chart's login is kb-<user>; the inbox the code reads is the login's
        own = f"{natsauth.inbox_prefix(user)}.>"
        subscribe = [f"{natsauth.inbox_prefix(f'kb-{user}')}.>" if s == own else s for s in want.subscribe]
        got = users[f"kb-{user}"]
        expected: dict[str, object] = {"publish": list(want.publish), "subscribe": subscribe}
        if want.allow_responses:  # the watcher answers the planner's state barrier
            expected["allow_responses"] = True
        assert got["permissions"] == expected, user
        assert got["password"] == f"$KRUISEBUS_NATS_PASSWORD_{user.upper().replace('-', '_')}"


def test_only_configured_users_get_an_account_entry() -> None:
    values = {"bus": {"auth": {"enabled": True, "users": {"executor": login("executor")}, "admin": login("admin")}}}
    users = parse_accounts(accounts_conf(render(values)))["accounts"]["KRUISEBUS_KB"]["users"]
    assert [u["user"] for u in users] == ["kb-admin", "kb-executor"]


def test_chart_lock_pins_the_vendored_nats_chart() -> None:
    lock = yaml.safe_load((CHART / "Chart.lock").read_text())
    ((dep,),) = [lock["dependencies"]]
    archive = CHART / "charts" / f"nats-{dep['version']}.tgz"
    assert archive.exists(), f"{archive.name} missing: run tools/nats-chart/vendor.py"
    assert [d["status"] for d in helm.dependency_list(str(CHART))] == ["ok"]
    spec = importlib.util.spec_from_file_location("vendor", Path(__file__).parents[3] / "tools" / "nats-chart" / "vendor.py")
    assert spec is not None and spec.loader is not None
    vendor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vendor)
    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    assert lock["digest"] == vendor.lock_digest(declared, lock["dependencies"]), "Chart.lock out of sync with Chart.yaml"
    with tarfile.open(archive) as tgz:
        names = tgz.getnames()
        meta = yaml.safe_load(tgz.extractfile("nats/Chart.yaml").read())  # type: ignore[union-attr]
    assert "nats/LICENSE" in names  # Apache-2.0: the license travels with the vendored chart
    assert (meta["name"], meta["version"]) == ("nats", dep["version"])


def test_bundled_nats_is_a_three_node_jetstream_cluster_including_the_accounts() -> None:
    values = auth_values()
    docs = render({"bus": {**values["bus"], "url": ""}, "nats": {"enabled": True}})
    (sts,) = of_kind(docs, "StatefulSet").values()
    assert sts["spec"]["replicas"] == 3
    conf = of_kind(docs, "ConfigMap")["kb-nats-config"]["data"]["nats.conf"]
    assert "include ../kruisebus-nats/accounts.conf;" in conf
    assert '"store_dir": "/data"' in conf and '"jetstream"' in conf
    pod = sts["spec"]["template"]["spec"]
    (nats,) = [c for c in pod["containers"] if c["name"] == "nats"]
    assert {"name": "kruisebus-accounts", "mountPath": "/etc/kruisebus-nats"} in nats["volumeMounts"]
    assert nats["envFrom"] == [{"secretRef": {"name": "kb-kruisebus-nats-users", "optional": True}}]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kruisebus-accounts"]
    assert volume["configMap"]["name"] == "kb-kruisebus-nats-accounts"
    assert "KRUISEBUS_TEAM" not in accounts_conf(docs) and '"user": "kb-watcher"' in accounts_conf(docs)
    # the services reach the release's NATS
    (planner,) = [d for d in of_kind(docs, "Deployment").values() if d["metadata"]["name"].endswith("-planner")]
    env = {e["name"]: e.get("value") for e in planner["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KRUISEBUS_NATS"] == "nats://kb-nats.kruisebus-system.svc:4222"


@pytest.mark.parametrize("version", [OLDEST, NEWEST], ids=["oldest", "newest"])
def test_bundled_nats_manifests_are_valid_kubernetes(version: str) -> None:
    for d in render(BUNDLED):
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{d['kind']} {d['metadata']['name']} invalid for Kubernetes {version}: {e.message}")


def test_without_auth_the_included_file_is_empty() -> None:
    conf = accounts_conf(render(BUNDLED))
    assert parse_accounts(conf) == {}


def test_values_schema_names_the_services_of_the_names_table() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    users = schema["properties"]["bus"]["properties"]["auth"]["properties"]["users"]
    assert tuple(users["propertyNames"]["enum"]) == SERVICES
