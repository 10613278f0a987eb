"""GPU hardware telemetry against a real Prometheus (run by scripts/dcgm-test).

A fixture exporter serves dcgm-exporter's text format for the GPUs of two pools (and of a host
that belongs to neither); Debian's Prometheus scrapes it every second; `gpuledger serve
--prometheus-url` reads it. The figures of GET /v1/stats?group_by=pool must equal the ones worked
out here from the fixture's values; with Prometheus stopped, the same report still answers, its
ledger figures unchanged, and says the hardware figures are missing.
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, ROUND_HALF_EVEN

binary = sys.argv[1] if len(sys.argv) > 1 else ".build/debug/gpuledger"
prometheus_bin = shutil.which("prometheus") or "/usr/bin/prometheus"

# The fixture: per pool, its host's GPUs. h100-a exports the profiling busy fraction
# (DCGM_FI_PROF_GR_ENGINE_ACTIVE) and a different GPU_UTIL, so using the former is seen; a100-b
# has GPU_UTIL only (the fallback). gpu-c-1 belongs to no pool.
POOLS = {
    "h100-a": {"host": "gpu-a-1", "accelerator": "H100", "model": "NVIDIA H100 80GB HBM3", "usd": "360.00", "prof": True,
               "gpus": [dict(active=0.20, util=35, used=40000, free=41920, power=310.0, temp=61),
                        dict(active=0.40, util=55, used=60000, free=21920, power=420.5, temp=66),
                        dict(active=0.60, util=75, used=78000, free=3920, power=505.0, temp=71),
                        dict(active=0.85, util=95, used=70000, free=11920, power=640.0, temp=69)]},
    "a100-b": {"host": "gpu-b-1", "accelerator": "A100", "model": "NVIDIA A100-SXM4-80GB", "usd": "180.00", "prof": False,
               "gpus": [dict(util=30, used=20000, free=61920, power=150.0, temp=55),
                        dict(util=90, used=81000, free=920, power=390.0, temp=74)]},
}
STRAY = {"host": "gpu-c-1", "model": "NVIDIA L4", "gpus": [dict(active=1.0, util=100, used=1, free=1, power=70.0, temp=90)]}
# Usage records in the window (GPU-seconds each), so the ledger's figure is there too.
RECORDS = {"h100-a": ["20", "20", "35.5"], "a100-b": ["10"]}
WINDOW = 60  # seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exposition() -> str:
    series = {k: [] for k in ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
                              "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP")}
    for pool in list(POOLS.values()) + [STRAY]:
        for i, g in enumerate(pool["gpus"]):
            labels = (f'gpu="{i}",UUID="GPU-{pool["host"]}-{i}",device="nvidia{i}",modelName="{pool["model"]}",'
                      f'Hostname="{pool["host"]}",DCGM_FI_DRIVER_VERSION="550.54.15"')
            if pool.get("prof", True) and "active" in g:
                series["DCGM_FI_PROF_GR_ENGINE_ACTIVE"].append(f"{{{labels}}} {g['active']}")
            series["DCGM_FI_DEV_GPU_UTIL"].append(f"{{{labels}}} {g['util']}")
            series["DCGM_FI_DEV_FB_USED"].append(f"{{{labels}}} {g['used']}")
            series["DCGM_FI_DEV_FB_FREE"].append(f"{{{labels}}} {g['free']}")
            series["DCGM_FI_DEV_POWER_USAGE"].append(f"{{{labels}}} {g['power']}")
            series["DCGM_FI_DEV_GPU_TEMP"].append(f"{{{labels}}} {g['temp']}")
    out = []
    for name, lines in series.items():
        out.append(f"# HELP {name} dcgm-exporter fixture\n# TYPE {name} gauge")
        out += [name + l for l in lines]
    return "\n".join(out) + "\n"


class Exporter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


work = tempfile.mkdtemp(prefix="gpl-dcgm-")
os.chmod(work, 0o755)
procs: dict = {}


def stop(name):
    p = procs.pop(name, None)
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def fail(message):
    print(f"DCGM TEST FAILED: {message}", flush=True)
    for name in ("serve", "prometheus"):
        log = f"{work}/{name}.log"
        if os.path.exists(log):
            print(f"--- {name}'s log (last lines):\n" + "".join(open(log).readlines()[-15:]))
    for name in list(procs):
        stop(name)
    shutil.rmtree(work, ignore_errors=True)
    os._exit(1)


def on_exception(kind, value, tb):
    import traceback
    traceback.print_exception(kind, value, tb)
    fail(f"{kind.__name__}: {value}")


sys.excepthook = on_exception
exporter_port, prom_port, serve_port = free_port(), free_port(), free_port()
server = http.server.ThreadingHTTPServer(("127.0.0.1", exporter_port), Exporter)
threading.Thread(target=server.serve_forever, daemon=True).start()
with open(f"{work}/prometheus.yml", "w") as f:
    f.write(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dcgm\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n")
procs["prometheus"] = subprocess.Popen([prometheus_bin, f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/tsdb",
                                        f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=open(f"{work}/prometheus.log", "w"),
                                       stderr=subprocess.STDOUT)
env = dict(os.environ, GPULEDGER_PROMETHEUS_URL=f"http://127.0.0.1:{prom_port}", GPULEDGER_LOG_FORMAT="json", GPULEDGER_LOG_LEVEL="warning")
procs["serve"] = subprocess.Popen([binary, "serve", "--data-dir", f"{work}/data", "--port", str(serve_port), "--pricing", "pricing"],
                                  env=env, stdout=open(f"{work}/serve.log", "w"), stderr=subprocess.STDOUT)
url = f"http://127.0.0.1:{serve_port}"


def wait_for(what, check, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.5)
    fail(f"{what} not within {seconds} s")


def prom(query):
    with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": query}), timeout=5) as r:
        return json.load(r)["data"]["result"]


def api(method, path, body=None):
    req = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


wait_for("gpuledger ready", lambda: urllib.request.urlopen(url + "/readyz", timeout=2).status == 200, 120)
wait_for("Prometheus scraping the fixture (5 samples)", lambda: float(prom("count_over_time(DCGM_FI_DEV_GPU_TEMP[1m])")[0]["value"][1]) >= 5, 60)
key = open(f"{work}/data/admin.key").read().strip()

to = int(time.time()) - 1
frm = to - WINDOW
iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
for name, p in POOLS.items():
    status, answer = api("PUT", f"/v1/pools/{name}", {"accelerator": p["accelerator"], "provider": "fixture", "region": "lab", "tier": "on_demand",
                                                      "usd_per_gpu_hour": p["usd"], "gpu_selector": {"Hostname": p["host"].rsplit("-", 1)[0] + "-.*"}})
    if status not in (200, 201) or answer.get("gpu_selector") != {"Hostname": p["host"].rsplit("-", 1)[0] + "-.*"}:
        fail(f"PUT /v1/pools/{name}: {status} {answer}")
    status, answer = api("POST", f"/v1/pools/{name}/capacity", {"at": iso(frm - 7200), "gpus": len(p["gpus"])})
    if status != 201:
        fail(f"capacity of {name}: {status} {answer}")
# A selector that is not one is refused, saying where.
status, answer = api("PUT", "/v1/pools/bad", {"accelerator": "H100", "provider": "fixture", "region": "lab", "tier": "on_demand",
                                              "gpu_selector": {"Hostname": "("}})
if status != 422 or "gpu_selector.Hostname" not in json.dumps(answer):
    fail(f"an invalid gpu_selector was not refused: {status} {answer}")
lines = []
for name, seconds in RECORDS.items():
    for i, gs in enumerate(seconds):
        lines.append(json.dumps({"request_id": f"{name}-{i}", "tenant": "acme", "model": "llama-3.1-70b", "accelerator": POOLS[name]["accelerator"],
                                 "pool": name, "started_at": iso(to - 30), "gpu_seconds": float(gs), "input_tokens": 100, "output_tokens": 10}))
req = urllib.request.Request(url + "/v1/usage", method="POST", data=("\n".join(lines) + "\n").encode(),
                             headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        pass
except urllib.error.HTTPError as e:
    fail(f"ingest answered {e.code}: {e.read().decode()[:400]}")


def cents(x: Decimal) -> str:
    return str(x.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def expected(name):
    p = POOLS[name]
    busy = [g["active"] if p["prof"] else g["util"] / 100 for g in p["gpus"]]
    paid_gs = Decimal(len(p["gpus"]) * WINDOW)
    paid_cost = paid_gs * Decimal(p["usd"]) / 3600
    busy_gs = Decimal(repr(sum(busy))) * WINDOW
    idle_share = max(Decimal(0), 1 - busy_gs / paid_gs)
    return {
        "utilization": sum(busy) / len(busy),
        "utilization_source": "DCGM_FI_PROF_GR_ENGINE_ACTIVE" if p["prof"] else "DCGM_FI_DEV_GPU_UTIL / 100",
        "memory_used_ratio_max": max(g["used"] / (g["used"] + g["free"]) for g in p["gpus"]),
        "power_watts_mean": sum(g["power"] for g in p["gpus"]) / len(p["gpus"]),
        "temperature_c_max": max(g["temp"] for g in p["gpus"]),
        "gpus": len(p["gpus"]),
        "paid_gpu_hours": float(paid_gs / 3600),
        "ledger_gpu_hours": float(sum(Decimal(s) for s in RECORDS[name]) / 3600),
        "busy_gpu_hours": float(busy_gs / 3600),
        "idle_allocated_cost_usd": cents(paid_cost * idle_share),
    }


path = f"/v1/stats?from={iso(frm)}&to={iso(to)}&group_by=pool"
status, report = api("GET", path)
if status != 200:
    fail(f"GET {path}: {status} {report}")
rows = {r["pool"]: r for r in report["rows"]}
checked = 0
for name in POOLS:
    row = rows.get(name)
    if row is None or row.get("hardware") is None:
        fail(f"no hardware figures for {name}: {row}")
    hw, want = row["hardware"], expected(name)
    for field, value in want.items():
        got = hw.get(field)
        ok = abs(got - value) < 1e-5 if isinstance(value, float) and isinstance(got, (int, float)) else got == value
        if not ok:
            fail(f"{name}.hardware.{field} is {got!r}, worked out {value!r}")
        checked += 1
    if row.get("hardware_note") is not None:
        fail(f"{name} has figures and a note: {row['hardware_note']}")
    print(f"{name}: utilization {hw['utilization']} ({hw['utilization_source']}), {hw['gpus']} GPUs, paid {hw['paid_gpu_hours']} GPU-h, "
          f"records {hw['ledger_gpu_hours']} GPU-h, hardware busy {hw['busy_gpu_hours']} GPU-h, allocated but idle ${hw['idle_allocated_cost_usd']}")
print(f"{checked} hardware figures of 2 pools equal the worked-out ones")

# Prometheus away: the report still answers, the same ledger figures, and says why.
stop("prometheus")
status, again = api("GET", path)
if status != 200:
    fail(f"with Prometheus stopped GET {path} answered {status} {again}")
for name in POOLS:
    row = {r["pool"]: r for r in again["rows"]}[name]
    if row["hardware"] is not None or "could not be reached" not in (row.get("hardware_note") or ""):
        fail(f"with Prometheus stopped {name} says hardware={row['hardware']} note={row.get('hardware_note')}")
    before = {k: v for k, v in rows[name].items() if k not in ("hardware", "hardware_note")}
    after = {k: v for k, v in row.items() if k not in ("hardware", "hardware_note")}
    if before != after:
        fail(f"with Prometheus stopped {name}'s ledger figures changed: {before} -> {after}")
print(f"Prometheus stopped: the report answers, ledger figures unchanged, hardware null: {row['hardware_note'][:90]}")
stop("serve")
shutil.rmtree(work, ignore_errors=True)
print("dcgm test passed")
