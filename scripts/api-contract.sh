#!/usr/bin/env bash
# Checks the REST API against its contract, the OpenAPI document at /api/openapi.json: runs
# schemathesis (pinned below) against a `segsync serve` as an admin, a contributor and a
# viewer, with its default checks, a fixed seed and a bounded number of examples per
# operation, and exits non-zero on any failure (README: "The API contract").
#
#   scripts/api-contract.sh [--bin DIR] [-- EXTRA SCHEMATHESIS ARGS]
#
# --bin DIR takes the `segsync` and `mailchimp-sim` binaries in DIR (scripts/test.sh passes
# those `cargo test` just built); by default they are built (debug, in $CARGO_TARGET_DIR). The venv of schemathesis is installed once, in
# ~/.cache/segsync/api-contract-venv, and reinstalled only when the pinned version changes.
#
# The server, a Mailchimp simulator and schemathesis run in a network namespace of their own
# with nothing but loopback (`unshare --net --mount`, as root): the requests are made up, and
# some make the server call out (a connection's API root, an alert's webhook or mail relay),
# which must reach nothing but this machine's simulator.
#
# Before the runs, a few objects exist (a connection to the simulator shared with
# contributors, a segment, an export, a run, profiles imported from a file), and the
# generated requests draw their names and ids now and then from them (schemathesis's
# dictionaries), so that operations with path parameters reach their real logic, not only
# their 404.
#
# What a check cannot hold by design, configured narrowly in the generated schemathesis.toml
# (each with its reason there): a schema-valid request may be refused with 422 by the few
# operations whose validity depends on what no JSON schema can say (SQL predicates, objects
# that must exist, a Mailchimp key's shape and API root, an uploaded file's content, alert
# settings checked together); and an operation that calls Mailchimp may answer 502 when the
# made-up API root or key is refused, which is Mailchimp's answer relayed, not a failure of
# segsync.
set -euo pipefail

ST_VERSION=4.32.5
SEED=1
MAX_EXAMPLES=10
# Per role: schemathesis stops there (a hung server fails the check rather than CI).
TIME_LIMIT=300

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ "${1:-}" != "--inside" ]]; then
  bin=""
  if [[ "${1:-}" == "--bin" ]]; then
    bin="$2"
    shift 2
  fi
  if [[ "${1:-}" == "--" ]]; then shift; fi
  if [[ -z "$bin" ]]; then
    target="${CARGO_TARGET_DIR:-$root/target}"
    echo "api-contract: building segsync and mailchimp-sim"
    (cd "$root" && cargo build --locked --quiet -p segsync -p mailchimp-sim --bins)
    bin="$target/debug"
  fi
  bin=$(cd "$bin" && pwd)
  for b in segsync mailchimp-sim; do
    [[ -x "$bin/$b" ]] || { echo "api-contract: no $b binary in $bin" >&2; exit 1; }
  done
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/segsync/api-contract-venv"
  want="schemathesis==$ST_VERSION"
  if [[ -x "$venv/bin/schemathesis" ]] && [[ "$(cat "$venv/.installed" 2>/dev/null)" == "$want" ]]; then
    echo "api-contract: $want up to date ($venv)"
  else
    echo "api-contract: installing $want into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$want"
    echo "$want" >"$venv/.installed"
  fi
  if ! unshare --net --mount true 2>/dev/null; then
    echo "api-contract: cannot make a network namespace (unshare --net --mount needs root): not run" >&2
    exit 1
  fi
  exec unshare --net --mount "${BASH_SOURCE[0]}" --inside "$bin" "$venv" "$@"
fi

# Inside the namespace: only loopback, brought up.
shift
bin="$1"
venv="$2"
shift 2
ip link set lo up

work=$(mktemp -d -t segsync-contract.XXXXXX)
# Names resolve at once to nothing (no name server answers on loopback), in this mount
# namespace only: a made-up API root fails fast instead of waiting for a name server.
echo "nameserver 127.0.0.1" >"$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export SEGSYNC_HOME="$work/home"
segsync="$bin/segsync"

# The first line a server prints once it listens: its URL.
wait_url() {
  local out="$1" prefix="$2" url=""
  for _ in $(seq 300); do
    url=$(sed -n "s|^$prefix||p" "$out" | head -1)
    [[ -n "$url" ]] && break
    sleep 0.1
  done
  [[ -n "$url" ]] || { echo "api-contract: no server ($out):" >&2; cat "$out" >&2; exit 1; }
  echo "$url"
}

key=0123456789abcdef0123456789abcdef-us6
"$bin/mailchimp-sim" --listen 127.0.0.1:0 --api-key "$key" \
  --oauth-client "segsync-contract:app-secret" >"$work/sim.out" 2>&1 &
pids+=($!)
sim=$(wait_url "$work/sim.out" "mailchimp-sim listening on ")

