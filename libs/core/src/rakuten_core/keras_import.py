"""Import Keras (and TensorFlow) for inference without the integrations inference never uses.

``import keras`` also imports its scikit-learn wrappers (scikit-learn, hence most of SciPy),
its image-gallery plotting (``matplotlib.pyplot``) and pandas support for ``fit``/``predict``
on DataFrames, whenever those packages are installed, and they are in every image that has
``rakuten_core``. Measured with ``python -X importtime``: about 40 % of the import time of
TensorFlow + Keras, i.e. seconds of every serving worker's cold start (docs/performance.md).
Keras imports each of them in ``try: import ... except ImportError`` and works without them, so
while Keras is first imported they are marked missing (``sys.modules[name] = None``, the import
system's documented way to make an import fail) and unmarked right after: a later
``import pandas`` anywhere in the process works as usual.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

# Optional integrations of Keras that loading and calling a bundle never needs.
OPTIONAL_INTEGRATIONS = ("sklearn", "matplotlib", "pandas")
_lock = threading.Lock()


def import_keras() -> ModuleType:
    """``keras``, imported without :data:`OPTIONAL_INTEGRATIONS` unless they are loaded already.

    Keras then lacks ``keras.wrappers.SKLearn*``, ``keras.visualization`` plotting and
    DataFrame inputs, none of which prediction uses. Training imports Keras itself, first.
    """
    with _lock:
        if "keras" in sys.modules:
            return sys.modules["keras"]
        hidden = [name for name in OPTIONAL_INTEGRATIONS if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            return importlib.import_module("keras")
        finally:
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
