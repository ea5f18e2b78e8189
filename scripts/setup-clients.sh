#!/usr/bin/env bash
# Installs what the official-client sessions need, for
# crates/mailchimp-sim/tests/official_clients.rs:
#   - clients/python/.venv: a virtualenv with clients/python/requirements.txt installed;
#   - clients/node/node_modules: `npm ci` from clients/node/package-lock.json.
# Idempotent and fast when nothing changed: each part is redone only when its requirements or
# lock file differ from what was last installed (a stamp file holds a copy of it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Python: the official `mailchimp-marketing` client in a venv.
py_dir="$root/clients/python"
venv="$py_dir/.venv"
py_stamp="$venv/.installed-requirements.txt"
if [[ -x "$venv/bin/python" ]] && cmp -s "$py_dir/requirements.txt" "$py_stamp"; then
  echo "setup-clients: python venv up to date ($venv)"
else
  echo "setup-clients: installing $py_dir/requirements.txt into $venv"
  if [[ ! -x "$venv/bin/python" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$py_dir/requirements.txt"
  "$venv/bin/python" -c "import mailchimp_marketing" # fails loudly if the install is unusable
  cp "$py_dir/requirements.txt" "$py_stamp"
fi

# Node: the official `@mailchimp/mailchimp_marketing` client from the lock file.
node_dir="$root/clients/node"
node_stamp="$node_dir/node_modules/.installed-package-lock.json"
if [[ -d "$node_dir/node_modules/@mailchimp/mailchimp_marketing" ]] && cmp -s "$node_dir/package-lock.json" "$node_stamp"; then
  echo "setup-clients: node_modules up to date ($node_dir/node_modules)"
else
  echo "setup-clients: npm ci in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$node_dir/package-lock.json" "$node_stamp"
fi
