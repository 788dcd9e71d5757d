"""The retraining loop for real (issue #14): the whole loop once, then ``airflow dags test``.

One stack, every link a real process on 127.0.0.1: Postgres (Airflow's metadata and serve's
records), an ``mlflow server``, ``rakuten-serve`` with 2 workers, the monitor, Prometheus,
Alertmanager, the alert webhook, Airflow's webserver and scheduler (LocalExecutor), a
Pushgateway, and ``dvc repro`` of the project's own stages on the offline sample in a throw-away
checkout. Three retrains run on it, in this order:

1. **The closed loop.** Shifted traffic with feedback reaches the served champion -> the
   monitor's drift gauge crosses its threshold -> Prometheus fires ``RakutenDriftAboveThreshold``
   -> Alertmanager notifies ``rakuten-monitor alert-webhook`` -> the webhook triggers
   ``rakuten_retrain`` through Airflow's REST API -> the scheduler runs it: the feedback is
   exported from serve's records and image store, ``dvc repro`` trains a challenger with it, the
   gate promotes it in MLflow, every worker of serve reloads -> serve answers with the new
   version, and a request loop running through the retrain and the reload sees no failed
   request.
2. **``airflow dags test``, refused**: a challenger that misses ``gate.test_margin: 0.5`` leaves
   the champion serving, and says why (gate JSON, task log, MLflow tags, Pushgateway).
3. **``airflow dags test``, promoted**: with margins that let any challenger through, the new
   version is promoted and served by every worker.

What differs from production, and why: MLflow's metadata is SQLite; the data is the offline
sample with small models; Prometheus evaluates every second and loads a copy of the project's
rules where only the drift alert's ``for:`` is 2 s instead of 15 min
(:func:`tests.utils.closed_loop.fast_rules`); Alertmanager's group waits are 1 s. The starting
champion learns nothing (learning rate 1e-7), so the first challenger beats it on the fixed test
split by construction and the promotion is certain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.airflow_env import (
    API_AUTH,
    PROJECT_BIN,
    airflow_bin,
    airflow_env,
    create_user,
    migrate_db,
    postgres_metadata,
)
from tests.utils.alert_webhook import AIRFLOW_PASSWORD, webhook_settings
from tests.utils.bundles import SMALL_PARAMS
from tests.utils.closed_loop import (
    DRIFT_ALERT,
    RequestLoop,
    alertmanager_config,
    fast_rules,
    shifted_traffic,
    start_airflow,
    start_webhook,
)
from tests.utils.loop_workdir import loop_params, make_workdir, write_params
from tests.utils.mlflow_server import mlflow_server
from tests.utils.monitor import run_monitor
from tests.utils.postgres import PostgresServer, free_port
from tests.utils.prometheus_stack import (
    config_for_test,
    start_alertmanager,
    start_prometheus,
    start_pushgateway,
    write_yaml,
)
from tests.utils.pushgateway_server import job_samples, value
from tests.utils.serve_app import (
    PASSWORD,
    ServeProcess,
    migrate_and_add_users,
    serve_settings,
    settings_env,
)

# about 5.5 minutes on an idle 2-core machine: four trainings (the champion, three retrains),
# the only processes that import TensorFlow (evaluation and the gate score the ONNX export)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.timeout(3600),
]

MODEL = "rakuten-multimodal"
BOT = "retrain-bot"  # the Airflow service account of the webhook, and serve's admin account
LEARNS_NOTHING = {**SMALL_PARAMS, "epochs": 1, "learning_rate": 1e-7}
LEARNS = {**SMALL_PARAMS, "epochs": 4}
TRAFFIC_ROWS = 60  # shifted products, each with feedback (a fifth is the gate's holdout)
HOLDOUT_MIN = 10  # the gate scores the 12 holdout rows (params.yaml's 50 would skip them)


@dataclass
class Stack:
    root: Path
    workdir: Path
    mlflow: str
    serve: ServeProcess
    prometheus: str
    webhook: str
    airflow: str
    airflow_home: Path
    airflow_extra: dict[str, str]  # Postgres metadata + the DAG's RAKUTEN_LOOP_* settings
    scheduler: Any
    pushgateway: str
    durations: dict[str, float]

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.mlflow, registry_uri=self.mlflow)

    def token(self, username: str) -> str:
        answer = httpx.post(
            f"{self.serve.base_url}/token",
            data={"username": username, "password": PASSWORD},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def dag_runs(self) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.airflow}/api/v1/dags/rakuten_retrain/dagRuns",
            auth=(BOT, AIRFLOW_PASSWORD),
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        runs: list[dict[str, Any]] = answer.json()["dag_runs"]
        return runs

    def served_versions(self) -> set[str]:
        """``model_version`` of every answer of ``/model`` on fresh connections (both workers)."""
        return {
            httpx.get(f"{self.serve.base_url}/model", timeout=30).json()["model_version"]
            for _ in range(6)
        }

    def dags_test(
        self, logical_date: str, conf: dict[str, object]
    ) -> subprocess.CompletedProcess[str]:
        """``airflow dags test rakuten_retrain``: the whole DAG in this process, no scheduler.

        The scheduler is stopped first: it would also run the tasks of the run this creates.
        """
        self.scheduler.close()
        return subprocess.run(
            [str(airflow_bin()), "dags", "test", "rakuten_retrain", logical_date,
             "--conf", json.dumps(conf)],
            env=airflow_env(self.airflow_home, self.airflow_extra),
            capture_output=True, text=True, timeout=1500, check=False,
        )  # fmt: skip


def _wait(what: str, check: Any, timeout_s: float, pause_s: float = 1.0) -> Any:
    """Poll ``check()`` until it returns something truthy (bounded); fail with ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(pause_s)
    raise AssertionError(f"{what}: not seen in {timeout_s:.0f} s (last: {last!r})")


