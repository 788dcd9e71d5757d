"""Every Prometheus metric of the API, defined once, with its multiprocess gauge mode.

Only :mod:`rakuten_serve.telemetry` touches these objects; the rest of the code reports events
through its methods. Each app gets its own :class:`~prometheus_client.CollectorRegistry` so
tests can build several apps in one process. With several workers (``rakuten-serve run
--workers N``) prometheus-client's multiprocess mode stores every value in per-process files
and ``/metrics`` aggregates them (see :mod:`rakuten_serve.multiproc`).

A gauge's ``multiprocess_mode`` says how the workers' values combine, and it is chosen per
gauge: ``livesum`` for amounts that add up across workers (requests in flight, requests waiting
for the model, records not yet written), ``livemin`` for readiness (the server is ready only
when every live worker is), ``livemax`` for the model identity (a version is served when at
least one live worker serves it). The ``live`` modes drop a worker's values when it exits, so
a dead worker's last queue depth does not linger.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds. Dense between 50 and 500 ms, where /predict answers on 2 cores below saturation
# (p50 36-105 ms, p99 72-342 ms in docs/monitoring.md, serving.md and performance.md):
# histogram_quantile interpolates linearly inside a bucket, so with only 0.25 and 0.5 there a
# p95 of 0.30 s read as 0.49 s; with 25-50 ms steps up to 0.3 s and 100 ms up to 0.5 s the
# error stays under 50 ms. 0.3 is the latency objective (LATENCY_OBJECTIVE_S): the SLO reads
# the ``le="0.3"`` bucket itself, no interpolation. 1 s is the p95 alert's threshold; 2.5-10 s
# keep a saturated server's tail visible. 16 bounds instead of 11: 5 more series per route.
LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
LATENCY_OBJECTIVE_S = 0.3  # the /predict latency SLO's threshold: a bucket bound (tested)
# Routes whose requests the HTTP metrics do not count: Docker's and the proxy's probes (every
# 10 s, a 503 during a database outage) and Prometheus' scrapes are not users' traffic, and the
# 5xx, 429 and latency figures, the SLOs included, must count only what clients asked.
UNMEASURED_ROUTES = frozenset({"/health/live", "/health/ready", "/metrics"})
# The routes the SLIs count (rules/slo.yml): their request series exist from the model's load.
SLI_ROUTES = ("/predict", "/feedback")
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

AUTH_FAILURE_REASONS = (
    "bad_credentials",  # POST /token: wrong user name or password, or user disabled
    "service_account_at_edge",  # POST /token: a service account's login through the proxy
    "missing_token",  # no bearer token on a protected route
    "invalid_token",  # malformed, badly signed or expired token
    "user_rejected",  # valid token of a user now unknown or disabled
    "insufficient_scope",  # valid token without the scope the route needs (403)
)
RELOAD_OUTCOMES = ("success", "failure")
IMAGE_STORE_OUTCOMES = (
    "stored",  # written to the image store
    "duplicate",  # the same bytes were already stored (retention restarted)
    "failed",  # the write failed (full disk, permissions): the image is not kept
    "dropped",  # the in-memory write queue was full: the image is not kept
)
IMAGE_STORE_EVICTIONS = ("retention", "size")
SHADOW_DROP_REASONS = ("queue_full", "error")


class Metrics:
    """The API's metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rakuten_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "rakuten_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "rakuten_http_requests_in_flight",
            "HTTP requests being handled now (all workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "rakuten_predictions",
            "Predictions served, by predicted prdtypecode.",
            ["prdtypecode"],
            registry=r,
        )
        self.confidence = Histogram(
            "rakuten_prediction_confidence",
            "Probability of the predicted class.",
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "rakuten_batch_size",
            "Number of products per model call.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inference_latency = Histogram(
            "rakuten_inference_duration_seconds",
            "Duration of one model call (a whole batch).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "rakuten_batch_queue_depth",
            "Requests waiting for the model (all workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.overloaded = Counter(
            "rakuten_overloaded_requests",
            "Requests refused with 503 because the queue was full.",
            registry=r,
        )
        self.model_info = Gauge(
            "rakuten_model_info",
            "1 for the model being served (name, version, MLflow run id, source), 0 for one "
            "replaced by a reload.",
            ["name", "version", "run_id", "source"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.model_loaded_at = Gauge(
            "rakuten_model_loaded_timestamp_seconds",
            "Unix time the served model was loaded (the latest of the live workers): "
            "dashboards draw each change as a model reload.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.model_ready = Gauge(
            "rakuten_model_ready",
            "1 when a model is loaded and warmed up (in every live worker), else 0.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.model_reloads = Counter(
            "rakuten_model_reloads", "Model reload attempts by outcome.", ["outcome"], registry=r
        )
        self.db_write_failures = Counter(
            "rakuten_db_write_failures",
            "Failed attempts to write prediction records (they are spooled and retried).",
            registry=r,
        )
        self.journal_write_failures = Counter(
            "rakuten_prediction_journal_failures",
            "Prediction records not written to the journal (full disk): still queued and "
            "written, but lost if the process dies before then.",
            registry=r,
        )
        self.records_written = Counter(
            "rakuten_prediction_records_written",
            "Prediction records written to the database.",
            registry=r,
        )
        self.records_dropped = Counter(
            "rakuten_prediction_records_dropped",
            "Prediction records lost because the spool was full.",
            registry=r,
        )
        self.records_pending = Gauge(
            "rakuten_prediction_records_pending",
            "Prediction records queued or spooled, not yet in the database (all workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.feedback = Counter(
            "rakuten_feedback",
            "Feedback received, by whether the prediction was correct and by the TRUE code.",
            ["correct", "prdtypecode"],
            registry=r,
        )
        self.auth_failures = Counter(
            "rakuten_auth_failures",
            "Refused authentications, by reason (" + ", ".join(AUTH_FAILURE_REASONS) + ").",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "rakuten_rate_limited_requests",
            "Requests refused with 429, by route.",
            ["route"],
            registry=r,
        )
        self.rate_limit_backend_errors = Counter(
            "rakuten_rate_limit_backend_errors",
            "Rate-limit storage (Redis) failures; counters fell back to this process's memory.",
            registry=r,
        )
        self.image_store_writes = Counter(
            "rakuten_image_store_writes",
            "Images handed to the image store, by outcome ("
            + ", ".join(IMAGE_STORE_OUTCOMES)
            + "); only with RAKUTEN_IMAGE_STORE_DIR.",
            ["outcome"],
            registry=r,
        )
        self.image_store_evicted = Counter(
            "rakuten_image_store_evicted",
            "Images deleted from the image store, by reason (retention, size cap).",
            ["reason"],
            registry=r,
        )
        self.image_store_bytes = Gauge(
            "rakuten_image_store_bytes",
            "Bytes in the image store after its last sweep (the folder is shared by workers).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.challenger_info = Gauge(
            "rakuten_challenger_info",
            "1 for the challenger scored in shadow (name, version), 0 for one replaced.",
            ["name", "version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.shadow_predictions = Counter(
            "rakuten_shadow_predictions",
            "Requests the challenger scored in shadow, by agreement with the champion's answer.",
            ["agreement"],
            registry=r,
        )
        self.shadow_latency = Histogram(
            "rakuten_shadow_inference_duration_seconds",
            "Duration of one challenger call in shadow (a whole batch), off the request path.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shadow_dropped = Counter(
            "rakuten_shadow_dropped",
            "Sampled requests not scored in shadow, by reason (queue_full, error).",
            ["reason"],
            registry=r,
        )
        # Series of bounded label sets exist from the start, so rate() and alerts see a 0
        # before the first event instead of no data.
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason=reason)
        for outcome in RELOAD_OUTCOMES:
            self.model_reloads.labels(outcome=outcome)
        for outcome in IMAGE_STORE_OUTCOMES:
            self.image_store_writes.labels(outcome=outcome)
        for reason in IMAGE_STORE_EVICTIONS:
            self.image_store_evicted.labels(reason=reason)
        for agreement in ("true", "false"):
            self.shadow_predictions.labels(agreement=agreement)
        for reason in SHADOW_DROP_REASONS:
            self.shadow_dropped.labels(reason=reason)
