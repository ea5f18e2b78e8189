#!/usr/bin/env bash
# Runs every check and test of the workspace, as CI does: formatting, lints, then all tests
# (the official Mailchimp clients' sessions, the web UI's browser tests and the PostgreSQL
# and MariaDB tests included, with what they need installed or started first if needed), then the API
# contract check (scripts/api-contract.sh).
#
# Every test runs with the simulator's default profile; the end-to-end CLI suite (crash
# torture and fault soak included) runs a second time with its pessimistic profile.
#
# One red step never hides the others: formatting, clippy and every test binary all run
# (`cargo test --no-fail-fast`), and the script ends with what failed, then exits non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-clients.sh
scripts/setup-browser.sh
scripts/setup-postgres.sh
scripts/setup-mariadb.sh

failed=()
log=$(mktemp -t segsync-test.XXXXXX)
trap 'rm -f "$log"' EXIT

cargo fmt --all -- --check || failed+=("cargo fmt --check: the code is not formatted (run cargo fmt --all)")
cargo clippy --workspace --all-targets --locked -- -D warnings || failed+=("cargo clippy: warnings above")

# Adds the failures of a `cargo test` pass (its exit status, its log) to the list, each
# named with the pass's label.
collect() {
  local status=$1 log=$2 label=$3 before=${#failed[@]}
  [ "$status" -ne 0 ] || return 0
  while IFS= read -r t; do failed+=("test$label $t"); done < <(
    grep -E '^test .+ \.\.\. FAILED$' "$log" | sed -E 's/^test (.+) \.\.\. FAILED$/\1/' | sort -u)
  # Binaries that failed without a failing test (a crash, a build error) are named by cargo.
  while IFS= read -r t; do failed+=("target$label $t"); done < <(
    sed -n '/^error: [0-9]* targets\{0,1\} failed:/,/^[^ ]/p' "$log" | sed -nE 's/^ +`(.+)`$/\1/p')
  [ "${#failed[@]}" -gt "$before" ] || failed+=("cargo test$label exited $status (see above)")
}

# Every test, with the simulator's default readings of Mailchimp.
set +e
MAILCHIMP_SIM_PROFILE=default cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
tests_status=${PIPESTATUS[0]}
set -e
collect "$tests_status" "$log" ""

# The end-to-end CLI suite again (the crash torture's and the fault soak's CI forms are in
# it), with every simulator it starts taking the pessimistic profile: each reading of
# Mailchimp that is harder on a sync, 1% of new addresses refused for now included.
# `--workspace --test cli_e2e` rather than `-p segsync`: the dependencies keep the features
# of the pass above, so its build is reused instead of rebuilding segsync's dependencies.
set +e
MAILCHIMP_SIM_PROFILE=pessimistic cargo test --workspace --test cli_e2e --locked --no-fail-fast 2>&1 | tee "$log"
tests_status=${PIPESTATUS[0]}
set -e
collect "$tests_status" "$log" " (pessimistic)"

# The API contract (README): schemathesis against a server, with the binaries cargo test built.
scripts/api-contract.sh --bin "${CARGO_TARGET_DIR:-target}/debug" ||
  failed+=("scripts/api-contract.sh: the API does not keep its contract (see above)")

if [ "${#failed[@]}" -gt 0 ]; then
  echo
  echo "scripts/test.sh: ${#failed[@]} failure(s):"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo
echo "scripts/test.sh: formatting, clippy, every test (the end-to-end suite under both simulator profiles) and the API contract passed"
