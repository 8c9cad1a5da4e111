"""Registry credentials from pull secrets (services/runtime/auth.py)."""

from __future__ import annotations

import base64
import json

import pytest

from services.runtime.auth import (
    PullSecretError,
    credentials_from_docker_config,
    credentials_from_secret,
    match_credentials,
)
from services.runtime.base import RegistryCredentials, SecretRef


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def secret(data: dict[str, str], type_: str = "kubernetes.io/dockerconfigjson") -> bytes:
    return json.dumps({"type": type_, "data": {k: b64(v) for k, v in data.items()}}).encode()


REF = SecretRef(namespace="ns", name="regcred")


def test_dockerconfigjson_auth_field_is_decoded_to_user_and_password() -> None:
    cfg = json.dumps(
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("alice:s3:cret")},
                "127.0.0.1:5000": {"username": "bob", "password": "pw"},
            }
        }
    )
    creds = credentials_from_secret(secret({".dockerconfigjson": cfg}), REF)
    assert [(c.server_address, c.username, c.password) for c in creds] == [
        ("127.0.0.1:5000", "bob", "pw"),
        ("docker.io", "alice", "s3:cret"),
    ]


def test_legacy_dockercfg() -> None:
    cfg = json.dumps({"quay.io": {"auth": b64("u:p")}})
    [c] = credentials_from_secret(secret({".dockercfg": cfg}, "kubernetes.io/dockercfg"), REF)
    assert (c.server_address, c.username, c.password) == ("quay.io", "u", "p")


def test_a_secret_without_docker_config_is_an_error_naming_it() -> None:
    with pytest.raises(PullSecretError, match=r"secret ns/regcred \(type Opaque\) has neither"):
        credentials_from_secret(secret({"token": "x"}, ""), REF)


def test_a_malformed_docker_config_names_the_secret_and_key() -> None:
    with pytest.raises(PullSecretError, match=r"secret ns/regcred: .dockerconfigjson is not a docker config"):
        credentials_from_secret(secret({".dockerconfigjson": "[1, 2]"}), REF)
    with pytest.raises(PullSecretError, match=r"auths\['r.io'\].auth is not base64"):
        credentials_from_docker_config(json.dumps({"auths": {"r.io": {"auth": "!!!"}}}).encode(), source="s")


@pytest.mark.parametrize(
    ("image", "want"),
    [("127.0.0.1:5000/app:v1", "local"), ("nginx", "hub"), ("quay.io/x/y", None)],
    ids=["by-host", "hub-default", "no-match"],
)
def test_match_credentials_by_registry_host(image: str, want: str | None) -> None:
    creds = [
        RegistryCredentials(server_address="127.0.0.1:5000", username="local"),
        RegistryCredentials(server_address="docker.io", username="hub"),
    ]
    got = match_credentials(image, creds)
    assert (got.username if got else None) == want
