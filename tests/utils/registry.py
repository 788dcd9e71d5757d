"""A bundle folder registered in MLflow the way training does it, for tests of registry URIs."""

from __future__ import annotations

from pathlib import Path


def register_bundle(
    folder: Path, name: str, *, alias: str | None = None, experiment_id: str | None = None
) -> tuple[str, str]:
    """Log ``folder`` as a run's ``bundle`` artifacts (the tracking URI in effect) and register it
    as a new version of ``name`` (created when missing), with ``alias`` pointing at it.

    Returns ``(run_id, version)``.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_artifacts(str(folder), artifact_path="bundle")
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/bundle", run_id=run.info.run_id
    )
    if alias is not None:
        client.set_registered_model_alias(name, alias, version.version)
    return run.info.run_id, str(version.version)
