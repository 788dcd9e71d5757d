"""``python -m rakuten_data``: the ``rakuten-data`` CLI without the console script."""

from rakuten_data.cli import app

app(prog_name="rakuten-data")
