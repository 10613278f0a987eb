#!/usr/bin/env python3
"""Posts a realistic, seeded demo fleet to a running gpuledger: two pools with their GPU counts,
45 days of usage records up to now (four tenants, three models, a daily cycle, labels, a few
errors) and three budgets. Used by scripts/browser-test; also a quick way to see the console
with data:

    scripts/demo-data.py http://127.0.0.1:8080 "$(cat .gpuledger/admin.key)"

Records are synthetic (seed 20261129); their shapes (tokens, GPU-seconds, latencies) follow the
Azure LLM inference trace 2023 in ../shared/data. Re-running posts the same request ids, so the
ledger is unchanged (ingest is idempotent) except for the newest hours.
"""
import json
import math
import random
import sys
import urllib.request
from datetime import datetime, timedelta, timezone

url, key = sys.argv[1].rstrip("/"), sys.argv[2]
days = int(sys.argv[3]) if len(sys.argv) > 3 else 45


def call(method, path, body):
    request = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        if error.code == 409:  # a capacity event already there: same as before
            return 409
        raise SystemExit(f"{method} {path}: {error.code} {error.read().decode()}")


now = datetime.now(timezone.utc).replace(microsecond=0)
start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0)
iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")

pools = {"h100-east": ("H100", "aws", "us-east-1", 14), "a100-west": ("A100", "aws", "us-west-2", 2)}
for name, (accelerator, provider, region, gpus) in pools.items():
    call("PUT", f"/v1/pools/{name}", {"accelerator": accelerator, "provider": provider, "region": region, "tier": "on_demand"})
    call("POST", f"/v1/pools/{name}/capacity", {"at": iso(start), "gpus": gpus})

# tenant: (share of traffic, models, teams)
tenants = {
    "acme": (0.40, ["llama-3.1-70b", "mistral-7b"], ["search", "support"]),
    "globex": (0.30, ["qwen-72b", "llama-3.1-70b"], ["analytics"]),
    "initech": (0.20, ["mistral-7b"], ["chat", "batch"]),
    "umbrella": (0.10, ["qwen-72b"], ["research"]),
}
# model: (pool, GPU-seconds per 1k output tokens, TTFT ms, TPOT ms)
models = {"llama-3.1-70b": ("h100-east", 9.0, 420, 38), "qwen-72b": ("h100-east", 10.0, 480, 41), "mistral-7b": ("a100-west", 2.2, 140, 14)}
rng = random.Random(20261129)
records, batch, sent = [], 5000, 0


def flush():
    global records, sent
    if records:
        request = urllib.request.Request(url + "/v1/usage", method="POST", data="\n".join(records).encode(),
                                         headers={"Authorization": "Bearer " + key, "Content-Type": "application/x-ndjson"})
        with urllib.request.urlopen(request) as answer:
            assert answer.status in (200, 201), answer.status
        sent += len(records)
        records = []


hour = start
growth = 1.0
while hour < now:
    # Requests this hour: a daily cycle peaking mid-afternoon UTC, weekdays busier, slow growth.
    day_index = (hour - start).days
    cycle = 0.55 + 0.45 * math.sin((hour.hour - 8) / 24 * 2 * math.pi)
    weekday = 1.0 if hour.weekday() < 5 else 0.6
    count = int(rng.gauss(150, 12) * cycle * weekday * (1 + day_index / 90))
    for i in range(max(count, 0)):
        tenant = rng.choices(list(tenants), weights=[t[0] for t in tenants.values()])[0]
        _, tenant_models, teams = tenants[tenant]
        model = rng.choice(tenant_models)
        pool, per_k, ttft, tpot = models[model]
        output = max(int(rng.lognormvariate(5.3, 0.8)), 1)
        prompt = max(int(rng.lognormvariate(7.0, 1.0)), 1)
        error = rng.random() < 0.015
        started = hour + timedelta(seconds=rng.randrange(3600))
        if started >= now:
            continue
        t = ttft * rng.lognormvariate(0, 0.35)
        p = tpot * rng.lognormvariate(0, 0.2)
        record = {
            "request_id": f"demo-{iso(hour)}-{i}", "tenant": tenant, "model": model, "accelerator": pools[pool][0], "pool": pool,
            "started_at": iso(started), "gpu_seconds": round(per_k * (output + prompt / 8) / 1000 * rng.uniform(0.8, 1.2) * 60, 3),
            "input_tokens": prompt, "output_tokens": 0 if error else output, "ttft_ms": round(t, 1), "tpot_ms": round(p, 2),
            "e2e_ms": round(t + p * output, 1), "status": "error" if error else "ok", "labels": {"team": rng.choice(teams)},
        }
        records.append(json.dumps(record, separators=(",", ":")))
        if len(records) >= batch:
            flush()
    hour += timedelta(hours=1)
flush()

call("PUT", "/v1/budgets/fleet-monthly", {"tenant": None, "period": "monthly", "amount_usd": "60000"})
call("PUT", "/v1/budgets/acme-monthly", {"tenant": "acme", "period": "monthly", "amount_usd": "14000", "thresholds": [0.5, 0.8, 1.0]})
call("PUT", "/v1/budgets/globex-quarterly", {"tenant": "globex", "period": "quarterly", "amount_usd": "40000", "basis": "total"})
print(f"demo data: {sent} usage records from {iso(start)} to {iso(now)}, 2 pools, 3 budgets")
