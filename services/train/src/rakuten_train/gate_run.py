"""``rakuten-train gate``: measure challenger and champion, decide, record the decision.

Both models are downloaded from the registry by version number (not by alias, which another
run could move meanwhile) and scored with the same code on the same rows: the fixed test split
of ``data/processed`` and the feedback holdout. The decision and its figures go to the
challenger's MLflow run (tags ``gate.*``, metrics ``gate.*``, artifact ``gate/gate.json``), to
the model version's tags, and to a JSON file the Airflow DAG reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rakuten_core.bundle import read_metadata
from rakuten_core.categories import CATEGORIES, CategoryIndex
from rakuten_core.errors import ModelUnavailableError, RakutenError
from rakuten_core.registry import resolve_bundle
from rakuten_train.aliases import CHAMPION
from rakuten_train.evaluation import bundle_f1
from rakuten_train.gate import Decision, decide, fixed_split_check, holdout_check
from rakuten_train.gate_params import GateParams
from rakuten_train.holdout import load_holdout
from rakuten_train.splits import Split, load_split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateInputs:
    """Where the models and the rows come from."""

    model_name: str
    version: str
    tracking_uri: str
    data: Path
    raw: Path
    holdout: Path | None
    work_dir: Path  # downloads


def _version_info(client: MlflowClient, name: str, version: str, folder: Path) -> dict[str, Any]:
    """Download one version's bundle; its registry and bundle identities."""
    mv = client.get_model_version(name, version)
    bundle = resolve_bundle(
        f"models:/{name}/{version}", dst=folder, tracking_uri=client.tracking_uri
    )
    return {
        "version": str(mv.version),
        "run_id": mv.run_id,
        "model_version": read_metadata(bundle).model_version,
        "bundle": bundle,
    }


def _score(bundle: Path, test: Split, holdout: Split | None, use_holdout: bool) -> dict[str, Any]:
    return {
        "test": bundle_f1(bundle, test),
        "holdout": bundle_f1(bundle, holdout) if use_holdout and holdout is not None else None,
    }


def run_gate(inputs: GateInputs, params: GateParams, *, context: dict[str, Any]) -> dict[str, Any]:
    """Measure, decide and record; returns the gate's JSON document.

    Raises:
        ModelUnavailableError: the challenger version does not exist or cannot be downloaded.
        DataValidationError: the test split or the holdout cannot be read.
    """
    client = MlflowClient(inputs.tracking_uri, registry_uri=inputs.tracking_uri)
    try:
        challenger = _version_info(
            client, inputs.model_name, inputs.version, inputs.work_dir / "challenger"
        )
    except MlflowException as exc:
        raise ModelUnavailableError(
            f"challenger {inputs.model_name} v{inputs.version} not found: {exc.message}"
        ) from None
    test = load_split(inputs.data, "test", inputs.raw, CategoryIndex(CATEGORIES))
    holdout = load_holdout(inputs.holdout) if inputs.holdout is not None else None
    holdout_rows = len(holdout) if holdout is not None else 0
    use_holdout = holdout_rows >= params.holdout_min_rows
    scores = _score(challenger["bundle"], test, holdout, use_holdout)

    champion: dict[str, Any] | None = None
    champion_scores: dict[str, Any] = {"test": None, "holdout": None}
    note = ""
    try:
        current = client.get_model_version_by_alias(inputs.model_name, CHAMPION)
    except MlflowException:
        current = None
    already = current is not None and str(current.version) == challenger["version"]
    if current is not None and not already:
        try:
            champion = _version_info(
                client, inputs.model_name, str(current.version), inputs.work_dir / "champion"
            )
            champion_scores = _score(champion["bundle"], test, holdout, use_holdout)
        except (RakutenError, MlflowException, OSError) as exc:
            # the existing rule of train-time promotion: a champion that cannot be read
            # cannot compete, and it must not block every later model
            note = f"champion v{current.version} could not be evaluated ({exc}); "
            logger.warning("%s", note)
            champion = {"version": str(current.version), "error": str(exc)}
    elif already:
        champion = {k: v for k, v in challenger.items() if k != "bundle"}
        champion_scores = scores

    checks = [
        fixed_split_check(scores["test"], champion_scores["test"], rows=len(test), params=params),
        holdout_check(
            scores["holdout"], champion_scores["holdout"], rows=holdout_rows, params=params
        ),
    ]
    decision = decide(checks, already_champion=already)
    if note:
        decision = Decision(decision.promote, note + decision.reason, decision.checks,
                            decision.refused_by)  # fmt: skip
    document = {
        **decision.to_json(),
        "model_name": inputs.model_name,
        "challenger": {k: v for k, v in challenger.items() if k != "bundle"},
        "champion": {k: v for k, v in champion.items() if k != "bundle"} if champion else None,
        "params": params.model_dump(),
        "decided_at": datetime.now(UTC).isoformat(),
        **context,
    }
    _record(client, document, decision)
    return document


def _record(client: MlflowClient, document: dict[str, Any], decision: Decision) -> None:
    """The decision on the challenger's run and model version (never fails the gate)."""
    name, version = document["model_name"], document["challenger"]["version"]
    run_id = document["challenger"]["run_id"]
    client.set_model_version_tag(name, version, "gate", decision.decision)
    client.set_model_version_tag(name, version, "gate_reason", decision.reason[:5000])
    if not run_id:
        return
    client.set_tag(run_id, "gate.decision", decision.decision)
    client.set_tag(run_id, "gate.reason", decision.reason[:5000])
    client.set_tag(run_id, "gate.refused_by", decision.refused_by or "")
    client.set_tag(run_id, "gate.trigger", str(document.get("trigger", "")))
    client.set_tag(run_id, "gate.alerts", ",".join(document.get("alerts") or []))
    client.log_metric(run_id, "gate.promoted", 1.0 if decision.promote else 0.0)
    for check in decision.checks:
        client.log_metric(run_id, f"gate.{check.name}.rows", float(check.rows))
        for who in ("challenger", "champion"):
            value = getattr(check, f"{who}_f1")
            if value is not None:
                client.log_metric(run_id, f"gate.{check.name}.{who}_weighted_f1", float(value))
    client.log_dict(run_id, document, "gate/gate.json")
