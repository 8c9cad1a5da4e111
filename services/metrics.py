"""Every Prometheus metric kruisebus exports, defined once.

Traces answer "what happened to this rollout"; metrics answer "how is the system doing" across all of
them (rates, latencies, backlogs) and feed the Grafana overview dashboard and alerts. Each metric is
a module constant here, named `kruisebus_*`, with its labels fixed, so the services only call
`.inc()` / `.observe()` / `.set()` and the dashboards' queries can be checked against this module
(`METRIC_NAMES`). What each one means for an operator: docs/operations.md.

The metrics live in prometheus-client's default registry (with its process and Python collectors);
`services.health.HealthServer` serves them at `/metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

# Rollouts last seconds to hours; API calls and commands milliseconds to tens of seconds.
ROLLOUT_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# --- planner ---------------------------------------------------------------------------------------

ROLLOUT_DURATION = Histogram(
    "kruisebus_rollout_duration_seconds",
    "Time from a workload's update revision being created to every pod being on it.",
    ["kind"], buckets=ROLLOUT_BUCKETS,
)
ROLLOUTS_IN_PROGRESS = Gauge(
    "kruisebus_rollouts_in_progress",
    "Workloads whose pods are not all on the update revision yet (this planner's view).",
)
PLANNER_PASSES = Counter(
    "kruisebus_planner_passes_total",
    "Planner passes over one workload (each decides that workload's next commands).",
    ["kind"],
)
PLANNER_PASS_DURATION = Histogram(
    "kruisebus_planner_pass_duration_seconds",
    "Wall time of one planner pass, publishing its commands included.",
    ["kind"], buckets=CALL_BUCKETS,
)
PLANNER_COMMANDS = Counter(
    "kruisebus_planner_commands_total",
    "Commands the planner published, by verb.",
    ["verb"],
)
PLANNER_RETRIES = Counter(
    "kruisebus_planner_retries_total",
    "Decisions the planner made again after their command was rejected, by verb: re-sent, or held back "
    "by the retry backoff (a command that always fails shows `held` growing while `sent` slows down).",
    ["verb", "outcome"],
)
WORKLOAD_PODS = Gauge(
    "kruisebus_workload_pods",
    "Pods of a workload at its last planner pass: on the update revision or not, ready or not.",
    ["namespace", "workload", "revision", "ready"],
)

# --- executor --------------------------------------------------------------------------------------

EXECUTOR_COMMANDS = Counter(
    "kruisebus_executor_commands_total",
    "Commands the executor handled, by verb and outcome (done, already_done, stale, transient, "
    "permanent, error).",
    ["verb", "outcome"],
)
EXECUTOR_COMMAND_DURATION = Histogram(
    "kruisebus_executor_command_duration_seconds",
    "Wall time of one command: its API calls and its Events.",
    ["verb"], buckets=CALL_BUCKETS,
)

# --- Kubernetes API client (services.kube) ---------------------------------------------------------

KUBE_REQUESTS = Counter(
    "kruisebus_kube_requests_total",
    "Kubernetes API calls, by verb, resource and HTTP status code (0: no response).",
    ["verb", "resource", "code"],
)
KUBE_REQUEST_DURATION = Histogram(
    "kruisebus_kube_request_duration_seconds",
    "Latency of one Kubernetes API call (one attempt).",
    ["verb", "resource"], buckets=CALL_BUCKETS,
)
KUBE_THROTTLED = Counter(
    "kruisebus_kube_throttled_seconds_total",
    "Seconds writes waited in the client's own rate limiter (qps/burst).",
)

# --- NATS (services.bus) ---------------------------------------------------------------------------

CONSUMER_PENDING = Gauge(
    "kruisebus_consumer_pending",
    "Messages waiting on the server for a durable consumer, as of its last delivery (its lag).",
    ["consumer"],
)
CONSUMER_IN_FLIGHT = Gauge(
    "kruisebus_consumer_in_flight",
    "Messages this process is handling now, per durable consumer.",
    ["consumer"],
)
CONSUMER_MESSAGES = Counter(
    "kruisebus_consumer_messages_total",
    "Work-queue messages settled, by consumer and settlement (ack, nak, term).",
    ["consumer", "settle"],
)
REJECTIONS = Counter(
    "kruisebus_rejections_total",
    "`rejected` rollout events published (a command or message given up on), by reason.",
    ["reason"],
)
EVENTS_DROPPED = Counter(
    "kruisebus_events_dropped_total",
    "Rollout events not published because their workload was over the per-workload event rate, by type.",
    ["type"],
)
STREAM_LOSSES = Counter(
    "kruisebus_stream_losses_total",
    "Recoveries from a JetStream stream lost (deleted, or replaced) under a running process, by stream: "
    "the stream recreated by its owner, a watch started over on the new stream, a durable consumer recreated.",
    ["stream"],
)
STATE_EVENTS = Counter(
    "kruisebus_state_events_total",
    "Object changes the watcher published to the state stream, by kind token and change "
    "(ADDED, MODIFIED, DELETED, RELIST).",
    ["kind", "type"],
)

# --- node agents (image pulls, probes) -------------------------------------------------------------

IMAGE_PULLS = Counter(
    "kruisebus_image_pulls_total",
    "Image pulls a node agent carried out, by outcome (succeeded, failed, expired: not started by its deadline).",
    ["node", "outcome"],
)
PROBES = Counter(
    "kruisebus_probes_total",
    "Container probes the prober ran, by result (succeeded, failed).",
    ["node", "result"],
)

# --- process (every service; services/gcpolicy.py) -----------------------------------------------

GC_PAUSE = Histogram(
    "kruisebus_gc_pause_seconds",
    "Wall time of one cyclic garbage collection, during which the process does nothing else.",
    ["generation"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

ALL: tuple[MetricWrapperBase, ...] = (
    ROLLOUT_DURATION, ROLLOUTS_IN_PROGRESS, PLANNER_PASSES, PLANNER_PASS_DURATION, PLANNER_COMMANDS, PLANNER_RETRIES,
    WORKLOAD_PODS, EXECUTOR_COMMANDS, EXECUTOR_COMMAND_DURATION, KUBE_REQUESTS, KUBE_REQUEST_DURATION,
    KUBE_THROTTLED, CONSUMER_PENDING, CONSUMER_IN_FLIGHT, CONSUMER_MESSAGES, REJECTIONS, EVENTS_DROPPED, STREAM_LOSSES,
    STATE_EVENTS,
    IMAGE_PULLS, PROBES, GC_PAUSE,
)


_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
             "histogram": ("_bucket", "_sum", "_count", "_created")}


def exposed_names(metric: MetricWrapperBase) -> set[str]:
    """The series names Prometheus sees for a metric (`_total`, `_bucket`, `_sum`, `_count`...)."""
    return {family.name + suffix for family in metric.describe() for suffix in _SUFFIXES[family.type]}


METRIC_NAMES: frozenset[str] = frozenset(n for m in ALL for n in exposed_names(m))
"""Every series name a query may use (what the dashboards are checked against)."""

__all__ = [name for name in dir() if name.isupper()] + ["exposed_names"]
