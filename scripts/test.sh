#!/usr/bin/env bash
# Runs every check and test of the workspace, as CI does: formatting, lints, then all tests
# (the official Mailchimp clients' sessions, the web UI's browser tests and the PostgreSQL
# tests included, with what they need installed or started first if needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-clients.sh
scripts/setup-browser.sh
scripts/setup-postgres.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
