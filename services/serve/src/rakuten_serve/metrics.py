"""Every Prometheus metric of the API, defined once.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (so tests can build several
apps in one process); ``/metrics`` exposes that registry. With several workers each process
answers for itself: scrape them behind one address with the Prometheus multiprocess mode or
scale with replicas (one worker each) as ``docs/serving.md`` explains.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


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
            "rakuten_batch_queue_depth", "Requests waiting for the model.", registry=r
        )
        self.overloaded = Counter(
            "rakuten_overloaded_requests",
            "Requests refused with 503 because the queue was full.",
            registry=r,
        )
        self.model_info = Info(
            "rakuten_model", "The model being served (name, version, run id).", registry=r
        )
        self.model_reloads = Counter(
            "rakuten_model_reloads", "Model reload attempts by outcome.", ["outcome"], registry=r
        )
        self.db_write_failures = Counter(
            "rakuten_db_write_failures",
            "Failed attempts to write prediction records (they are spooled and retried).",
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
            "Prediction records queued or spooled, not yet in the database.",
            registry=r,
        )
        self.feedback = Counter(
            "rakuten_feedback",
            "Feedback received, by whether the prediction was correct.",
            ["correct"],
            registry=r,
        )
        self.live_accuracy = Gauge(
            "rakuten_live_accuracy",
            "Accuracy over the most recent feedback (window: RAKUTEN_LIVE_ACCURACY_WINDOW).",
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
            "Rate-limit storage (Redis) failures; limits are per process until it answers.",
            registry=r,
        )
