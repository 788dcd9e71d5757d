"""``import_keras``: Keras without its scikit-learn, matplotlib and pandas integrations, and
those packages still importable afterwards (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

_PROBE = """
import json, sys
from rakuten_core.keras_import import OPTIONAL_INTEGRATIONS, import_keras
keras = import_keras()
imported_by_keras = {name: name in sys.modules for name in OPTIONAL_INTEGRATIONS}
blocked = {name: sys.modules.get(name, 0) is None for name in OPTIONAL_INTEGRATIONS}
import pandas, sklearn.metrics, matplotlib
again = import_keras() is keras
print(json.dumps({"imported_by_keras": imported_by_keras, "blocked": blocked, "again": again,
                  "pandas": pandas.__name__, "layers": hasattr(keras, "layers")}))
"""


def test_keras_comes_without_the_optional_integrations_which_stay_importable() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["imported_by_keras"] == {"sklearn": False, "matplotlib": False, "pandas": False}
    assert result["blocked"] == {"sklearn": False, "matplotlib": False, "pandas": False}
    assert result["again"] is True
    assert result["pandas"] == "pandas"
    assert result["layers"] is True
