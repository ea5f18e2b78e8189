#!/usr/bin/env bash
# Makes sure the PostgreSQL the tests use is there: 127.0.0.1:5432, user postgres, no password
# (trust) for local TCP connections. The tests create and drop databases of their own.
#   - running already and answering as postgres without a password: nothing to do;
#   - installed but stopped: started;
#   - missing: Debian's package installed and started, with trust for 127.0.0.1 and ::1 only
#     (a throwaway test server, never a production one).
set -euo pipefail

sudo=""
if [[ "$(id -u)" -ne 0 ]]; then
  sudo="sudo"
fi

answers() {
  psql "postgresql://postgres@127.0.0.1:5432/postgres" -Atqc 'SELECT 1' >/dev/null 2>&1
}

if command -v psql >/dev/null 2>&1 && answers; then
  echo "setup-postgres: PostgreSQL answers at 127.0.0.1:5432"
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "setup-postgres: installing PostgreSQL (Debian's package)"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql postgresql-client
fi

# The first cluster Debian made (e.g. 15 main).
read -r version cluster _ < <(pg_lsclusters -h | head -1)
hba="/etc/postgresql/$version/$cluster/pg_hba.conf"
if ! grep -qE '^host\s+all\s+postgres\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  echo "setup-postgres: trust for postgres@127.0.0.1 in $hba"
  $sudo sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
fi
$sudo pg_ctlcluster "$version" "$cluster" start 2>/dev/null || $sudo pg_ctlcluster "$version" "$cluster" reload
for _ in $(seq 1 30); do
  answers && { echo "setup-postgres: PostgreSQL $version answers at 127.0.0.1:5432"; exit 0; }
  sleep 1
done
echo "setup-postgres: PostgreSQL does not answer at 127.0.0.1:5432 as postgres" >&2
exit 1
