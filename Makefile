# Self-documenting Makefile: `make help` lists the targets with their ## comments.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=
# Coverage floor of `make test` (the whole suite, as CI runs it): the one place it is set.
COV_FAIL_UNDER := 90
COV_ARGS := --cov --cov-report=term:skip-covered --cov-report=xml:coverage.xml
# Apache Airflow's own environment (airflow/requirements.lock, never uv.lock); the DAG tests find
# it at .venv-airflow. AIRFLOW_EXCLUDE_NEWER: the release date of the pinned Airflow, so the lock
# resolves as Airflow's own constraint files did for that release.
AIRFLOW_VENV := .venv-airflow
AIRFLOW_PYTHON := 3.11
AIRFLOW_EXCLUDE_NEWER := 2025-03-01

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: uv
uv: ## Install the pinned uv if it is missing
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet "uv==$(UV_VERSION)"

.PHONY: install
install: uv ## Create .venv with every package of the workspace, exactly as uv.lock pins them
	$(UV) sync --all-packages --frozen

.PHONY: system-deps
system-deps: ## Install the servers and browser the integration tests run for real (Debian packages)
	bash scripts/system-deps.sh

.PHONY: run
run: install ## The main job via DVC: data (Hub, else offline sample) -> prepare -> train -> evaluate -> predict
	bash scripts/dvc-repro.sh

.PHONY: serve
serve: install ## Serve models/current on http://127.0.0.1:8000/ with a demo user (after make run)
	bash scripts/serve-local.sh

.PHONY: test
test: install system-deps airflow-env helm ## Run the whole test suite with coverage (fails under COV_FAIL_UNDER %)
	$(UV) run --frozen pytest $(COV_ARGS) --cov-fail-under=$(COV_FAIL_UNDER) $(PYTEST_ARGS)

.PHONY: helm
helm: ## Install the pinned Helm and kubectl into .tools/ (the chart's tests: lint, template, Secrets)
	bash scripts/install-helm.sh

.PHONY: airflow-env
airflow-env: uv ## Create .venv-airflow (Apache Airflow, for the DAG tests) from airflow/requirements.lock
	@if [[ ! -x $(AIRFLOW_VENV)/bin/airflow ]] || ! cmp -s airflow/requirements.lock $(AIRFLOW_VENV)/.lock; then \
		$(UV) venv --quiet --allow-existing --python $(AIRFLOW_PYTHON) $(AIRFLOW_VENV) \
		&& $(UV) pip sync --quiet --python $(AIRFLOW_VENV)/bin/python airflow/requirements.lock \
		&& cp airflow/requirements.lock $(AIRFLOW_VENV)/.lock; \
	fi

.PHONY: airflow-lock
airflow-lock: uv ## Re-resolve airflow/requirements.lock from airflow/requirements.in
	$(UV) pip compile --quiet --python-version $(AIRFLOW_PYTHON) --python-platform x86_64-manylinux_2_28 \
		--exclude-newer $(AIRFLOW_EXCLUDE_NEWER) --no-header --annotation-style line \
		--output-file airflow/requirements.lock airflow/requirements.in

.PHONY: bench-bentoml-env
bench-bentoml-env: install ## Create .venv-bentoml (BentoML, bench/serve_predict.py's peer) from bench/bentoml/requirements.lock
	bash bench/bentoml/setup.sh

.PHONY: test-fast
test-fast: install airflow-env helm ## Run the tests not marked slow, with a coverage report (no floor)
	$(UV) run --frozen pytest -m "not slow" $(COV_ARGS) $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff check + ruff format --check + mypy
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/core/src services/data/src services/train/src services/predict/src services/serve/src services/monitor/src
	# the DAGs, from their folder (the repository's airflow/ folder would shadow Airflow itself)
	cd airflow/dags && $(UV) run --frozen mypy --strict --config-file ../../pyproject.toml rakuten_retrain.py rakuten_loop

.PHONY: format
format: install ## Format and auto-fix with ruff
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

.PHONY: published-secrets
published-secrets: install ## Rewrite the digests of the secret-like values the repository publishes
	$(UV) run --frozen python scripts/published_secrets.py

.PHONY: helm-files
helm-files: install ## Copy the rules, dashboards and roles.sh the Helm chart ships into deploy/helm/rakuten/files
	$(UV) run --frozen python scripts/sync-helm-files.py

.PHONY: clean
clean: ## Remove caches (keeps data/, models/, .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .coverage coverage.xml
