"""Keep the garbage collector's full passes off the request path.

Loading a model leaves many objects tracked by the cyclic garbage collector (about 500,000 with
TensorFlow and a Keras model, when serving ran them; fewer with ONNX Runtime, but the imports of
the web stack, SQLAlchemy and pydantic remain). Each full (generation 2) collection walks all
of them while holding the GIL: 0.4-1.2 s measured on 2 cores with TensorFlow, during which no
request progresses; under load one happens every few seconds, which was most of
``/predict``'s p99 at concurrency 32 (docs/performance.md). These
objects live as long as the model, so :func:`freeze` moves them to the permanent generation
(:func:`gc.freeze`) once the model is loaded and warmed up: later collections only walk what
requests allocate. A model swap calls :func:`refreeze` so the replaced model's reference cycles
are collected once instead of being kept forever.
"""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)


def freeze() -> None:
    """Move every object tracked now to the permanent generation (never collected)."""
    gc.freeze()
    logger.info("%d long-lived objects frozen out of garbage collection", gc.get_freeze_count())


def refreeze() -> None:
    """After a model swap: collect once (the old model's cycles), then freeze the new heap.

    One full collection (a pause of up to about a second on 2 cores), once per reload. Does
    nothing when the heap is not frozen (an app used without its lifespan, as in some tests).
    """
    if gc.get_freeze_count() == 0:
        return
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    logger.info(
        "heap collected and refrozen in %.2fs (%d objects frozen)",
        time.perf_counter() - started,
        gc.get_freeze_count(),
    )


def unfreeze() -> None:
    """At shutdown: hand the objects back to the collector (tests build many apps per process)."""
    gc.unfreeze()
