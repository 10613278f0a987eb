"""Records a fleet's months through the API and saves the FOCUS export of each kind of month
(run by scripts/focus-check, which validates them): OUT/<kind>.csv."""
import json
import os
import subprocess
import sys
import urllib.request

url, key, out = os.environ["GPULEDGER_URL"], os.environ["GPULEDGER_KEY"], sys.argv[1]
os.makedirs(out, exist_ok=True)


def call(method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token or key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def must(method, path, body=None, token=None):
    status, answer = call(method, path, body, token)
    if status >= 300:
        sys.exit(f"{method} {path}: {status} {answer[:300]}")
    return answer


def records(prefix, month, days, pool=None, tokens=False, n=60):
    out = []
    for i in range(n):
        r = {"request_id": f"{prefix}-{i}", "tenant": ["acme", "globex", "initech"][i % 3], "model": "llama-3.1-70b",
             "accelerator": "L4" if tokens else "H100", "started_at": f"{month}-{1 + i % days:02d}T{i % 24:02d}:17:00Z",
             "input_tokens": 900 + 13 * i, "output_tokens": 120 + 7 * i, "cached_input_tokens": 100}
        if pool:
            r["pool"] = pool
        if not tokens:
            r["gpu_seconds"] = 3 + (i % 11) * 0.75
        out.append(r)
    return out


must("PUT", "/v1/pools/p1", {"accelerator": "H100", "provider": "aws", "region": "us-east-1", "tier": "on_demand"})
must("POST", "/v1/pools/p1/capacity", {"at": "2026-01-01T00:00:00Z", "gpus": 4})
must("PUT", "/v1/pools/tp", {"accelerator": "L4", "provider": "aws", "region": "us-east-1", "tier": "on_demand",
                              "usd_per_gpu_hour": "0.8", "allocation": "tokens"})
must("POST", "/v1/pools/tp/capacity", {"at": "2026-01-01T00:00:00Z", "gpus": 2})
# January: usage on a pool (idle shares; unallocated idle after the 20th), on a pool that
# allocates by tokens (token shares), and on no pool (the accelerator's default rate).
must("POST", "/v1/usage", records("jan-p1", "2026-01", 20, pool="p1") + records("jan-tp", "2026-01", 20, pool="tp", tokens=True)
     + records("jan-none", "2026-01", 28))


def export(kind, period, token=None):
    body = must("GET", f"/v1/chargeback?period={period}&format=focus", token=token)
    with open(os.path.join(out, f"{kind}.csv"), "wb") as f:
        f.write(body)


export("usage-idle-tokens", "2026-01")
export("only-idle", "2026-03")
export("empty", "2025-06")
# A tenant key's export (its own lines only).
tenant_key = subprocess.run([os.environ.get("GPULEDGER_BINARY", ".build/debug/gpuledger"), "keys", "create", "--role", "tenant",
                             "--tenant", "acme", "--name", "focus-check", "--data-dir", os.environ["GPULEDGER_DATA_DIR"]],
                            check=True, capture_output=True, text=True).stdout.strip()
export("tenant-key", "2026-01", token=tenant_key)
# Close January, then change it: late records, an earlier rate, a capacity event inside it.
status, answer = call("POST", "/v1/periods/2026-01/close")
if status == 201:
    must("POST", "/v1/usage", records("jan-late", "2026-01", 28, pool="p1", n=12))
    must("POST", "/v1/pools/p1/capacity", {"at": "2026-01-25T06:00:00Z", "gpus": 6})
    export("corrections", "2026-02")
    export("closed-invoice", "2026-01")
else:
    print(f"(closing a month: {status}; no corrections export)")
print("exports:", ", ".join(sorted(os.listdir(out))))
