#!/usr/bin/env bash
# Start the Debian PostgreSQL cluster on 127.0.0.1:5432 and create the test role and
# database (idempotent). Used by .ci/run and by developers before `make test`.
set -euo pipefail
version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h | grep -q "^${version} main"; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='crimecast'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE crimecast LOGIN PASSWORD 'crimecast' CREATEDB\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='crimecast_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O crimecast crimecast_test"
echo "PostgreSQL ready: postgresql://crimecast:***@127.0.0.1:5432/crimecast_test"
