#!/bin/sh
# Runs once, when the PostgreSQL volume is initialised (docker-entrypoint-initdb.d), as the superuser.
# Two least-privilege roles: `temporal` (creates and owns the temporal and temporal_visibility
# databases through the schema job) and `treatyflow` (owns the closed-case archive database).
# Passwords are passed as psql variables, so they are quoted by psql and never parsed as SQL.
set -eu

: "${TEMPORAL_DB_PASSWORD:?}" "${TREATYFLOW_DB_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v temporal_password="$TEMPORAL_DB_PASSWORD" \
     -v treatyflow_password="$TREATYFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
CREATE ROLE treatyflow LOGIN PASSWORD :'treatyflow_password';
CREATE DATABASE treatyflow OWNER treatyflow;
REVOKE ALL ON DATABASE treatyflow FROM PUBLIC;
SQL
