"""Service settings: a flag wins over its KRUISEBUS_* environment variable, which wins over the default."""

from __future__ import annotations

import argparse

import pytest

from services.settings import ExecutorSettings, KubeSettings, PlannerSettings


def parse(cls: type, argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cls.add_arguments(p)  # type: ignore[attr-defined]
    return p.parse_args(argv)


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KRUISEBUS_KUBE_QPS", "KRUISEBUS_KUBE_BURST", "KRUISEBUS_EXECUTOR_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert KubeSettings.from_args(parse(KubeSettings, [])) == KubeSettings(kubeconfig=None, qps=500.0, burst=1000)
    assert ExecutorSettings.from_args(parse(ExecutorSettings, [])) == ExecutorSettings()
    assert PlannerSettings.from_args(parse(PlannerSettings, [])) == PlannerSettings()


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRUISEBUS_KUBE_QPS", "50")
    monkeypatch.setenv("KRUISEBUS_EXECUTOR_CONCURRENCY", "8")
    monkeypatch.setenv("KRUISEBUS_FEATURE_GATES", "CloneSetPartitionRollback=true")
    kube = KubeSettings.from_args(parse(KubeSettings, ["--kube-burst", "5"]))
    assert (kube.qps, kube.burst) == (50.0, 5)
    assert ExecutorSettings.from_args(parse(ExecutorSettings, [])).concurrency == 8
    assert ExecutorSettings.from_args(parse(ExecutorSettings, ["--concurrency", "2"])).concurrency == 2
    planner = PlannerSettings.from_args(parse(PlannerSettings, ["--expectation-timeout", "5"]))
    assert planner.feature_gates == "CloneSetPartitionRollback=true" and planner.expectation_timeout == 5.0


def test_lease_and_partition_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.settings import BusSettings, LeaseSettings

    for name in ("KRUISEBUS_LEASE_TTL", "KRUISEBUS_HOLDER", "KRUISEBUS_PLANNER_PARTITIONS"):
        monkeypatch.delenv(name, raising=False)
    assert LeaseSettings.from_args(parse(LeaseSettings, [])) == LeaseSettings(ttl=15, holder="")
    assert PlannerSettings.from_args(parse(PlannerSettings, [])).partitions == 16
    monkeypatch.setenv("KRUISEBUS_LEASE_TTL", "4")
    monkeypatch.setenv("KRUISEBUS_HOLDER", "kruisebus-planner-7f9c-x2")
    assert LeaseSettings.from_args(parse(LeaseSettings, [])) == LeaseSettings(ttl=4, holder="kruisebus-planner-7f9c-x2")
    assert PlannerSettings.from_args(parse(PlannerSettings, ["--partitions", "0"])).partitions == 0
    with pytest.raises(ValueError, match="--lease-ttl"):
        LeaseSettings.from_args(parse(LeaseSettings, ["--lease-ttl", "0"]))
    with pytest.raises(ValueError, match="--partitions"):
        PlannerSettings.from_args(parse(PlannerSettings, ["--partitions", "-1"]))
    monkeypatch.setenv("KRUISEBUS_NATS_PASSWORD", "from-env")
    bus = BusSettings.from_args(parse(BusSettings, ["--nats-user", "planner", "--ensure-streams", "false"]))
    assert (bus.user, bus.password, bus.ensure_streams) == ("planner", "from-env", False)


def test_nats_password_file_wins_and_a_missing_one_is_named(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from services.settings import BusSettings

    monkeypatch.setenv("KRUISEBUS_NATS_PASSWORD", "from-env")
    secret = Path(str(tmp_path)) / "password"
    secret.write_text("from-file\n")
    assert BusSettings.from_args(parse(BusSettings, ["--nats-password-file", str(secret)])).password == "from-file"
    with pytest.raises(ValueError, match="--nats-password-file: cannot read .*missing"):
        BusSettings.from_args(parse(BusSettings, ["--nats-password-file", str(secret.with_name("missing"))]))
