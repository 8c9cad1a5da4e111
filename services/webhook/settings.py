"""`kruisebus webhook`'s settings: flags with `KRUISEBUS_WEBHOOK_*` environment defaults.

Kept next to the webhook (in the style of `services.settings`) so the serving address, the names the
API server reaches it by, the certificate lifetime and the failure policy each have one name, one
default and one sentence on why.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates
from services.settings import env

if TYPE_CHECKING:  # the server (TLS, aiohttp) is imported only when the webhook runs
    from services.webhook.server import WebhookOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=env("WEBHOOK_HOST", "0.0.0.0"),
                   help="address to bind (env KRUISEBUS_WEBHOOK_HOST)")
    p.add_argument("--port", type=int, default=int(env("WEBHOOK_PORT", "9876")),
                   help="HTTPS port, 0 = any free port (env KRUISEBUS_WEBHOOK_PORT; Kruise's is 9876)")
    p.add_argument("--service-name", default=env("WEBHOOK_SERVICE", "kruisebus-webhook"),
                   help="the Service the API server calls the webhook through; also a certificate name "
                        "(env KRUISEBUS_WEBHOOK_SERVICE)")
    p.add_argument("--service-namespace", default=env("WEBHOOK_NAMESPACE", "kruisebus-system"),
                   help="the Service's namespace (env KRUISEBUS_WEBHOOK_NAMESPACE)")
    p.add_argument("--url-host", default=env("WEBHOOK_URL_HOST", "") or None,
                   help="register `url: https://HOST:PORT/...` instead of the Service, for local runs "
                        "(env KRUISEBUS_WEBHOOK_URL_HOST)")
    p.add_argument("--cert-dir", default=env("WEBHOOK_CERT_DIR", "") or None,
                   help="where tls.crt, tls.key and ca.crt are written (env KRUISEBUS_WEBHOOK_CERT_DIR; "
                        "default: a private temporary directory)")
    p.add_argument("--cert-source", default=env("WEBHOOK_CERT_SOURCE", "") or None,
                   help="serve the certificate in this directory (tls.crt, tls.key, ca.crt: e.g. a cert-manager "
                        "Secret) and follow its renewals, instead of making one (env KRUISEBUS_WEBHOOK_CERT_SOURCE)")
    p.add_argument("--cert-validity", type=float, default=float(env("WEBHOOK_CERT_VALIDITY", "31536000")),
                   help="certificate lifetime in seconds, renewed when a third is left "
                        "(env KRUISEBUS_WEBHOOK_CERT_VALIDITY)")
    p.add_argument("--failure-policy", choices=("Fail", "Ignore"), default=env("WEBHOOK_FAILURE_POLICY", "Fail"),
                   help="what the API server does when the webhook does not answer "
                        "(env KRUISEBUS_WEBHOOK_FAILURE_POLICY)")
    p.add_argument("--pod-hook", action="store_true", default=env("WEBHOOK_POD_HOOK", "") == "1",
                   help="also register the pod creation hook mpod.kb.io (env KRUISEBUS_WEBHOOK_POD_HOOK=1)")
    p.add_argument("--feature-gates", default=env("FEATURE_GATES", ""),
                   help="Kruise feature gates, e.g. TemplateNoDefaults=true (env KRUISEBUS_FEATURE_GATES)")
    p.add_argument("--ready-file", default=None, help='write {"port": N} here once registered')


def from_args(args: argparse.Namespace) -> WebhookOptions:
    """The options of `args` (raises ValueError for an unknown feature gate)."""
    from services.webhook.server import WebhookOptions

    gates = parse_feature_gates(args.feature_gates) if args.feature_gates else DEFAULT_GATES
    return WebhookOptions(
        host=args.host, port=args.port, service_name=args.service_name,
        service_namespace=args.service_namespace, url_host=args.url_host,
        cert_dir=Path(args.cert_dir) if args.cert_dir else None,
        cert_source=Path(args.cert_source) if args.cert_source else None,
        cert_validity=dt.timedelta(seconds=args.cert_validity), failure_policy=args.failure_policy,
        pod_hook=args.pod_hook, gates=gates,
    )
