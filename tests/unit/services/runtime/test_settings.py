"""The node agent's runtime flags (services.settings.RuntimeSettings): flag over KRUISEBUS_* over default."""

from __future__ import annotations

import argparse

import pytest

from services.settings import RuntimeSettings


def parse(argv: list[str]) -> RuntimeSettings:
    p = argparse.ArgumentParser()
    RuntimeSettings.add_arguments(p)
    return RuntimeSettings.from_args(p.parse_args(argv))


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNTIME", "SIM_URL", "CRI_SOCKET", "PULL_NAMESPACE"):
        monkeypatch.delenv(f"KRUISEBUS_{name}", raising=False)
    assert parse([]) == RuntimeSettings()
    assert RuntimeSettings().kind == "sim"
    assert RuntimeSettings().cri_socket == "/run/containerd/containerd.sock"


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRUISEBUS_RUNTIME", "cri")
    monkeypatch.setenv("KRUISEBUS_CRI_SOCKET", "/var/run/crio/crio.sock")
    assert (parse([]).kind, parse([]).cri_socket) == ("cri", "/var/run/crio/crio.sock")
    s = parse(["--runtime", "kube", "--pull-namespace", "kruise-daemon-config"])
    assert (s.kind, s.pull_namespace) == ("kube", "kruise-daemon-config")


def test_unknown_runtime_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--runtime", "docker"])
    assert "--runtime: invalid choice: 'docker'" in capsys.readouterr().err
