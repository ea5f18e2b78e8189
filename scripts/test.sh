#!/usr/bin/env bash
# Runs every check and test of the workspace, as CI does: formatting, lints, then all tests
# (the official Mailchimp clients' sessions, the web UI's browser tests and the PostgreSQL
# tests included, with what they need installed or started first if needed), then the API
# contract check (scripts/api-contract.sh).
#
# One red step never hides the others: formatting, clippy and every test binary all run
# (`cargo test --no-fail-fast`), and the script ends with what failed, then exits non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-clients.sh
scripts/setup-browser.sh
scripts/setup-postgres.sh

failed=()
log=$(mktemp -t segsync-test.XXXXXX)
trap 'rm -f "$log"' EXIT

cargo fmt --all -- --check || failed+=("cargo fmt --check: the code is not formatted (run cargo fmt --all)")
cargo clippy --workspace --all-targets --locked -- -D warnings || failed+=("cargo clippy: warnings above")

set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
tests_status=${PIPESTATUS[0]}
set -e
if [ "$tests_status" -ne 0 ]; then
  while IFS= read -r t; do failed+=("test $t"); done < <(
    grep -E '^test .+ \.\.\. FAILED$' "$log" | sed -E 's/^test (.+) \.\.\. FAILED$/\1/' | sort -u)
  # Binaries that failed without a failing test (a crash, a build error) are named by cargo.
  while IFS= read -r t; do failed+=("target $t"); done < <(
    sed -n '/^error: [0-9]* targets\{0,1\} failed:/,/^[^ ]/p' "$log" | sed -nE 's/^ +`(.+)`$/\1/p')
  [ "${#failed[@]}" -gt 0 ] || failed+=("cargo test exited $tests_status (see above)")
fi

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
echo "scripts/test.sh: formatting, clippy, every test and the API contract passed"