for role in admin contributor viewer; do
  PW="password-of-the-$role" "$segsync" user add "$role" --role "$role" --password-env PW >/dev/null
done
# Private targets allowed: the connection's API root is the simulator on loopback (the
# namespace has no other network, so nothing generated can reach anything else).
SEGSYNC_OAUTH_CLIENT_SECRET=app-secret "$segsync" serve --listen 127.0.0.1:0 \
  --allow-private-targets \
  --oauth-client-id segsync-contract --oauth-login-url "$sim/" >"$work/serve.out" 2>&1 &
pids+=($!)
url=$(wait_url "$work/serve.out" "segsync serve: listening on ")
echo "api-contract: segsync serve at $url, Mailchimp simulator at $sim"

token() { "$segsync" user token "$1" --label "$2" 2>/dev/null | awk 'END {print $NF}'; }
# A call of the set-up (as the admin); its answer's field FIELD (or nothing). A name that
# exists already (409) is what the set-up wants.
call() {
  local method="$1" path="$2" body="${3:-}" field="${4:-}" out
  out=$(curl -sS -w '\n%{http_code}' -X "$method" "$url$path" -H "Authorization: Bearer $setup" \
    ${body:+-H "Content-Type: application/json" --data "$body"})
  local code="${out##*$'\n'}"
  out="${out%$'\n'*}"
  if [[ "$code" != 2* && "$code" != 409 ]]; then
    echo "api-contract: set-up $method $path answered $code: $out" >&2
    exit 1
  fi
  [[ -z "$field" ]] || python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$out" "$field"
}
setup=$(token admin setup)
account=$(curl -sSf "$sim/_sim/accounts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accounts"][0]["account_id"])')
list=$(curl -sSf -X POST "$sim/_sim/accounts/$account/lists" -H "Content-Type: application/json" \
  --data '{"name": "Newsletter"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cat >"$work/profiles.csv" <<'EOF'
customer_id,email,first_name,last_name,city
1,ana@segsync.dev,Ana,Pop,Cluj
2,bob@segsync.dev,Bob,Ionescu,Iasi
3,cri@segsync.dev,Cristina,Marin,Brasov
EOF

# The objects the runs find (again before each run: a run may change or remove them): the
# profiles, a segment, a connection to the simulator shared with contributors, an export;
# and, named "doomed", what their DELETE may remove (the "doomed" dictionary below).
objects() {
  call POST "/api/profiles/import?path=$work/profiles.csv&key=customer_id"
  local s
  for s in everyone doomed; do
    call POST /api/segments "{\"name\": \"$s\", \"predicate\": \"1 = 1\"}"
  done
  for s in sim doomed; do
    call POST /api/connections "{\"name\": \"$s\", \"api_key\": \"$key\",
      \"base_url\": \"$sim/3.0\", \"accept_privacy_terms\": true, \"share_with_contributors\": true}"
  done
  for s in newsletter doomed; do
    call POST /api/exports "{\"name\": \"$s\", \"connection\": \"sim\", \"audience\": \"$list\",
      \"email_field\": \"email\", \"first_name\": \"first_name\", \"segments\": [{\"segment\": \"everyone\"}]}"
  done
}
objects
# A finished run.
run=$(call POST /api/exports/newsletter/runs "" run_id)
for _ in $(seq 100); do
  [[ "$(call GET "/api/runs/$run" "" progress)" == "None" ]] && break
  sleep 0.2
done

# The configuration of the runs: where generated values come from, and the narrow
# allowances (each with its reason). Of the blocks that match an operation, the first that
# sets an option decides it: the specific ones come first.
config() {
  local decoy="$1"
  cat <<EOF
# Generated by scripts/api-contract.sh.
[dictionaries]
connections = { values = ["sim"] }
segments = { values = ["everyone"] }
exports = { values = ["newsletter"] }
users = { values = ["viewer"] }
runs = { values = [$run] }
audiences = { values = ["$list"] }
columns = { values = ["email", "first_name", "city"] }
api-roots = { values = ["$sim/3.0"] }
# What DELETE may remove, so that the other operations keep their objects to the end.
doomed = { values = ["doomed"] }

[[operations]]
include-path-regex = "^/api/(connections|segments|exports)/"
include-method = "DELETE"
parameters = { "path.name" = { dictionary = "doomed", probability = 0.5 } }

# The token the run authenticates with must not be revoked by it: it revokes a decoy.
[[operations]]
include-path = "/api/tokens/{id}"
parameters = { "path.id" = $decoy }

# 422 for a schema-valid body, where what makes it valid is beyond a JSON schema:
# a connection's API key and API root are checked as Mailchimp takes them (the key's
# shape, https but on this machine, no credentials or query in the URL)...
[[operations]]
include-path = "/api/connections/{name}"
include-method = "PATCH"
parameters = { "path.name" = { dictionary = "connections", probability = 0.5 }, "body.base_url" = { dictionary = "api-roots", probability = 0.5 } }
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]
[[operations]]
include-path = "/api/connections"
include-method = "POST"
parameters = { "body.base_url" = { dictionary = "api-roots", probability = 0.5 } }
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "5xx"]
# (The API root is now and then the simulator's; the key never is: a real key without an API
# root sends the check to Mailchimp's own address, which nothing answers here and which the
# server tries again for some 20 seconds, longer than a request of the run may take.)
# ... (and calling Mailchimp at a made-up API root or with a made-up key is refused with
# 502: Mailchimp's refusal relayed, not a failure of segsync);
[[operations]]
include-path-regex = "^/api/connections"
include-method = ["POST", "PATCH", "GET"]
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502"]

