"""MLflow pyfunc wrapper of a bundle, logged as "model from code" (no pickled Python object).

MLflow stores this file next to the bundle (``artifacts/<bundle>/``); loading it needs only
``rakuten_core`` (for :func:`load_bundle`) plus ONNX Runtime: the bundle's ``serving/`` export,
no TensorFlow. Input: a
DataFrame with ``designation`` (str), optional ``description`` (str) and optional ``image``
(raw image file bytes); output: ``prdtypecode``, ``probability`` and the category name, using the
same cleaning and decoding as the API.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from rakuten_core.bundle import Bundle, load_bundle
from rakuten_core.errors import RakutenError
from rakuten_core.image import ImageArray, decode_image
from rakuten_core.inputs import model_inputs
from rakuten_core.registry import find_bundle_dir
from rakuten_core.text import product_text


class BundlePyfunc(PythonModel):
    """Loads the bundle with :func:`load_bundle` and predicts from raw product fields."""

    bundle: Bundle

    def load_context(self, context: Any) -> None:
        self.bundle = load_bundle(find_bundle_dir(context.artifacts["bundle"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        designations = frame.get("designation", pd.Series([""] * len(frame)))
        descriptions = frame.get("description", pd.Series([""] * len(frame)))
        texts = [
            product_text(_str(d), _str(s)) for d, s in zip(designations, descriptions, strict=True)
        ]
        raw_images = frame.get("image", pd.Series([None] * len(frame)))
        images: list[ImageArray | None] = []
        for data in raw_images:
            try:
                images.append(decode_image(data, size=self.bundle.image_size) if data else None)
            except RakutenError:
                images.append(None)
        probs = self.bundle.predict_proba(
            model_inputs(texts, images, image_size=self.bundle.image_size)
        )
        best = probs.argmax(axis=1)
        cats = self.bundle.categories
        return pd.DataFrame(
            {
                "prdtypecode": [cats.code_of(int(i)) for i in best],
                "probability": [float(probs[n, i]) for n, i in enumerate(best)],
                "category": [cats.categories[int(i)].name_en for i in best],
            }
        )


def _str(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return str(value)


mlflow.models.set_model(BundlePyfunc())
