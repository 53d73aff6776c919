#!/bin/sh
# Creates (if missing) and migrates the Temporal persistence and SQL visibility databases on PostgreSQL.
# Runs in temporalio/admin-tools; every step is idempotent: `create` ignores an existing database,
# `setup-schema -v 0.0` keeps an existing version, `update-schema` applies only missing versions.
# The password comes from SQL_PASSWORD (read by temporal-sql-tool), never from the command line.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
DB_PORT="${DB_PORT:-5432}"
PLUGIN="${SQL_PLUGIN:-postgres12}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

sql() {
  temporal-sql-tool --plugin "$PLUGIN" --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for db in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  name="${db%%:*}"
  kind="${db##*:}"
  echo "temporal-schema: ${name} (${kind})"
  sql --db "$name" create
  sql --db "$name" setup-schema -v 0.0
  sql --db "$name" update-schema -d "$SCHEMA_DIR/$kind/versioned"
done
echo "temporal-schema: done"
