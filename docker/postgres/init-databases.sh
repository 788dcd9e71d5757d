#!/bin/bash
# Runs once, when the Postgres volume is empty (docker-entrypoint-initdb.d): the image has
# already created POSTGRES_DB (serve's users, predictions and feedback); this adds MLflow's
# backend database and Airflow's metadata database, owned by the same role (airflow-init also
# creates the latter on a volume made before Airflow joined the stack).
set -e  # only -e: the image's entrypoint may source this file into its own shell
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -c "CREATE DATABASE \"${MLFLOW_DB:-mlflow}\" OWNER \"$POSTGRES_USER\"" \
  -c "CREATE DATABASE \"${AIRFLOW_DB:-airflow}\" OWNER \"$POSTGRES_USER\""
