"""rakuten_serve: the prediction API (FastAPI), its database, metrics and web page."""

__version__ = "0.1.0"
