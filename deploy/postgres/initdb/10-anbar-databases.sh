#!/bin/bash
# First start of the PostgreSQL cluster only (the official image runs
# /docker-entrypoint-initdb.d/* when the data directory is empty).
#
#   airflow    role + database: Airflow's metadata and the Celery result backend
#   anbar      role + database `warehouse`: the ledger and the raw, clean, ref and dbt schemas.
#              CREATEROLE so the warehouse bootstrap can create the access-tier roles it owns.
#
# Passwords come from deploy/anbar.env through docker-compose.yml. Changing them later is an
# ALTER ROLE (see docs/operations.md): this script never runs again on an existing volume.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set}"
: "${WAREHOUSE_DB_PASSWORD:?WAREHOUSE_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set airflow_password="$AIRFLOW_DB_PASSWORD" \
     --set warehouse_password="$WAREHOUSE_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8' TEMPLATE template0;

CREATE ROLE anbar LOGIN CREATEROLE PASSWORD :'warehouse_password';
CREATE DATABASE warehouse OWNER anbar ENCODING 'UTF8' TEMPLATE template0;

-- Least privilege: only the owners (and roles they grant) may connect.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE warehouse FROM PUBLIC;
ALTER DATABASE warehouse SET timezone TO 'UTC';
SQL
