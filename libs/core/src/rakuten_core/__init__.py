"""rakuten_core: what training, batch prediction and serving must agree on.

Nothing in this package does work at import time; TensorFlow is imported lazily by the
bundle helpers only, so the data service can use the contract without it.
"""

__version__ = "0.1.0"
