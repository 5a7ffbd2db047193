#!/usr/bin/env bash
# Fuzzes the live API against its own OpenAPI document with schemathesis: every operation, with
# data that fits the document and data that does not, checking that no answer is a 5xx and that
# every answer's status, content type and body are what the document says.
#
# Starts the built server (EGRESS_BIN, default target/debug/egress) with --demo on a free
# loopback port and a fresh data dir, runs schemathesis as the demo user, stops the server and
# fails if schemathesis found anything. schemathesis lives in its own venv (SCHEMATHESIS_VENV,
# default .venv-schemathesis), pinned by scripts/schemathesis-requirements.txt. The seed is fixed,
# so a run is reproducible; SCHEMATHESIS_MAX_EXAMPLES tunes how many cases each operation gets.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${EGRESS_BIN:-$PWD/target/debug/egress}
VENV=${SCHEMATHESIS_VENV:-.venv-schemathesis}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
SEED=${SCHEMATHESIS_SEED:-20240901}
# The demo's token (crates/egress/src/demo.rs): the demo is for trying Egress locally, never for real data.
TOKEN=demo-token-0123456789abcdef

if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/schemathesis-requirements.txt

WORK=$(mktemp -d)
SERVER_PID=
RUN_PID=
# Ends whatever this script started. Both run in the background and are waited for with
# `wait`, which a signal interrupts, so an interrupted run cleans up at once.
clean_up() {
    for pid in $RUN_PID $SERVER_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$WORK"
}
trap clean_up EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT

# `timeout` ends the server even if this script is killed before its trap runs. S3 volumes may
# only use an endpoint nothing listens on, so no request leaves the machine; the rate limit is
# out of the way of the many requests a run makes.
timeout 30m "$BIN" serve --demo \
    --listen "127.0.0.1:$PORT" \
    --data-dir "$WORK/data" \
    --allow-endpoint http://127.0.0.1:9 \
    --rate-limit 1000000 \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 150); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "$BASE/v2/openapi.json" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the server did not start:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.2
done

# The demo's files get new ids in every run: `path.id` often names one of them (the static
# settings end with the [parameters] table, which the first line below extends).
CONFIG=$WORK/schemathesis.toml
cp scripts/schemathesis.toml "$CONFIG"
python3 - "$BASE" "$TOKEN" >>"$CONFIG" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1:]
req = urllib.request.Request(f"{base}/v2/files?project=demo/demo-project", headers={"X-SBG-Auth-Token": token})
ids = [f["id"] for f in json.load(urllib.request.urlopen(req))["items"]]
print('"path.id" = { dictionary = "file", probability = 0.5 }')
print("[dictionaries.file]")
print(f"values = {json.dumps(ids)}")
PY

status=0
# POST /v2/files/search answers 501 by design (it is documented so), which the server-error
# check would count as a fault; the end-to-end tests check that answer instead.
"$VENV/bin/schemathesis" --config-file "$CONFIG" --no-color \
    run "$BASE/v2/openapi.json" \
    --header "X-SBG-Auth-Token: $TOKEN" \
    --exclude-path /v2/files/search \
    --checks "${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}" \
    --mode all \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --generation-database none \
    --workers 1 &
RUN_PID=$!
wait "$RUN_PID" || status=$?
RUN_PID=

if [ "$status" -ne 0 ]; then
    echo "schemathesis failed; the server's last log lines:" >&2
    tail -n 50 "$WORK/server.log" >&2
fi
exit "$status"
