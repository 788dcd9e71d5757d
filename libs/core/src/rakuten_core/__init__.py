"""rakuten_core: what training, batch prediction and serving must agree on.

Nothing in this package does work at import time, and nothing in it imports TensorFlow or Keras
(tests/unit/core/test_no_tensorflow.py): the Keras layers and the exporter live in training
(``rakuten_train.layers``, ``rakuten_train.export``), the only service that installs TensorFlow.
"""

__version__ = "0.1.0"
