#!/bin/sh
# PostgreSQL init script (run once by the postgres image on an empty data directory):
# one role and one database per service, each service owning only its own database.
# Passwords come from the environment of the postgres container.
set -eu

create_service_db() {
  name="$1"
  password="$2"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v name="$name" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \gexec
SQL
}

create_service_db client_directory "${CLIENT_DIRECTORY_DB_PASSWORD:?CLIENT_DIRECTORY_DB_PASSWORD is not set}"
create_service_db notifier "${NOTIFIER_DB_PASSWORD:?NOTIFIER_DB_PASSWORD is not set}"
