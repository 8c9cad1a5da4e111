"""`kubectl kruisebus rollout status|history|pause|resume|undo`: the kubectl plugin.

The package installs the `kubectl-kruisebus` command, so kubectl finds it on PATH and runs it for
`kubectl kruisebus ...`, as `kubectl kruise ...` runs OpenKruise's kruise-tools. The same commands
are `kruisebus rollout ...`. kubectl hands a plugin its arguments and environment (KUBECONFIG) and
nothing else, so this parses kubectl's own `-n/--namespace`, `--kubeconfig` and `--context` and takes
the namespace of the kubeconfig's context as kubectl would.

A CloneSet is named as kubectl names it: `NAME`, `cloneset/NAME` (also `clone/`, `clonesets/`,
`clonesets.apps.kruise.io/`, ...) or `cloneset NAME`. Errors are reported on stderr as kubectl reports
them (`Error from server (NotFound): ...`, `error: ...`) with exit code 1.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import msgspec
import yaml

from services.settings import env

CLONESET_TYPES = frozenset({"cloneset", "clonesets", "clone", "cloneset.apps.kruise.io",
                            "clonesets.apps.kruise.io", "cloneset.v1alpha1.apps.kruise.io",
                            "clonesets.v1alpha1.apps.kruise.io"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class UsageError(Exception):
    """Bad input on the command line, reported with the flag or argument it is about."""


def parse_duration(text: str, flag: str = "--timeout") -> float:
    """A Go duration as kubectl takes it (`90s`, `5m`, `1h30m`, `0`), or plain seconds (`90`)."""
    t = text.strip()
    try:
        return float(t)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise UsageError(f"invalid argument {text!r} for {flag!r} flag: want a duration like 90s, 5m or 1h")
    return total


def parse_bool(text: str, flag: str) -> bool:
    if text.lower() in ("true", "1", "t", "yes"):
        return True
    if text.lower() in ("false", "0", "f", "no"):
        return False
    raise UsageError(f"invalid argument {text!r} for {flag!r} flag: want true or false")


def cloneset_name(args: list[str]) -> str:
    """The CloneSet the resource arguments name (`NAME`, `TYPE/NAME` or `TYPE NAME`)."""
    if not args:
        raise UsageError("required resource not specified: give a CloneSet name (NAME or cloneset/NAME)")
    if len(args) == 2 and "/" not in args[0]:
        kind, name = args
    elif len(args) == 1:
        kind, _, name = args[0].rpartition("/")
    else:
        raise UsageError(f"one CloneSet at a time: got {' '.join(args)!r}")
    if kind and kind.lower() not in CLONESET_TYPES:
        raise UsageError(f"kruisebus rollout supports CloneSets only (cloneset/NAME), not {kind!r}")
    if not name:
        raise UsageError(f"resource name may not be empty: {'/'.join(args)!r}")
    return name


def kubeconfig_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig's (current or given) context, else `default`, as kubectl does."""
    paths = (kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(os.pathsep)
    for path in paths:
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        name = context or doc.get("current-context")
        for ctx in doc.get("contexts") or []:
            if ctx.get("name") == name:
                return str((ctx.get("context") or {}).get("namespace") or "default")
    return "default"


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="CloneSet rollouts, as `kubectl kruise rollout`.")
    sub = parser.add_subparsers(dest="command", required=True)
    rollout = sub.add_parser("rollout", help="manage the rollout of a CloneSet")
    rsub = rollout.add_subparsers(dest="rollout_command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        p = rsub.add_parser(name, help=help_, description=help_)
        p.add_argument("resource", nargs="*", metavar="NAME", help="NAME, cloneset/NAME or cloneset NAME")
        p.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig context's)")
        p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)")
        p.add_argument("--context", default=None, help="kubeconfig context (default: its current context)")
        return p

    p = command("status", "show the status of the rollout; wait until it completes (like kubectl rollout status)")
    p.add_argument("-w", "--watch", default="true", nargs="?", const="true",
                   help="watch the status until the rollout is done (default true; --watch=false prints it once)")
    p.add_argument("--timeout", default="0",
                   help="how long to wait before giving up (a duration: 90s, 5m; 0: never)")
    p = command("history", "show the revisions of the CloneSet (and, with --nats, what the rollout log says of each)")
    p.add_argument("--revision", type=int, default=0, help="show the pod template of this revision")
    p.add_argument("--nats", default=env("NATS", ""),
                   help="NATS URL: join the revisions with the rollout log on KB_EVENTS (env KRUISEBUS_NATS)")
    p.add_argument("--nats-user", default=env("NATS_USER", ""), help="NATS user, e.g. viewer (env KRUISEBUS_NATS_USER)")
    p.add_argument("--nats-password-file", default=env("NATS_PASSWORD_FILE", ""),
                   help="file holding its password (env KRUISEBUS_NATS_PASSWORD_FILE or KRUISEBUS_NATS_PASSWORD)")
    p.add_argument("--prefix", default=env("PREFIX", "kb"), help="subject prefix of the install (env KRUISEBUS_PREFIX)")
    command("pause", "pause the rollout (spec.updateStrategy.paused: true)")
    command("resume", "resume a paused rollout")
    p = command("undo", "roll back to the previous revision (or --to-revision)")
    p.add_argument("--to-revision", type=int, default=0, help="the revision to roll back to (default 0: the previous)")
    return parser


