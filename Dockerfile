# The image of each Python service (data, train, predict, serve, monitor), from one file.
# Build from the repository root, naming the package twice (the dependencies, the stage):
#   docker build --build-arg PACKAGE=serve --target serve -t rakuten-serve .
# docker-compose.yml passes both; tests/integration/test_compose_config.py checks they agree.
#
# The uv multi-stage pattern, with the dependencies keyed by the package's own closure: the
# `requirements` stage exports from uv.lock the pinned, hashed wheels of this package alone; the
# `builder` installs them in a layer that Docker reuses as long as that export is unchanged, so a
# lock change elsewhere (a dev tool, another service's dependency) rebuilds no image that does
# not use it. The code comes after, then `uv sync` checks the environment against the lock. The
# final stage gets the virtual environment only (the packages installed as wheels: no uv, no
# sources, no build tools). Only train installs TensorFlow; serve and predict run the model's
# ONNX export.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS uv
RUN python3 -m pip install --no-cache-dir --disable-pip-version-check "uv==0.13.9"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

FROM uv AS requirements
ARG PACKAGE
RUN case "${PACKAGE}" in data|train|predict|serve|monitor) ;; \
      *) echo "build with --build-arg PACKAGE=data|train|predict|serve|monitor (got '${PACKAGE}')" >&2; \
         exit 2 ;; \
    esac
COPY uv.lock pyproject.toml ./
COPY libs/core/pyproject.toml libs/core/
COPY services/${PACKAGE}/pyproject.toml services/${PACKAGE}/
RUN uv export --frozen --no-dev --no-emit-workspace --no-header --no-annotate \
    --package "rakuten-${PACKAGE}" --output-file /requirements.txt

FROM uv AS builder
COPY --from=requirements /requirements.txt /src/requirements.txt
RUN uv venv --quiet /app/.venv \
    && uv pip install --quiet --python /app/.venv/bin/python --require-hashes --no-deps \
       -r /src/requirements.txt
ARG PACKAGE
COPY uv.lock pyproject.toml ./
COPY libs/core/pyproject.toml libs/core/
COPY services/${PACKAGE}/pyproject.toml services/${PACKAGE}/
COPY libs/core/src libs/core/src
COPY services/${PACKAGE}/src services/${PACKAGE}/src
RUN uv sync --frozen --no-dev --no-editable --package "rakuten-${PACKAGE}"

FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" rakuten \
    && useradd --system --uid "${APP_UID}" --gid rakuten --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin rakuten \
    && mkdir -p /app/data/serve-spool /app/data/serve-images /app/data/serve-models \
       /app/models /app/reports /app/logs /app/.config /app/.cache \
    && chown -R rakuten:rakuten /app/data /app/models /app/reports /app/logs /app/.config /app/.cache
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    GIT_PYTHON_REFRESH=quiet RAKUTEN_LOG_DIR=/app/logs
WORKDIR /app
USER rakuten

# One stage per service: its command, ports, health check and the files it reads.
FROM runtime AS data
COPY scripts/data-stage.sh /app/bin/data-stage.sh
CMD ["rakuten-data", "--help"]

FROM runtime AS train
COPY params.yaml /app/params.yaml
ENV TF_CPP_MIN_LOG_LEVEL=2 MPLCONFIGDIR=/app/.config/matplotlib
CMD ["rakuten-train", "--help"]

FROM runtime AS predict
CMD ["rakuten-predict", "--help"]

FROM runtime AS monitor
ENV RAKUTEN_MONITOR_HOST=0.0.0.0 RAKUTEN_MONITOR_PORT=9108
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('RAKUTEN_MONITOR_PORT', '9108'), timeout=4)"]
CMD ["rakuten-monitor", "serve-metrics"]

# Inside a container the API listens on every interface of the container's own network; the
# compose file publishes only the proxy, never serve.
FROM runtime AS serve
ENV RAKUTEN_HOST=0.0.0.0 RAKUTEN_PORT=8000 RAKUTEN_RECORD_SPOOL_DIR=/app/data/serve-spool \
    RAKUTEN_MODEL_CACHE_DIR=/app/data/serve-models
EXPOSE 8000
# A long start period: the first passing check marks it healthy at once, while on a loaded
# 2-core machine the start can take minutes; failures before then do not count.
HEALTHCHECK --interval=5s --timeout=5s --start-period=300s --retries=6 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('RAKUTEN_PORT', '8000'), timeout=4)"]
CMD ["rakuten-serve", "run", "--proxy-headers"]
