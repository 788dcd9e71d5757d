"""rakuten_data: the data service (Hub download, offline sample, validation and preparation).

The console script is ``rakuten-data`` (:mod:`rakuten_data.cli`); ``python -m rakuten_data`` is
the same. Nothing runs at import time, and TensorFlow is never imported.
"""
