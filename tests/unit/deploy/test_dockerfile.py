"""The Dockerfile, checked where no container builder is available: a pinned base of the project's
Python minor, only the locked dependencies installed, the `kruisebus` entry point, a non-root user."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def args() -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest)


def stages() -> list[str]:
    """The image reference of every FROM, ARGs substituted."""
    refs = []
    for word, rest in instructions():
        if word == "FROM":
            ref = rest.split()[0]
            refs.append(re.sub(r"\$\{(\w+)\}", lambda m: args()[m.group(1)], ref))
    return refs


def test_every_stage_is_the_pinned_python_of_the_project() -> None:
    minor = PYPROJECT["tool"]["mypy"]["python_version"]
    assert PYPROJECT["project"]["requires-python"] == f">={minor}"
    assert len(stages()) >= 2, "multi-stage: build, then a runtime without build leftovers"
    for ref in stages():
        assert re.fullmatch(rf"python:{re.escape(minor)}-slim@sha256:[0-9a-f]{{64}}", ref), ref
    site = f"/opt/kruisebus/lib/python{minor}/site-packages"
    assert site in DOCKERFILE


def test_only_locked_dependencies_are_installed() -> None:
    runs = [rest for word, rest in instructions() if word == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs, "the Dockerfile installs nothing"
    for r in installs:
        assert "-c requirements.lock" in r, r
        assert "--upgrade" not in r and " -U " not in r, r
    copies = " ".join(rest for word, rest in instructions() if word == "COPY")
    assert "requirements.lock" in copies and "pyproject.toml" in copies


def test_lock_pins_every_runtime_dependency() -> None:
    locked = {line.split("==")[0].lower().replace("_", "-") for line in (ROOT / "requirements.lock").read_text()
              .splitlines() if "==" in line}
    for dep in PYPROJECT["project"]["dependencies"]:
        name = re.split(r"[=<>\[ ]", dep)[0].lower().replace("_", "-")
        assert name in locked, f"{name} is not pinned in requirements.lock"


def test_entry_point_is_the_kruisebus_script() -> None:
    (entry,) = [rest for word, rest in instructions() if word == "ENTRYPOINT"]
    program = Path(yaml.safe_load(entry)[0]).name
    assert program in PYPROJECT["project"]["scripts"]
    assert PYPROJECT["project"]["scripts"][program] == "services.cli:main"


def test_runtime_user_is_numeric_non_root_and_matches_the_chart() -> None:
    users = [rest for word, rest in instructions() if word == "USER"]
    assert users, "no USER: the image would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0 and (not group or int(group) != 0)
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "kruisebus" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(user)
    last_from = max(i for i, (word, _) in enumerate(instructions()) if word == "FROM")
    assert any(word == "USER" for word, _ in instructions()[last_from:]), "USER must be set in the final stage"


def _builder() -> str | None:
    """Why no image can be built here (None: a docker daemon answers)."""
    if shutil.which("docker") is None:
        return "no docker client"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=20)
    return None if probe.returncode == 0 else f"no docker daemon: {probe.stderr.strip()[:200]}"


@pytest.mark.slow
def test_image_builds_and_runs_the_cli_as_non_root() -> None:
    why = _builder()
    if why:
        pytest.skip(f"no container builder ({why}); the checks above stand in for the build")
    subprocess.run(["docker", "build", "-q", "-t", "kruisebus:test", str(ROOT)], check=True, timeout=1200)
    out = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", "kruisebus:test", "-u"],
                         capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "10001"
    subprocess.run(["docker", "run", "--rm", "kruisebus:test", "plan", "--help"], check=True, timeout=120)
