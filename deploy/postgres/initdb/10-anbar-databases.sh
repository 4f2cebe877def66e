#!/bin/bash
# First start of the PostgreSQL cluster only (the official image runs
# /docker-entrypoint-initdb.d/* when the data directory is empty).
#
#   airflow    role + database: Airflow's metadata and the Celery result backend
#   warehouse  database, owned by the superuser ($POSTGRES_USER), the warehouse's administrator: the
#              ledger and the raw, clean, ref and dbt schemas. Its roles (anbar_loader,
#              anbar_transformer, the groups) are created by `anbar access apply`, which the one-shot
#              anbar-access-apply of docker-compose.yml runs as the administrator at every `up`
#              (docs/access.md).
#
# The airflow role's password comes from deploy/anbar.env through docker-compose.yml. Changing it
# later is an ALTER ROLE (see docs/operations.md): this script never runs again on an existing volume.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set airflow_password="$AIRFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8' TEMPLATE template0;

CREATE DATABASE warehouse ENCODING 'UTF8' TEMPLATE template0;

-- Least privilege: only the owners (and roles they grant) may connect.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE warehouse FROM PUBLIC;
ALTER DATABASE warehouse SET timezone TO 'UTC';
SQL
