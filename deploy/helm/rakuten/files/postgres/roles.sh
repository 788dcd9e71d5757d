#!/bin/bash
# The db-roles one-shot, at every `docker compose up` (idempotent): one Postgres role per
# service with the least privilege that works, each role's password from its generated file
# (so `rakuten-secrets rotate db_serve_password` takes effect here), the databases and their
# owners. Connects as the superuser, which no application uses. Passwords are read by psql
# itself (\set with a backquoted cat): never on a command line, in the environment or a log.
#
#   rakuten_owner    owns database rakuten and its schema: the migrations (migrate) run as it
#   rakuten_serve    SELECT/INSERT/UPDATE/DELETE on serve's tables; creates nothing
#   rakuten_monitor  SELECT on serve's tables
#   mlflow           owns databases mlflow and mlflow_auth (its users and permissions)
#   airflow          owns database airflow; SELECT on serve's tables (the feedback export)
set -euo pipefail
export PGUSER=postgres PGDATABASE=postgres
PGPASSWORD=$(</run/secrets/postgres_password)
export PGPASSWORD
psql -v ON_ERROR_STOP=1 -q <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', r)
  FROM unnest(ARRAY['rakuten_owner', 'rakuten_serve', 'rakuten_monitor', 'mlflow', 'airflow']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)
\gexec
\set pw `cat /run/secrets/db_owner_password`
ALTER ROLE rakuten_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'pw';
\set pw `cat /run/secrets/db_serve_password`
ALTER ROLE rakuten_serve LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'pw';
\set pw `cat /run/secrets/db_monitor_password`
ALTER ROLE rakuten_monitor LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'pw';
\set pw `cat /run/secrets/db_mlflow_password`
ALTER ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'pw';
\set pw `cat /run/secrets/db_airflow_password`
ALTER ROLE airflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'pw';
\unset pw
SELECT format('CREATE DATABASE %I OWNER %I', d, o)
  FROM (VALUES ('rakuten', 'rakuten_owner'), ('mlflow', 'mlflow'), ('mlflow_auth', 'mlflow'),
               ('airflow', 'airflow')) AS t(d, o)
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec
ALTER DATABASE rakuten OWNER TO rakuten_owner;
ALTER DATABASE mlflow OWNER TO mlflow;
ALTER DATABASE mlflow_auth OWNER TO mlflow;
ALTER DATABASE airflow OWNER TO airflow;
REVOKE ALL ON DATABASE rakuten, mlflow, mlflow_auth, airflow FROM PUBLIC;
GRANT CONNECT ON DATABASE rakuten TO rakuten_serve, rakuten_monitor, airflow;
\connect rakuten
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO rakuten_owner;
GRANT USAGE ON SCHEMA public TO rakuten_serve, rakuten_monitor, airflow;
-- tables made before the roles existed (by the superuser) go to the owner role
SELECT format('ALTER TABLE public.%I OWNER TO rakuten_owner', tablename)
  FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'rakuten_owner'
\gexec
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rakuten_serve;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO rakuten_serve;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO rakuten_monitor, airflow;
ALTER DEFAULT PRIVILEGES FOR ROLE rakuten_owner IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO rakuten_serve;
ALTER DEFAULT PRIVILEGES FOR ROLE rakuten_owner IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO rakuten_serve;
ALTER DEFAULT PRIVILEGES FOR ROLE rakuten_owner IN SCHEMA public
  GRANT SELECT ON TABLES TO rakuten_monitor, airflow;
SQL
echo "db-roles: roles, passwords, databases and grants in place"