async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Carry out one parsed command; every failure is a line on `err` and exit code 1."""
    from kubernetes_asyncio.config import ConfigException

    from services.errors import KubeError
    from services.kube import Kube

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        name = cloneset_name(args.resource)
        namespace = args.namespace or kubeconfig_namespace(args.kubeconfig, args.context)
        if args.rollout_command == "status":
            parse_bool(args.watch, "--watch")  # bad flags are reported before anything is read
            parse_duration(args.timeout)
        if args.rollout_command == "history" and args.revision < 0:
            raise UsageError(f"--revision must be a positive integer: {args.revision}")
        kube = await Kube.connect(args.kubeconfig, context=args.context)
    except UsageError as e:
        print(f"error: {e}", file=err)
        return 1
    except (ConfigException, OSError) as e:
        print(f"error: cannot load the kubeconfig: {e}", file=err)
        return 1
    try:
        return await _dispatch(args, kube, namespace, name, say)
    except UsageError as e:
        print(f"error: {e}", file=err)
    except KubeError as e:
        print(_kube_error(e), file=err)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        print(f"error: clone/{name} cannot be read: {e}", file=err)
    except TimeoutError:
        print("error: timed out waiting for the condition", file=err)
    finally:
        await kube.close()
    return 1


def _kube_error(e: Any) -> str:
    if e.status == 0:
        return f"error: cannot reach the Kubernetes API server: {e.message}"
    reason = e.status_reason or {404: "NotFound", 409: "Conflict", 403: "Forbidden"}.get(e.status, str(e.status))
    return f"Error from server ({reason}): {e.message}"


async def _dispatch(args: argparse.Namespace, kube: Any, namespace: str, name: str,
                    say: Callable[[str], None]) -> int:
    from services import rollout_ops as ops
    from services.rollout_status import wait_rollout

    command = args.rollout_command
    try:
        if command == "status":
            await wait_rollout(kube, namespace, name, watch=parse_bool(args.watch, "--watch"),
                               timeout=parse_duration(args.timeout), out=say)
        elif command in ("pause", "resume"):
            say(await ops.set_paused(kube, namespace, name, command == "pause"))
        elif command == "undo":
            say(await ops.undo(kube, namespace, name, args.to_revision))
        else:
            cs = await ops.get_cloneset(kube, namespace, name)
            revisions = await ops.history(kube, cs)
            if args.revision:
                say(ops.revision_detail(cs, ops.find_revision(revisions, args.revision)))
                return 0
            per_revision = None
            if args.nats:
                per_revision = ops.events_per_revision(await _events(args, cs))
            say(ops.history_table(cs, revisions, per_revision))
    except ops.RolloutError as e:
        raise UsageError(str(e)) from None
    return 0


async def _events(args: argparse.Namespace, cs: Any) -> list[Any]:
    import asyncio

    import nats.errors

    from services import rollout_ops as ops

    password = env("NATS_PASSWORD", "")
    if args.nats_password_file:
        try:
            password = Path(args.nats_password_file).read_text().strip()
        except OSError as e:
            raise UsageError(f"--nats-password-file: cannot read {args.nats_password_file}: {e.strerror}") from None
    try:
        return await asyncio.wait_for(ops.rollout_events(args.nats, prefix=args.prefix, user=args.nats_user or None,
                                                         password=password, cs=cs), 20)
    except (TimeoutError, OSError, nats.errors.Error) as e:
        raise UsageError(f"--nats: cannot read the rollout log at {args.nats}: {e or type(e).__name__}") from None


def parse(argv: list[str], prog: str) -> argparse.Namespace:
    return build_parser(prog).parse_args(argv)


__all__ = ["UsageError", "build_parser", "cloneset_name", "kubeconfig_namespace", "parse", "parse_duration", "run"]

if __name__ == "__main__":  # `python -m services.kubectl_plugin` = `kubectl-kruisebus`
    from services.cli import kubectl_main

    sys.exit(kubectl_main())
