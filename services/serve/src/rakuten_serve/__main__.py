"""``python -m rakuten_serve`` = the ``rakuten-serve`` command."""

from rakuten_serve.cli import app

app(prog_name="rakuten-serve")