# ... a new connection needs accept_privacy_terms: true, a re-authentication does not;
[[operations]]
include-path = "/api/oauth/mailchimp"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# ... a segment's predicate is SQL, read by the profile store;
[[operations]]
include-path = ["/api/segments", "/api/segments/{name}"]
include-method = ["POST", "PUT"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# ... an export names a connection, an audience, segments and profile columns that must
# exist, and a cron expression and time zone that must read;
[[operations]]
include-path = "/api/exports/{name}"
include-method = "PUT"
parameters = { "path.name" = { dictionary = "exports", probability = 0.5 }, "body.name" = { dictionary = "exports", probability = 0.5 }, "body.connection" = { dictionary = "connections", probability = 0.5 }, "body.audience" = { dictionary = "audiences", probability = 0.5 }, "body.email_field" = { dictionary = "columns", probability = 0.5 }, "body.segments[*].segment" = { dictionary = "segments", probability = 0.5 } }
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
[[operations]]
include-path = "/api/exports"
include-method = "POST"
parameters = { "body.connection" = { dictionary = "connections", probability = 0.5 }, "body.audience" = { dictionary = "audiences", probability = 0.5 }, "body.email_field" = { dictionary = "columns", probability = 0.5 }, "body.segments[*].segment" = { dictionary = "segments", probability = 0.5 } }
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# ... an uploaded file is read as the format says, and a path must be a file of the server;
[[operations]]
include-path = "/api/profiles/import"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# ... alert settings are checked together (addresses that read as e-mail addresses, a relay
# with a sender, a login with its password variable, e-mails only with a relay).
[[operations]]
include-path = "/api/settings/alerts"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# ... a suppressed address must read as an e-mail address, and a key or a note be printable
# and at most 500 characters long.
[[operations]]
include-path = ["/api/suppressions", "/api/exports/{name}/suppressions"]
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# The other operations on an object draw its name or id now and then from those that exist.
[[operations]]
include-path-regex = "^/api/connections/"
parameters = { "path.name" = { dictionary = "connections", probability = 0.5 } }
[[operations]]
include-path-regex = "^/api/segments/"
parameters = { "path.name" = { dictionary = "segments", probability = 0.5 } }
[[operations]]
include-path-regex = "^/api/exports/"
parameters = { "path.name" = { dictionary = "exports", probability = 0.5 } }
[[operations]]
include-path-regex = "^/api/users/"
parameters = { "path.name" = { dictionary = "users", probability = 0.5 } }
[[operations]]
include-path-regex = "^/api/runs/"
parameters = { "path.id" = { dictionary = "runs", probability = 0.5 } }
EOF
}

cd "$work"
failed=()
# The viewer first and the admin last: an admin's run may change what the others see.
for role in viewer contributor admin; do
  objects
  auth=$(token "$role" "contract-$role")
  decoy=$("$segsync" user token "$role" --label "contract-decoy-$role" 2>&1 | sed -n 's/^API token \([0-9]*\) .*/\1/p')
  config "$decoy" >"$work/schemathesis-$role.toml"
  echo
  echo "api-contract: schemathesis $ST_VERSION as $role (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
  if ! timeout "$TIME_LIMIT" "$venv/bin/schemathesis" --config-file "$work/schemathesis-$role.toml" \
    --no-color run "$url/api/openapi.json" -H "Authorization: Bearer $auth" \
    --seed "$SEED" --max-examples "$MAX_EXAMPLES" --workers 1 "$@"; then
    failed+=("$role")
  fi
  # The run must have kept its credentials to the end (else its last answers were 401s).
  if [[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $auth" "$url/api/me")" != 200 ]]; then
    echo "api-contract: the $role's token no longer works after its run" >&2
    failed+=("$role (token lost)")
  fi
done

echo
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "api-contract: failures as: ${failed[*]}"
  exit 1
fi
echo "api-contract: the API keeps its contract as viewer, contributor and admin"
