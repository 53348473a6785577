#!/bin/sh
# PostgreSQL 15 for the compose stack. First start: a cluster in the volume, the migration owner role,
# the application role (NOSUPERUSER NOBYPASSRLS: row-level security applies to it) and the database,
# with default privileges so the tables the owner's migrations create are usable by the app role.
# Passwords come from the environment (.env) and are read by psql's \getenv, never put on a command line.
set -eu
BIN=/usr/lib/postgresql/15/bin
PGDATA=/var/lib/postgresql/data/pgdata
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
: "${DB_OWNER_PASSWORD:?DB_OWNER_PASSWORD is required}"
: "${DB_APP_PASSWORD:?DB_APP_PASSWORD is required}"
DB_NAME=${DB_NAME:-cleanwithsnapshot}
DB_OWNER_USER=${DB_OWNER_USER:-cws_owner}
DB_APP_USER=${DB_APP_USER:-cws_app}
export DB_NAME DB_OWNER_USER DB_APP_USER

mkdir -p "$PGDATA" /run/postgresql /backups
chown postgres:postgres /var/lib/postgresql/data "$PGDATA" /run/postgresql /backups
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  runuser -u postgres -- "$BIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 --pwfile="$pwfile" >/dev/null
  rm -f "$pwfile"
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q -d postgres <<'SQL'
\getenv owner_user DB_OWNER_USER
\getenv owner_password DB_OWNER_PASSWORD
\getenv app_user DB_APP_USER
\getenv app_password DB_APP_PASSWORD
\getenv db_name DB_NAME
CREATE ROLE :"owner_user" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"app_user" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
CREATE DATABASE :"db_name" OWNER :"owner_user";
\connect :"db_name"
GRANT USAGE ON SCHEMA public TO :"app_user";
GRANT CREATE ON SCHEMA public TO :"owner_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_user" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_user" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"app_user";
SQL
  runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  echo "db-entrypoint: initialised $DB_NAME (owner $DB_OWNER_USER, app role $DB_APP_USER)"
fi
exec runuser -u postgres -- "$BIN/postgres" -D "$PGDATA"
