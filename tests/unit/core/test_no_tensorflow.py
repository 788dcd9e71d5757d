"""Only training installs and imports TensorFlow: every other package's modules load without it
(nor scikit-learn, nor SciPy); in training, evaluating and gating a saved bundle load it neither.

Each package's modules are all imported in a fresh interpreter (imports are cached per process,
so the test process, where training's tests have imported Keras, cannot tell), then the
interpreter's ``sys.modules`` is checked. The serve and predict images are checked to contain
no TensorFlow in tests/e2e/test_compose.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.utils.paths import REPO_ROOT

PACKAGES = ("rakuten_core", "rakuten_data", "rakuten_predict", "rakuten_serve", "rakuten_monitor")
HEAVY = ("tensorflow", "keras", "tf2onnx", "sklearn", "scipy")

_IMPORT_ALL = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [package.__name__]
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if info.name.rsplit(".", 1)[-1] == "__main__" or ".migrations" in info.name:
        continue  # __main__ runs the CLI; Alembic's env.py runs a migration
    importlib.import_module(info.name)
    names.append(info.name)
loaded = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"modules": names, "loaded": loaded}))
"""


def _fresh_interpreter(code: str, *args: str) -> Any:
    """Run ``code`` in a new interpreter; the JSON of the last line it prints."""
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_every_module_loads_no_tensorflow(package: str) -> None:
    report = _fresh_interpreter(_IMPORT_ALL, package)
    assert len(report["modules"]) > 3, report["modules"]  # the walk found the package's modules
    assert set(HEAVY) & set(report["loaded"]) == set(), package


# training's modules that score a saved bundle (its ONNX export): the evaluate command, the gate
# and the loop's commands start without TensorFlow, which only fitting and exporting need
TRAIN_WITHOUT_TENSORFLOW = (
    "rakuten_train.cli",
    "rakuten_train.loop_cli",
    "rakuten_train.evaluation",
    "rakuten_train.gate_run",
    "rakuten_train.reports",
)


def test_evaluating_and_gating_a_bundle_load_no_tensorflow() -> None:
    probe = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    loaded = set(_fresh_interpreter(probe, *TRAIN_WITHOUT_TENSORFLOW))
    assert "rakuten_train" in loaded
    assert {"tensorflow", "keras", "tf2onnx"} & loaded == set()
