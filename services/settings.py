"""Every service's settings, grouped and documented in one place.

Each service reads its knobs from flags whose defaults come from `KRUISEBUS_*` environment variables (so
a Pod can set them either way), into a frozen struct per concern. Tuning values used to be module
constants and argparse literals spread over the services, and the Kubernetes client's rate limit was
never set at all; here each has one name, one default and one sentence on why.
"""

from __future__ import annotations

import argparse
import os

import msgspec

from schemas.constants import NODE_IMAGE_CREATION_DELAY_SECONDS

ENV_PREFIX = "KRUISEBUS_"


def env(name: str, default: str) -> str:
    """`KRUISEBUS_<NAME>` from the environment, else `default`."""
    return os.environ.get(ENV_PREFIX + name, default)


class KubeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The Kubernetes API client of a service."""

    kubeconfig: str | None = None
    """kubeconfig file; None: in-cluster config when in a Pod, else `~/.kube/config`."""
    qps: float = 500.0
    """Sustained API writes per second (a token bucket; 0 turns it off). Reads are not limited. A
    1,000-pod in-place rollout takes ~3 writes per pod (readiness condition, the patch, the Event)."""
    burst: int = 1000
    """Writes that may go out at once before `qps` applies."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                       help="kubeconfig file (env KUBECONFIG; default: in-cluster, then ~/.kube/config)")
        p.add_argument("--kube-qps", type=float, default=float(env("KUBE_QPS", "500")),
                       help="API writes per second, token bucket (env KRUISEBUS_KUBE_QPS; 0: unlimited)")
        p.add_argument("--kube-burst", type=int, default=int(env("KUBE_BURST", "1000")),
                       help="API writes allowed at once (env KRUISEBUS_KUBE_BURST)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KubeSettings:
        return cls(kubeconfig=args.kubeconfig, qps=args.kube_qps, burst=args.kube_burst)


class BusSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The NATS connection of a service."""

    url: str = "nats://127.0.0.1:4222"
    prefix: str = "kb"
    """Subject prefix and stream name prefix (`kb` -> `kb.state.>`, `KB_STATE`)."""
    user: str = ""
    """The service's NATS user (docs/operations.md, security model); empty: no authentication."""
    password: str = ""
    """Its password: from `KRUISEBUS_NATS_PASSWORD` or a file (a mounted Secret), never a flag value."""
    replicas: int = 1
    """Replicas of the streams and the lease bucket it creates (3 on a 3-node NATS cluster)."""
    ensure_streams: bool = True
    """Create or update the streams and the lease bucket at start. Needs the admin user's permissions;
    with per-service users `kruisebus nats-init` (the chart's init job) does it instead."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--nats", default=env("NATS", "nats://127.0.0.1:4222"), help="NATS server URL (env KRUISEBUS_NATS)")
        p.add_argument("--prefix", default=env("PREFIX", "kb"), help="subject prefix (env KRUISEBUS_PREFIX)")
        p.add_argument("--nats-user", default=env("NATS_USER", ""), help="NATS user (env KRUISEBUS_NATS_USER)")
        p.add_argument("--nats-password-file", default=env("NATS_PASSWORD_FILE", ""),
                       help="file holding the NATS password (env KRUISEBUS_NATS_PASSWORD_FILE; "
                            "or the password itself in KRUISEBUS_NATS_PASSWORD)")
        p.add_argument("--stream-replicas", type=int, default=int(env("STREAM_REPLICAS", "1")),
                       help="replicas of the streams and lease bucket created (env KRUISEBUS_STREAM_REPLICAS)")
        p.add_argument("--ensure-streams", default=env("ENSURE_STREAMS", "true"), choices=("true", "false"),
                       help="create/update the streams and lease bucket at start (env KRUISEBUS_ENSURE_STREAMS)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BusSettings:
        password = env("NATS_PASSWORD", "")
        path = getattr(args, "nats_password_file", "")
        if path:
            try:
                with open(path) as f:
                    password = f.read().strip()
            except OSError as e:
                raise ValueError(f"--nats-password-file: cannot read {path}: {e.strerror}") from None
        replicas = getattr(args, "stream_replicas", 1)
        if replicas < 1:
            raise ValueError(f"--stream-replicas: must be >= 1, got {replicas}")
        return cls(url=args.nats, prefix=args.prefix, user=getattr(args, "nats_user", ""), password=password,
                   replicas=replicas, ensure_streams=getattr(args, "ensure_streams", "true") == "true")


class PlannerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The planner service."""

    feature_gates: str = ""
    """Kruise's feature gates, in Kruise's syntax (`A=true,B=false`)."""
    resync_seconds: float = 30.0
    """Every workload is planned again this often even without a change (level-triggered planning)."""
    expectation_timeout: float = 30.0
    """How long a decision's expected effect (a pod present, gone, relabelled) is waited for before the
    workload is planned again anyway."""
    nodeimage_creation_delay: float = NODE_IMAGE_CREATION_DELAY_SECONDS
    """Seconds a Node must have been Ready before its NodeImage is created (Kruise's
    `--nodeimage-creation-delay`; image pre-download only)."""
    time_zone: str = "UTC"
    """The zone of AdvancedCronJob schedules without `timeZone` (Kruise: its controller's zone, UTC in its
    image); an IANA name."""
    state_sync_timeout: float = 30.0
    """Before its first pass, and before planning partitions taken over, the planner asks the active
    watcher whether the state stream is current and waits (up to this long) for its answer and for the
    states it names; past it, it plans on the stream as it is (a warning). 0: it does not ask."""
    partitions: int = 16
    """Workloads are split into this many partitions (hash of the uid), each planned by the replica
    holding its lease; replicas share them evenly. 0: no leases, this planner plans every workload
    (only ever run one then). Change it only with every planner stopped."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--feature-gates", default=env("FEATURE_GATES", ""),
                       help="Kruise feature gates, e.g. CloneSetPartitionRollback=true (env KRUISEBUS_FEATURE_GATES)")
        p.add_argument("--resync-seconds", type=float, default=float(env("RESYNC_SECONDS", "30")),
                       help="plan every workload again this often (env KRUISEBUS_RESYNC_SECONDS)")
        p.add_argument("--expectation-timeout", type=float, default=float(env("EXPECTATION_TIMEOUT", "30")),
                       help="seconds to wait for a decision's effect (env KRUISEBUS_EXPECTATION_TIMEOUT)")
        p.add_argument("--nodeimage-creation-delay", type=float, default=float(env("NODEIMAGE_CREATION_DELAY", str(NODE_IMAGE_CREATION_DELAY_SECONDS))),
                       help="seconds a Node is Ready before its NodeImage is made (env KRUISEBUS_NODEIMAGE_CREATION_DELAY)")
        p.add_argument("--time-zone", default=env("TIME_ZONE", "UTC"),
                       help="zone of AdvancedCronJob schedules without timeZone, an IANA name (env KRUISEBUS_TIME_ZONE)")
        p.add_argument("--state-sync-timeout", type=float, default=float(env("STATE_SYNC_TIMEOUT", "30")),
                       help="seconds to wait at start for the watcher to answer that the state stream is current; "
                            "0: do not ask (env KRUISEBUS_STATE_SYNC_TIMEOUT)")
        p.add_argument("--partitions", type=int, default=int(env("PLANNER_PARTITIONS", "16")),
                       help="workload partitions shared by the planner replicas; 0: no leases, plan all "
                            "(env KRUISEBUS_PLANNER_PARTITIONS)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PlannerSettings:
        if args.partitions < 0:
            raise ValueError(f"--partitions: must be >= 0, got {args.partitions}")
        return cls(feature_gates=args.feature_gates, resync_seconds=args.resync_seconds,
                   expectation_timeout=args.expectation_timeout,
                   nodeimage_creation_delay=args.nodeimage_creation_delay, time_zone=args.time_zone,
                   state_sync_timeout=args.state_sync_timeout, partitions=args.partitions)


class LeaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Leases in the NATS KV bucket: the watcher's single active instance, the planner's partitions."""

    ttl: int = 15
    """Seconds a lease lives after its last renewal: a standby takes over this long after the active
    instance died (a graceful stop hands over at once). Renewed every ttl/4; a holder stops acting
    ttl/2 after its last renewal it could not repeat. Whole seconds (NATS message TTLs are)."""
    holder: str = ""
    """This instance's identity in the leases; empty: `<service>-<host>-<pid>`. Set it to the Pod name
    so a restarted container takes its own leases back at once; it must differ between replicas."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--lease-ttl", type=int, default=int(env("LEASE_TTL", "15")),
                       help="lease lifetime in whole seconds (env KRUISEBUS_LEASE_TTL)")
        p.add_argument("--holder", default=env("HOLDER", ""),
                       help="this replica's lease identity, e.g. the Pod name (env KRUISEBUS_HOLDER)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LeaseSettings:
        if args.lease_ttl < 1:
            raise ValueError(f"--lease-ttl: must be a whole number of seconds >= 1, got {args.lease_ttl}")
        return cls(ttl=args.lease_ttl, holder=args.holder)


class ExecutorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The executor's consumer of the command work queue."""

    concurrency: int = 64
    """Commands handled at once. Each is a few API round trips (the op, the Event) and a NATS publish,
    so the rate is concurrency / round-trip time: 16 capped a 1,000-pod rollout at ~60 updates/s. The
    API write rate is bounded by the Kubernetes client's token bucket, not by this."""
    ack_wait: float = 30.0
    """Seconds before an unacknowledged command is delivered again (an executor that died with it)."""
    max_deliver: int = 8
    """Deliveries of one command before it is terminated and reported (`max-deliveries`)."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--concurrency", type=int, default=int(env("EXECUTOR_CONCURRENCY", "64")),
                       help="commands handled at once (env KRUISEBUS_EXECUTOR_CONCURRENCY)")
        p.add_argument("--ack-wait", type=float, default=float(env("EXECUTOR_ACK_WAIT", "30")),
                       help="seconds before an unacknowledged command is redelivered (env KRUISEBUS_EXECUTOR_ACK_WAIT)")
        p.add_argument("--max-deliver", type=int, default=int(env("EXECUTOR_MAX_DELIVER", "8")),
                       help="deliveries of a command before it is rejected (env KRUISEBUS_EXECUTOR_MAX_DELIVER)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ExecutorSettings:
        return cls(concurrency=args.concurrency, ack_wait=args.ack_wait, max_deliver=args.max_deliver)


class MetricsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The per-service HTTP listener for `/metrics`, `/healthz` and `/readyz` (services.health)."""

    port: int = 0
    """TCP port; 0: no listener (the default for local runs and tests; the Helm chart sets 8080)."""
    host: str = "0.0.0.0"
    """Address to bind; every interface by default, because kubelet probes and Prometheus reach the
    Pod by its IP."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--metrics-port", type=int, default=int(env("METRICS_PORT", "0")),
                       help="serve /metrics, /healthz and /readyz on this port (env KRUISEBUS_METRICS_PORT; "
                            "0: off)")
        p.add_argument("--metrics-host", default=env("METRICS_HOST", "0.0.0.0"),
                       help="address of the metrics listener (env KRUISEBUS_METRICS_HOST)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MetricsSettings:
        return cls(port=args.metrics_port, host=args.metrics_host)


class RuntimeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How a node agent reaches its node's container runtime (services.runtime)."""

    kind: str = "sim"
    """`sim` (the embedded cluster's simulated node), `kube` (a short-lived pull pod through the API
    server) or `cri` (the node's containerd/CRI-O over its socket)."""
    sim_url: str = ""
    """The embedded cluster's control API; empty: the API server's URL (the sim serves both)."""
    cri_socket: str = "/run/containerd/containerd.sock"
    """The CRI runtime's unix socket (CRI-O: /var/run/crio/crio.sock)."""
    pull_namespace: str = "default"
    """Where the `kube` runtime creates its pull pods when no pull secret names a namespace."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--runtime", choices=("sim", "kube", "cri"), default=env("RUNTIME", "sim"),
                       help="container runtime of the node: sim, kube (pull pods) or cri (env KRUISEBUS_RUNTIME)")
        p.add_argument("--sim-url", default=env("SIM_URL", ""),
                       help="the sim's control API (env KRUISEBUS_SIM_URL; default: the API server's URL)")
        p.add_argument("--cri-socket", default=env("CRI_SOCKET", "/run/containerd/containerd.sock"),
                       help="CRI unix socket (env KRUISEBUS_CRI_SOCKET)")
        p.add_argument("--pull-namespace", default=env("PULL_NAMESPACE", "default"),
                       help="namespace of the kube runtime's pull pods (env KRUISEBUS_PULL_NAMESPACE)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RuntimeSettings:
        return cls(kind=args.runtime, sim_url=args.sim_url, cri_socket=args.cri_socket,
                   pull_namespace=args.pull_namespace)


__all__ = ["BusSettings", "ENV_PREFIX", "ExecutorSettings", "KubeSettings", "LeaseSettings", "MetricsSettings",
           "PlannerSettings", "RuntimeSettings", "env"]
