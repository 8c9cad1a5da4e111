"""`python -m services.runtime`: drive the runtime seam by hand, with the node agent's flags.

For trying a runtime on a node before an agent uses it (is the CRI socket reachable, do the pull
secrets work, what does a failed pull say):

    python -m services.runtime --runtime cri --node n1 pull registry.example/app:v2 --secret ns/regcred
    python -m services.runtime --runtime kube --kubeconfig kc --node n1 status nginx:1.27
    python -m services.runtime --runtime sim --sim-url http://127.0.0.1:PORT --node sim-node-0 exec default web-0 main -- cat /tmp/ready
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec

from services.errors import ImagePullError, KruisebusError
from services.runtime import PullAuth, SecretRef, open_runtime_with
from services.settings import KubeSettings, RuntimeSettings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.runtime", description=__doc__.split("\n\n")[0])
    RuntimeSettings.add_arguments(p)
    KubeSettings.add_arguments(p)
    p.add_argument("--node", required=True, help="the node to pull on / exec on")
    sub = p.add_subparsers(dest="cmd", required=True)
    pull = sub.add_parser("pull", help="pull an image")
    pull.add_argument("image")
    pull.add_argument("--policy", choices=("Always", "IfNotPresent"), default="IfNotPresent")
    pull.add_argument("--timeout", type=float, default=600.0)
    pull.add_argument("--secret", action="append", default=[], help="pull secret NAMESPACE/NAME (repeatable)")
    status = sub.add_parser("status", help="is an image on the node")
    status.add_argument("image")
    ex = sub.add_parser("exec", help="run a command in a container")
    ex.add_argument("namespace")
    ex.add_argument("pod")
    ex.add_argument("container")
    ex.add_argument("command", nargs="+")
    ex.add_argument("--timeout", type=float, default=1.0)
    return p


def secret_refs(values: list[str]) -> tuple[SecretRef, ...]:
    refs = []
    for v in values:
        ns, sep, name = v.partition("/")
        if not sep or not ns or not name:
            raise SystemExit(f"--secret: expected NAMESPACE/NAME, got {v!r}")
        refs.append(SecretRef(namespace=ns, name=name))
    return tuple(refs)


async def run(args: argparse.Namespace) -> int:
    settings = RuntimeSettings.from_args(args)
    kube = None
    if settings.kind == "kube" or args.kubeconfig or (args.cmd == "pull" and args.secret):
        from services.kube import Kube

        kube = await Kube.connect_with(KubeSettings.from_args(args))
    try:
        rt = await open_runtime_with(settings, node=args.node, kube=kube)
        try:
            if args.cmd == "pull":
                auth = PullAuth(secrets=secret_refs(args.secret)) if args.secret else None
                out: object = await rt.pull(
                    args.image,
                    auth=auth,
                    policy=args.policy,
                    timeout=args.timeout,
                    on_progress=lambda p: print(msgspec.json.encode(p).decode(), file=sys.stderr),
                )
            elif args.cmd == "status":
                out = await rt.image_status(args.image)
            else:
                out = await rt.exec_sync(
                    args.namespace, args.pod, args.container, args.command, timeout=args.timeout
                )
            print(msgspec.json.encode(out).decode())
            return 0
        finally:
            await rt.close()
    except ImagePullError as e:
        print(f"pull failed ({e.reason}): {e.kube_reason}: {e.message}", file=sys.stderr)
        return 1
    except KruisebusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if kube is not None:
            await kube.close()


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
