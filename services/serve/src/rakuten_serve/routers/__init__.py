"""One router per concern; :func:`rakuten_serve.app.create_app` gathers them."""