def _champion(workdir: Path, root: Path, env: dict[str, str]) -> float:
    """The starting champion: the pipeline's own train registers it (alias champion).

    Up to ``train`` only: the gate scores both models on the test split itself.
    """
    started = time.monotonic()
    done = subprocess.run(
        ["dvc", "repro", "train"], cwd=workdir, env=env,
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the monitor's drift reference: the champion's bundle.json (the only file it reads)
    reference = root / "reference-bundle"
    reference.mkdir()
    shutil.copy2(workdir / "models" / "current" / "bundle.json", reference / "bundle.json")
    return time.monotonic() - started


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("closed-loop")
    durations: dict[str, float] = {}
    with ExitStack() as stack:
        postgres = PostgresServer()
        stack.callback(postgres.close)
        postgres.start()
        airflow_db = postgres_metadata(postgres.create_database("airflow", driver="psycopg2"))
        serve_db = postgres.create_database("serve")
        mlflow_url = stack.enter_context(mlflow_server(root / "mlflow"))
        workdir = make_workdir(root / "work", loop_params(train=LEARNS_NOTHING, gate={}))
        base_env = {
            "PATH": f"{PROJECT_BIN}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": mlflow_url,
            "RAKUTEN_LOG_DIR": str(root / "logs"),
            "RAKUTEN_MLFLOW_EXPERIMENT": "closed-loop-test",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_"))}
        durations["champion_training_s"] = _champion(workdir, root, {**clean, **base_env})
        # the next retrain learns (the DAG's dvc repro reads this params.yaml)
        write_params(workdir, loop_params(train=LEARNS, gate={"holdout_min_rows": HOLDOUT_MIN}))

        images = root / "image-store"
        settings = serve_settings(
            root / "serve",
            model_path=f"models:/{MODEL}@champion",
            image_store_dir=images,
            predict_rate_limit="100000/minute",
            database_url=serve_db,
        )
        migrate_and_add_users(settings, {BOT: ["admin"], "alice": ["predict", "label"]})
        serve = ServeProcess(
            settings_env(
                settings, MLFLOW_TRACKING_URI=mlflow_url, RAKUTEN_IMAGE_STORE_DIR=str(images)
            ),
            workers=2,
            log_path=root / "serve.out",
        )
        stack.callback(serve.close)

        # Airflow: metadata, the DAG serialized, then webserver (REST API) and scheduler
        home = root / "airflow"
        migrate_db(home, extra=airflow_db)
        serve_password = root / "serve_password"
        serve_password.write_text(PASSWORD + "\n", encoding="utf-8")
        serve_password.chmod(0o600)
        gateway = start_pushgateway(root)
        stack.callback(gateway.close)
        loop_env = {
            **base_env,
            **API_AUTH,
            **airflow_db,
            "RAKUTEN_RETRAIN_SCHEDULE": "none",  # triggered only: no scheduled run interferes
            "RAKUTEN_LOOP_WORKDIR": str(workdir),
            "RAKUTEN_LOOP_BIN": str(PROJECT_BIN),
            "RAKUTEN_LOOP_SERVE_URLS": serve.base_url,
            "RAKUTEN_LOOP_SERVE_USERNAME": BOT,
            "RAKUTEN_LOOP_SERVE_PASSWORD_FILE": str(serve_password),
            "RAKUTEN_LOOP_FEEDBACK": "true",
            "RAKUTEN_LOOP_DATABASE_URL": settings.database_url,
            "RAKUTEN_LOOP_IMAGES_DIR": str(images),
            "RAKUTEN_PUSHGATEWAY_URL": gateway.url,
        }
        serialized = subprocess.run(
            [str(airflow_bin()), "dags", "reserialize"], env=airflow_env(home, loop_env),
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert serialized.returncode == 0, serialized.stderr[-2000:]
        web, scheduler = start_airflow(home, loop_env)
        stack.callback(scheduler.close)
        stack.callback(web.close)
        # roles exist once the webserver runs
        create_user(home, BOT, AIRFLOW_PASSWORD, "User", extra=airflow_db)

        # the webhook, then Alertmanager pointed at it, the monitor, Prometheus scraping both;
        # the webhook asks that Prometheus whether an alert really fires
        prom_port = free_port()
        hook_settings = webhook_settings(root, web.url, airflow_username=BOT)
        assert hook_settings.alert_webhook_token_file and hook_settings.airflow_password_file
        hook_env = {
            **clean,
            "RAKUTEN_ENVIRONMENT": "test",
            "RAKUTEN_LOG_DIR": str(root / "logs"),
            "RAKUTEN_ALERT_WEBHOOK_TOKEN_FILE": str(hook_settings.alert_webhook_token_file),
            "RAKUTEN_AIRFLOW_URL": web.url,
            "RAKUTEN_AIRFLOW_USERNAME": BOT,
            "RAKUTEN_AIRFLOW_PASSWORD_FILE": str(hook_settings.airflow_password_file),
            "RAKUTEN_PROMETHEUS_URL": f"http://127.0.0.1:{prom_port}",
        }
        webhook = start_webhook(PROJECT_BIN, hook_env, root)
        stack.callback(webhook.close)
        am_config = alertmanager_config(webhook.url, hook_settings.alert_webhook_token_file)
        alertmanager = start_alertmanager(write_yaml(root / "alertmanager.yml", am_config), root)
        stack.callback(alertmanager.close)
        monitor = stack.enter_context(
            run_monitor(
                database_url=settings.database_url,
                model_path=root / "reference-bundle",
                workdir=root,
                monitor_interval_s="1",
                monitor_min_predictions="20",
                monitor_min_feedback="10",
            )
        )
        targets = {
            "serve": [f"127.0.0.1:{serve.port}"],
            "monitor": [f"127.0.0.1:{monitor.port}"],
            "pushgateway": [f"127.0.0.1:{gateway.port}"],
            "alertmanager": [f"127.0.0.1:{alertmanager.port}"],
            "prometheus": [f"127.0.0.1:{prom_port}"],
        }
        config = config_for_test(targets, alertmanager=f"127.0.0.1:{alertmanager.port}")
        config["rule_files"] = [str(fast_rules(root / "rules") / "*.yml")]
        prometheus = start_prometheus(write_yaml(root / "prometheus.yml", config), root, prom_port)
        stack.callback(prometheus.close)
        serve.wait_ready(timeout_s=900)
        yield Stack(
            root, workdir, mlflow_url, serve, prometheus.url, webhook.url, web.url,
            home, loop_env, scheduler, gateway.url, durations,
        )  # fmt: skip


def _send_shifted_traffic(stack: Stack) -> None:
    """Products without description, with image and true code: predictions, then feedback."""
    token = stack.token("alice")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.serve.base_url, headers=headers, timeout=120) as client:
        for product in shifted_traffic(stack.root, TRAFFIC_ROWS, seed=7):
            answer = client.post(
                "/predict",
                data={"designation": product.designation},
                files={"image": ("p.jpg", product.image, "image/jpeg")},
            )
            assert answer.status_code == 200, answer.text
            feedback = client.post(
                "/feedback",
                json={"request_id": answer.json()["request_id"], "prdtypecode": product.code},
            )
            assert feedback.status_code == 200, feedback.text


def _drift_states(prometheus: str) -> dict[str, str]:
    """``{feature: state}`` of the drift alerts Prometheus holds."""
    body = httpx.get(f"{prometheus}/api/v1/alerts", timeout=30).json()
    return {
        a["labels"].get("feature", ""): a["state"]
        for a in body["data"]["alerts"]
        if a["labels"]["alertname"] == DRIFT_ALERT
    }


def test_drift_alert_retrains_promotes_and_serve_reloads_without_a_failed_request(
    stack: Stack,
) -> None:
    client = stack.client()
    champion_before = client.get_model_version_by_alias(MODEL, "champion")
    (served_before,) = stack.served_versions()
    assert stack.dag_runs() == []  # nothing ran before the alert

    _send_shifted_traffic(stack)
    # 1. Prometheus: the drift alert fires (no descriptions, unlike the reference)
    firing = _wait(
        "drift alert firing",
        lambda: "firing" in _drift_states(stack.prometheus).values(),
        timeout_s=300,
    )
    assert firing
    # 2. Alertmanager -> webhook: one trigger
    runs = _wait("a DAG run triggered by the webhook", stack.dag_runs, timeout_s=300)
    triggered_at = time.monotonic()
    assert len(runs) == 1, runs
    assert runs[0]["conf"]["trigger"] == "alertmanager"
    assert DRIFT_ALERT in runs[0]["conf"]["alerts"]
    metrics = httpx.get(f"{stack.webhook}/metrics", timeout=30).text
    assert 'outcome="triggered"' in metrics

    # 3. the scheduler runs it while a request loop hits serve through the reload
    loop = RequestLoop(stack.serve.base_url, stack.token("alice"))
    loop.start()
    try:
        final = _wait(
            "the DAG run finished",
            lambda: next(
                (r for r in stack.dag_runs() if r["state"] in ("success", "failed")), None
            ),
            timeout_s=2400,
            pause_s=5,
        )
        stack.durations["dag_run_s"] = time.monotonic() - triggered_at
        time.sleep(2)  # a few answers after the reload
    finally:
        loop.stop()
    assert final["state"] == "success", _task_states(stack, final["dag_run_id"])
    # deduplicated: Alertmanager's notifications during the run started no other run
    ended = datetime.fromisoformat(final["end_date"])
    others = [r for r in stack.dag_runs() if r["dag_run_id"] != final["dag_run_id"]]
    assert not [r for r in others if datetime.fromisoformat(r["logical_date"]) < ended], others

    # 4. the feedback went into training: exported with its images, a recent holdout apart
    manifest = json.loads((stack.workdir / "data" / "feedback" / "manifest.json").read_text())
    train, holdout = manifest["train"], manifest["holdout"]
    assert train["rows"] + holdout["rows"] == TRAFFIC_ROWS, manifest
    assert holdout["rows"] > 0 and train["with_image"] == train["rows"] > 0, manifest
    assert set(train["model_versions"]) == {served_before}, manifest

    # 5. the gate promoted the challenger; MLflow's aliases moved
    gate = json.loads(next(stack.workdir.glob("reports/loop/*/gate.json")).read_text())
    assert gate["decision"] == "promote", gate
    assert gate["trigger"] == "alertmanager" and DRIFT_ALERT in gate["alerts"]
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert int(champion.version) > int(champion_before.version)
    assert champion.version == gate["challenger"]["version"]
    new_version = gate["challenger"]["model_version"]
    checked = gate["checks"]["holdout"]  # the recent feedback, never trained on, was scored
    assert not checked["skipped"] and checked["passed"], gate
    assert checked["rows"] == holdout["rows"] >= HOLDOUT_MIN, gate

    # 6. serve answers with the new version (both workers), and no request failed
    assert stack.served_versions() == {new_version} != {served_before}
    assert loop.failures == 0, (loop.statuses, loop.errors[:10])
    assert loop.versions[0] == served_before and loop.versions[-1] == new_version, loop.versions
    stack.durations.update(_task_durations(stack, final["dag_run_id"]))
    report = {**stack.durations, "requests": sum(loop.statuses.values()), "load": os.getloadavg()}
    (stack.root / "durations.json").write_text(json.dumps(report, indent=2))
    print(f"closed loop: {json.dumps(report)}")  # noqa: T201 (the figures, with -s)


def _task_instances(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{stack.airflow}/api/v1/dags/rakuten_retrain/dagRuns/{run_id}/taskInstances",
        auth=(BOT, AIRFLOW_PASSWORD),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    instances: list[dict[str, Any]] = answer.json()["task_instances"]
    return instances


def _task_states(stack: Stack, run_id: str) -> dict[str, str]:
    return {t["task_id"]: t["state"] for t in _task_instances(stack, run_id)}


def _task_durations(stack: Stack, run_id: str) -> dict[str, float]:
    """Seconds each task of the run took, as Airflow recorded them."""
    return {
        f"task_{t['task_id']}_s": round(float(t["duration"] or 0.0), 1)
        for t in _task_instances(stack, run_id)
    }


def _gate(stack: Stack, logical_date: str) -> dict[str, Any]:
    """The gate's JSON of the ``dags test`` run of ``logical_date``."""
    found = list(stack.workdir.glob(f"reports/loop/*{logical_date}*/gate.json"))
    assert len(found) == 1, found
    document: dict[str, Any] = json.loads(found[0].read_text())
    return document


def _dags_test_retrain(
    stack: Stack,
    logical_date: str,
    conf: dict[str, object],
    *,
    train: dict[str, Any],
    gate: dict[str, Any],
    timing: str,
) -> subprocess.CompletedProcess[str]:
    """Write ``params.yaml`` (a new training, new margins), run ``airflow dags test``, record
    its seconds as ``timing``; the run must succeed and never print the service password."""
    write_params(stack.workdir, loop_params(train=train, gate=gate))
    started = time.monotonic()
    run = stack.dags_test(logical_date, conf)
    stack.durations[timing] = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert PASSWORD not in run.stdout + run.stderr  # the service account's password
    return run


def test_dags_test_refuses_a_challenger_that_misses_the_margin_and_the_champion_keeps_serving(
    stack: Stack,
) -> None:
    client = stack.client()
    champion_before = client.get_model_version_by_alias(MODEL, "champion")
    served_before = stack.served_versions()
    run = _dags_test_retrain(
        stack,
        "2026-03-01",
        {},
        train={**LEARNS, "epochs": 1},  # any challenger misses a 0.5 margin
        gate={"test_margin": 0.5, "holdout_min_rows": HOLDOUT_MIN},
        timing="dags_test_refused_s",
    )

    gate = _gate(stack, "2026-03-01")
    assert gate["decision"] == "refuse" and gate["refused_by"] == "test_split", gate
    assert "+ margin 0.5000" in gate["reason"]
    assert gate["trigger"] == "manual"
    task_log = run.stdout + run.stderr
    assert "keeps serving" in task_log and gate["reason"] in task_log  # the task log says why
    champion = client.get_model_version_by_alias(MODEL, "champion")
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert champion.version == champion_before.version
    assert challenger.version == gate["challenger"]["version"] != champion.version
    assert stack.served_versions() == served_before
    run_data = client.get_run(challenger.run_id).data
    assert run_data.tags["gate.decision"] == "refuse"
    assert run_data.tags["gate.refused_by"] == "test_split"
    assert run_data.tags["gate.reason"] == gate["reason"]
    samples = job_samples(stack.pushgateway, "rakuten_retrain")
    assert value(samples, "rakuten_retrain_promoted") == 0.0
    info = samples["rakuten_retrain_decision_info"]
    assert [s[0]["refused_by"] for s in info] == ["test_split"]


def test_dags_test_promotes_a_challenger_that_passes_and_every_worker_serves_it(
    stack: Stack,
) -> None:
    client = stack.client()
    before = client.get_model_version_by_alias(MODEL, "champion")
    served_before = stack.served_versions()
    # margins any challenger passes: the promotion itself is under test, not the model's quality
    _dags_test_retrain(
        stack,
        "2026-04-01",
        {"trigger": "alertmanager", "alerts": [DRIFT_ALERT]},
        train={**LEARNS, "epochs": 2},  # new params: dvc repro trains again
        gate={"test_margin": -1.0, "holdout_margin": 1.0, "holdout_min_rows": HOLDOUT_MIN},
        timing="dags_test_promoted_s",
    )

    gate = _gate(stack, "2026-04-01")
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert gate["decision"] == "promote" and gate["challenger"]["version"] == champion.version
    assert int(champion.version) > int(before.version)
    assert gate["trigger"] == "alertmanager" and gate["alerts"] == [DRIFT_ALERT]
    assert stack.served_versions() == {gate["challenger"]["model_version"]} != served_before
    run_data = client.get_run(champion.run_id).data
    assert run_data.tags["gate.decision"] == "promote"
    assert run_data.metrics["gate.promoted"] == 1.0
    assert client.get_model_version(MODEL, champion.version).tags["promotion"] == "champion"
    samples = job_samples(stack.pushgateway, "rakuten_retrain")
    assert value(samples, "rakuten_retrain_promoted") == 1.0
    assert value(samples, "rakuten_retrain_challenger_weighted_f1") == pytest.approx(
        gate["checks"]["test_split"]["challenger_f1"]
    )
    report = {**stack.durations, "load": os.getloadavg()}
    (stack.root / "durations.json").write_text(json.dumps(report, indent=2))
    print(f"retrain loop: {json.dumps(report)}")  # noqa: T201 (the figures, with -s)
