# Sourced by scripts/contract-test and scripts/browser-test (bash, `set -euo pipefail`): a Python
# tool in a virtual environment under .build/, and `gpuledger serve` on its own embedded
# PostgreSQL in a temporary folder, stopped (and its log shown on failure) when the script exits.

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# python_venv DIR MODULE PIP_SPEC: makes DIR a virtual environment holding PIP_SPEC unless it
# can import MODULE already (installs Debian's python3-venv when venv is missing).
python_venv() {
  local venv=$1 module=$2 spec=$3
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $module" 2>/dev/null; then return; fi
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"; python3 -m venv "$venv"
  fi
  # shellcheck disable=SC2086 # the spec may name several packages
  "$venv/bin/pip" install -q $spec
}

# start_temp_service NAME PORT: starts $binary (default .build/debug/gpuledger) on 127.0.0.1:PORT
# with the repository's rate cards and waits until it is ready. Sets dir (its folder; the data
# folder is $dir/data, the admin key $dir/data/admin.key), url and server (its pid).
start_temp_service() {
  binary=${GPULEDGER_BINARY:-.build/debug/gpuledger}
  dir=$(mktemp -d "/tmp/gpuledger-$1.XXXXXX")
  chmod 755 "$dir"
  url="http://127.0.0.1:$2"
  GPULEDGER_LOG_FORMAT=json GPULEDGER_LOG_LEVEL=warning "$binary" serve --data-dir "$dir/data" --port "$2" --pricing pricing >"$dir/serve.log" 2>&1 &
  server=$!
  trap _finish_temp_service EXIT
  for _ in $(seq 1 120); do
    if curl -sf "$url/readyz" >/dev/null 2>&1; then return; fi
    if ! kill -0 "$server" 2>/dev/null; then echo "the service did not start" >&2; exit 1; fi
    sleep 1
  done
  echo "the service was not ready within 120 s" >&2
  exit 1
}

_finish_temp_service() {
  local status=$?
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then echo "--- the service's log:" >&2; tail -40 "$dir/serve.log" >&2; fi
  rm -rf "$dir"
}
