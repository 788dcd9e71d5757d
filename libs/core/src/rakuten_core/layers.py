"""Custom Keras layers a bundle's model may contain.

They live in the contract package (not in the training service) because serving and batch
prediction must be able to deserialise a model without importing the training code. Every
layer is registered with ``keras.saving.register_keras_serializable(package="rakuten")``.
This module imports Keras: only :func:`rakuten_core.bundle.load_bundle` and the training
service import it.
"""

from __future__ import annotations
