"""Read a kubeconfig (server, TLS, token) into an HttpBackend, for `python -m sim nodes`."""

from __future__ import annotations

import base64
import ssl
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sim.backend import HttpBackend

SIM_NODES_USER_AGENT = "kubelet/v1.20.2 (kruisebus-sim)"


def _named(items: list[dict[str, Any]], name: str, what: str) -> dict[str, Any]:
    for it in items or []:
        if it.get("name") == name:
            return dict(it.get(what) or {})
    raise ValueError(f"kubeconfig has no {what} named {name!r}")


def _file_or_data(entry: dict[str, Any], key: str, base: Path) -> str | None:
    """Path of the PEM for `key` (writing `<key>-data` to a temp file when inline)."""
    if entry.get(f"{key}-data"):
        f = tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False)
        f.write(base64.b64decode(entry[f"{key}-data"]))
        f.close()
        return f.name
    if entry.get(key):
        p = Path(entry[key])
        return str(p if p.is_absolute() else base / p)
    return None


def backend_from_kubeconfig(path: str | Path, context: str | None = None) -> HttpBackend:
    path = Path(path)
    cfg = yaml.safe_load(path.read_text())
    ctx = _named(cfg.get("contexts", []), context or cfg.get("current-context", ""), "context")
    cluster = _named(cfg.get("clusters", []), ctx["cluster"], "cluster")
    user = _named(cfg.get("users", []), ctx["user"], "user") if ctx.get("user") else {}
    server = cluster["server"]
    # named as a kubelet is (`kubelet/<version>`): the server's request log tells its writes apart
    headers = {"User-Agent": SIM_NODES_USER_AGENT}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    elif user.get("tokenFile"):
        headers["Authorization"] = f"Bearer {Path(user['tokenFile']).read_text().strip()}"
    sslctx: Any = None
    if server.startswith("https://"):
        ca = _file_or_data(cluster, "certificate-authority", path.parent)
        sslctx = ssl.create_default_context(cafile=ca)
        if cluster.get("insecure-skip-tls-verify"):
            sslctx.check_hostname = False
            sslctx.verify_mode = ssl.CERT_NONE
        cert = _file_or_data(user, "client-certificate", path.parent)
        key = _file_or_data(user, "client-key", path.parent)
        if cert and key:
            sslctx.load_cert_chain(cert, key)
    return HttpBackend(server, headers=headers, ssl=sslctx)
