#!/usr/bin/env bash
# Install (if needed) and start Debian's PostgreSQL, create a throwaway test database, and print its
# SQLAlchemy URL on stdout (nothing else goes to stdout; progress goes to stderr). Exports nothing.
# Use: RECOMMENDER_TEST_POSTGRES_URL="$(bash scripts/postgres.sh)" python -m pytest tests/history/test_history_postgres.py
set -euo pipefail
DB=recommender_test
ROLE=recommender
PASSWORD=recommender
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    echo "postgres.sh: installing Debian's postgresql" >&2
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >&2
fi
read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -n 1)
if [ -z "${VERSION:-}" ]; then
    VERSION=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    as_root pg_createcluster "$VERSION" main >&2
    read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -n 1)
fi
if [ "$STATUS" != "online" ]; then
    echo "postgres.sh: starting cluster $VERSION/$CLUSTER on port $PORT" >&2
    as_root pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
psql_admin() { as_root runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi
echo "postgresql+psycopg://$ROLE:$PASSWORD@localhost:$PORT/$DB"
