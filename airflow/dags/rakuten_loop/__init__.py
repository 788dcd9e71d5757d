"""Helpers of the ``rakuten_retrain`` DAG: settings, project commands, serve reload.

Imported by the DAG file only (``.airflowignore`` keeps Airflow from parsing this package as
DAGs). It runs in Airflow's own environment, so it imports nothing of the project: the
project's steps run as subprocesses of its own environment (:mod:`rakuten_loop.commands`).
"""
