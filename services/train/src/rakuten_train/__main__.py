"""``python -m rakuten_train``: the same CLI as ``rakuten-train``."""

from rakuten_train.cli import app

app()
