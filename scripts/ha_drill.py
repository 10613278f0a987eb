"""The fault drill behind scripts/ha-drill: see that script's header. Python 3 standard library only.

  python3 scripts/ha_drill.py [--binary .build/debug/gpuledger] [--keep]

Every figure it prints is counted, from the clients' answers and from the databases.
"""

import argparse
import atexit
import functools
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

ap = argparse.ArgumentParser()
ap.add_argument("--binary", default=os.environ.get("GPULEDGER_BINARY", ".build/debug/gpuledger"))
ap.add_argument("--keep", action="store_true", help="keep the folder (logs, data) afterwards")
ap.add_argument("--chunk", type=int, default=500, help="records per `gpuledger ingest` run")
args = ap.parse_args()
binary = os.path.abspath(args.binary)
if not os.access(binary, os.X_OK):
    sys.exit(f"no {binary}: build it first with swift build")

print = functools.partial(print, flush=True)  # noqa: A001 (progress matters when it is cut short)
START = time.monotonic()
def now() -> float:
    return time.monotonic() - START

def say(line: str) -> None:
    print(f"[{now():6.1f} s] {line}", flush=True)

pg_bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))[-1]
root = os.geteuid() == 0
work = tempfile.mkdtemp(prefix="gpl-drill-")
os.chmod(work, 0o755)
procs: dict = {}

def as_pg(cmd: list) -> list:
    """PostgreSQL's programs refuse root: run them as the postgres user when root."""
    return ["runuser", "-u", "postgres", "--"] + cmd if root else cmd

def run(cmd: list, **kw) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

p_primary, p_standby = free_port(), free_port()
serve_ports = [free_port(), free_port()]
nginx_port = free_port()
primary_dir, standby_dir = f"{work}/primary", f"{work}/standby"

def psql(port: int, sql: str) -> str:
    return run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "gpuledger", "-d", "gpuledger", "-Atq", "-c", sql]).strip()

def psql_try(port: int, sql: str):
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "gpuledger", "-d", "gpuledger", "-Atq", "-c", sql],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None

def pg_ctl(data: str, action: str, *extra: str) -> None:
    run(as_pg([f"{pg_bin}/pg_ctl", "-D", data, "-l", f"{data}.log", "-w", "-t", "60", action, *extra]))

cleaned = False

def cleanup() -> None:
    global cleaned
    if cleaned:
        return
    cleaned = True
    for name, p in list(procs.items()):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    for d in (standby_dir, primary_dir):
        if os.path.exists(f"{d}/postmaster.pid"):
            subprocess.run(as_pg([f"{pg_bin}/pg_ctl", "-D", d, "-m", "immediate", "stop"]), capture_output=True)
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)

# Also when the drill dies of an exception (nginx missing, a port taken): no replica, database
# or nginx is left running behind it.
atexit.register(cleanup)

def fail(message: str) -> None:
    print(f"HA DRILL FAILED: {message}", flush=True)
    # What the replicas' pools and the primary's backends looked like then.
    for i, port in enumerate(serve_ports):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                lines = [l for l in r.read().decode().splitlines() if l.startswith("gpuledger_database_") or l.startswith("gpuledger_background_leader")]
            print(f"serve {'ab'[i]}: " + "; ".join(lines))
        except Exception as e:
            print(f"serve {'ab'[i]}: /metrics unanswered ({e})")
    print("primary's backends: " + (psql_try(p_primary, "SELECT string_agg(coalesce(application_name, '') || ':' || coalesce(state, '') || ':' || left(coalesce(query, ''), 40), ' | ') FROM pg_stat_activity WHERE datname = 'gpuledger'") or "unanswered"))
    for name in ("serve-a", "serve-b"):
        log = f"{work}/{name}.log"
        if os.path.exists(log):
            print(f"--- {name}'s log (last lines):")
            print("".join(open(log).readlines()[-15:]))
    cleanup()
    # Not sys.exit: the load's threads would keep the process (and CI) waiting for them.
    sys.stdout.flush()
    os._exit(1)

# 1. The primary and its streaming replica.
say(f"PostgreSQL from {pg_bin}: primary on {p_primary}, streaming replica on {p_standby}")
if root:
    shutil.chown(work, "postgres")
run(as_pg([f"{pg_bin}/initdb", "-D", primary_dir, "-U", "gpuledger", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]))
with open(f"{primary_dir}/postgresql.auto.conf", "a") as f:
    f.write(f"port = {p_primary}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{work}'\n"
            "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nhot_standby_feedback = on\n")
pg_ctl(primary_dir, "start")
run(["createdb", "-h", "127.0.0.1", "-p", str(p_primary), "-U", "gpuledger", "gpuledger"])
run(as_pg([f"{pg_bin}/pg_basebackup", "-h", "127.0.0.1", "-p", str(p_primary), "-U", "gpuledger", "-D", standby_dir, "-R", "-X", "stream", "-c", "fast"]))
with open(f"{standby_dir}/postgresql.auto.conf", "a") as f:
    f.write(f"port = {p_standby}\n")
pg_ctl(standby_dir, "start")
if psql(p_standby, "SELECT pg_is_in_recovery()") != "t":
    fail("the replica is not in recovery")

# 2. Two gpuledger replicas, started together, and nginx in front.
env = dict(os.environ,
           DATABASE_URL=f"postgres://gpuledger@127.0.0.1:{p_primary}/gpuledger?sslmode=disable",
           DATABASE_READ_URL=f"postgres://gpuledger@127.0.0.1:{p_standby}/gpuledger?sslmode=disable",
           GPULEDGER_LOG_FORMAT="json", GPULEDGER_LOG_LEVEL="notice", GPULEDGER_BUDGET_GAUGE_INTERVAL="5")

def start_serve(i: int) -> None:
    name = "ab"[i]
    log = open(f"{work}/serve-{name}.log", "a")
    procs[f"serve-{name}"] = subprocess.Popen(
        [binary, "serve", "--port", str(serve_ports[i]), "--pricing", "pricing", "--instance", f"drill-{name}",
         "--data-dir", f"{work}/data-{name}"], env=env, stdout=log, stderr=subprocess.STDOUT)

def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False

def wait_for(what: str, check, timeout: float = 120) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            fail(f"{what} not within {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - t0

for i in (0, 1):
    start_serve(i)
for i in (0, 1):
    wait_for(f"serve {'ab'[i]} ready", lambda i=i: ready(serve_ports[i]))
key = next(open(f"{work}/data-{n}/admin.key").read().strip() for n in "ab" if os.path.exists(f"{work}/data-{n}/admin.key"))
keys_made = [n for n in "ab" if os.path.exists(f"{work}/data-{n}/admin.key")]
if len(keys_made) != 1:
    fail(f"the replicas made {len(keys_made)} first admin keys")

os.makedirs(f"{work}/nginx", exist_ok=True)
with open(f"{work}/nginx.conf", "w") as f:
    f.write(f"""daemon off;
worker_processes 1;
{"user root;" if root else ""}
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx/body;
    proxy_temp_path {work}/nginx/proxy;
    fastcgi_temp_path {work}/nginx/fastcgi;
    uwsgi_temp_path {work}/nginx/uwsgi;
    scgi_temp_path {work}/nginx/scgi;
    client_max_body_size 64m;
    upstream gpuledger {{
        # As deploy/nginx/gpuledger.conf.
        server 127.0.0.1:{serve_ports[0]} max_fails=3 fail_timeout=5s;
        server 127.0.0.1:{serve_ports[1]} max_fails=3 fail_timeout=5s;
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{nginx_port};
        location / {{
            proxy_pass http://gpuledger;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Ingest is idempotent: a POST that failed on one replica may be sent to the other.
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_read_timeout 300s;
        }}
    }}
}}
""")
nginx = shutil.which("nginx") or "/usr/sbin/nginx"
procs["nginx"] = subprocess.Popen([nginx, "-p", f"{work}/nginx", "-c", f"{work}/nginx.conf", "-e", f"{work}/nginx-error.log"],
                                  stdout=subprocess.DEVNULL, stderr=open(f"{work}/nginx-stderr.log", "w"))
base = f"http://127.0.0.1:{nginx_port}"
wait_for("nginx", lambda: ready(nginx_port), 30)
say(f"two gpuledger replicas on {serve_ports}, nginx on {nginx_port}")

def runs() -> dict:
    out = psql_try(p_primary, "SELECT holder || ' ' || runs FROM background_runs WHERE job = 'summary_fold'")
    return {} if out is None else {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line}

def fold_ran_after(t_wall: float):
    """True once some replica's summary fold ran after the wall-clock instant t_wall."""
    out = psql_try(p_primary, f"SELECT count(*) FROM background_runs WHERE job = 'summary_fold' AND last_at > to_timestamp({t_wall})")
    return out is not None and int(out) > 0

# Both started together: after a few seconds, one of them has run the fold, the other not at all.
wait_for("a first summary fold", lambda: len(runs()) > 0, 30)
time.sleep(3)
first = runs()
if len(first) != 1:
    fail(f"two replicas started together both ran the summary fold: {first}")
say(f"background jobs on one replica: {first}")

# 3. Load: two senders posting chunks of new records through nginx with `gpuledger ingest`, and
# two report readers every 0.2 s.
stop_load = threading.Event()
lock = threading.Lock()
totals = {"sent": 0, "accepted": 0, "duplicates": 0, "retries": 0, "failed_runs": 0, "chunks": 0}
answers: list = []  # (t, ok, read_from)
random.seed(7)

def chunk_records(sender: int, n: int) -> str:
    t_now = datetime.now(timezone.utc)
    lines = []
    for j in range(args.chunk):
        at = t_now - timedelta(seconds=random.randint(60, 7200))
        inp, out = random.randint(50, 4000), random.randint(10, 800)
        lines.append(json.dumps({
            "request_id": f"drill-{sender}-{n}-{j}", "tenant": f"tenant-{random.randint(0, 9)}",
            "model": random.choice(["llama-3.1-70b", "qwen2.5-72b", "mistral-large"]), "accelerator": "H100",
            "started_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "gpu_seconds": round((inp + 20 * out) / 1000, 3),
            "input_tokens": inp, "output_tokens": out, "ttft_ms": random.randint(100, 900), "e2e_ms": random.randint(1000, 20000)}))
    return "\n".join(lines) + "\n"

def sender(i: int) -> None:
    n = 0
    while not stop_load.is_set():
        path = f"{work}/chunk-{i}-{n}.ndjson"
        with open(path, "w") as f:
            f.write(chunk_records(i, n))
        try:
            r = subprocess.run([binary, "ingest", "--url", base, "--key", key, "--batch-size", "250", "--retries", "14", path],
                               capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            # An answer that never came: counted, and the chunk's records count as sent.
            r = subprocess.CompletedProcess([], 124, "", "no answer within 90 s")
            with lock:
                totals["hung_runs"] = totals.get("hung_runs", 0) + 1
        if os.path.exists(path):
            os.remove(path)
        with lock:
            totals["sent"] += args.chunk
            totals["chunks"] += 1
            if r.returncode != 0:
                totals["failed_runs"] += 1
                print(f"  ingest failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()[-300:]}", flush=True)
            for line in r.stdout.splitlines():
                if " records sent: " in line:
                    words = line.replace(",", "").split()
                    totals["accepted"] += int(words[words.index("accepted") - 1])
                    totals["duplicates"] += int(words[words.index("duplicates") - 1])
                    if "retries" in words:
                        totals["retries"] += int(words[words.index("retries") - 1])
        n += 1
        time.sleep(0.2)

today = datetime.now(timezone.utc).date()
report = f"{base}/v1/costs?from={today - timedelta(days=1)}&to={today + timedelta(days=1)}&group_by=tenant"

def reader() -> None:
    while not stop_load.is_set():
        t = now()
        ok, source = False, None
        try:
            req = urllib.request.Request(report, headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                json.load(r)
                ok, source = r.status == 200, r.headers.get("X-GPULedger-Read-From")
        except urllib.error.HTTPError as e:
            source = f"HTTP {e.code}: {e.read()[:120].decode(errors='replace')}"
        except Exception as e:
            source = type(e).__name__
        with lock:
            answers.append((t, ok, source))
        time.sleep(0.2)

threads = [threading.Thread(target=sender, args=(i,)) for i in (0, 1)] + [threading.Thread(target=reader) for _ in (0, 1)]
for t in threads:
    t.start()
time.sleep(6)

# 4. The faults.
faults: list = []  # (name, start, end)
holder = psql(p_primary, "SELECT holder FROM background_leases WHERE name = 'background'")
victim = "serve-" + holder.split("-")[-1]
say(f"SIGKILL {victim} (it holds the background lease)")
t0, wall0 = now(), time.time()
procs[victim].kill()
procs[victim].wait()
# The takeover: another replica holds the lease (acquired_at, by the database's clock on this
# machine); then its first fold, which also folds what piled up meanwhile.
waited = wait_for("another replica taking the lease", lambda: psql_try(
    p_primary, f"SELECT count(*) FROM background_leases WHERE holder <> 'drill-{victim[-1]}' AND acquired_at > to_timestamp({wall0})") == "1", 30)
took_at = float(psql(p_primary, "SELECT extract(epoch FROM acquired_at) FROM background_leases")) - wall0
folded = waited + wait_for("another replica running the fold", lambda: fold_ran_after(wall0), 30)
say(f"the lease taken over {took_at:.1f} s after the SIGKILL, by {psql(p_primary, 'SELECT holder FROM background_leases')}; "
    f"its first fold done {folded:.1f} s after the SIGKILL")
takeover = took_at
time.sleep(1)
start_serve("ab".index(victim[-1]))
wait_for(f"{victim} back", lambda: ready(serve_ports["ab".index(victim[-1])]))
faults.append(("SIGKILL of the runner, restarted", t0, now()))
say(f"{victim} restarted")
# The restarted replica must not run the jobs while the other holds the lease.
# (Unless the lease changed hands meanwhile, each hand-over counted in its term: then the
# jobs ran on one replica and then the other, which the drill reports and allows.)
term_before = int(psql(p_primary, "SELECT term FROM background_leases"))
before = runs()
wait_for("a fold after the restart", lambda: any(n > before.get(h, 0) for h, n in runs().items()), 30)
time.sleep(2)
after = runs()
holder_now, term_now = psql(p_primary, "SELECT holder || ' ' || term FROM background_leases").split()
grew = [h for h in after if after[h] > before.get(h, 0)]
handovers = int(term_now) - term_before
if grew == [holder_now]:
    say(f"the restarted replica stays out: the fold ran on {grew} only")
elif handovers > 0:
    # (A renewal answered too late on a loaded machine and another replica took the lease: the
    # jobs move, one runner at a time, which is what the lease is for.)
    say(f"the lease changed hands {handovers} time(s) in the window (a renewal answered late): the fold ran on {grew}, the lease is {holder_now}")
else:
    fail(f"after the restart the fold ran on {grew}, the lease is {holder_now} (term {term_before} -> {term_now})")

say("stopping the read replica")
t0 = now()
pg_ctl(standby_dir, "stop", "-m", "fast")
time.sleep(4)
pg_ctl(standby_dir, "start")
time.sleep(6)  # the replicas retry it after 5 s
faults.append(("read replica stopped 4 s, started", t0, now()))
say("read replica back")

say("restarting the primary")
t0 = now()
pg_ctl(primary_dir, "restart", "-m", "fast")
restarted, wall_back = now() - t0, time.time()
again = wait_for("the fold after the primary's restart", lambda: fold_ran_after(wall_back), 60)
faults.append(("primary restarted", t0, now()))
say(f"primary back after {restarted:.1f} s; background jobs ran again {again:.1f} s after it was back")
time.sleep(4)
stop_load.set()
for t in threads:
    t.join()
say("load stopped")

# 5. What is stored, counted from the databases.
wait_for("the summaries folded", lambda: psql_try(p_primary, "SELECT count(*) FROM usage_delta") == "0", 60)
stored = int(psql(p_primary, "SELECT count(*) FROM usage_records WHERE request_id LIKE 'drill-%'"))
distinct = int(psql(p_primary, "SELECT count(DISTINCT (tenant, request_id)) FROM usage_records"))
summarized = int(psql(p_primary, "SELECT coalesce(sum(requests), 0) FROM usage_hourly"))
wait_for("the read replica caught up", lambda: psql_try(p_standby, "SELECT count(*) FROM usage_records") == str(stored), 30)

acknowledged = totals["accepted"] + totals["duplicates"]
print()
print(f"records sent {totals['sent']} in {totals['chunks']} ingest runs; acknowledged {acknowledged} "
      f"({totals['accepted']} accepted, {totals['duplicates']} duplicates of retried batches); stored {stored}, "
      f"{distinct} distinct keys; in the summaries {summarized}; on the read replica {stored}")
print(f"client retries (503, 502, dropped connections): {totals['retries']}; ingest runs that failed: {totals['failed_runs']} "
      f"(of which hung, no answer within 90 s: {totals.get('hung_runs', 0)})")
oks = [a for a in answers if a[1]]
gaps = [b[0] - a[0] for a, b in zip(oks, oks[1:])]
print(f"report answers: {len(answers)}, {len(answers) - len(oks)} failed; from the replica {sum(1 for a in oks if a[2] == 'replica')}, "
      f"from the primary {sum(1 for a in oks if a[2] == 'primary')}; longest gap between answers {max(gaps, default=0):.2f} s")
for name, s, e in faults:
    during = [a for a in answers if s <= a[0] <= e + 2]
    print(f"  during '{name}' ({e - s:.1f} s): {sum(1 for a in during if a[1])} answers "
          f"({sum(1 for a in during if a[1] and a[2] == 'replica')} replica, {sum(1 for a in during if a[1] and a[2] == 'primary')} primary), "
          f"{sum(1 for a in during if not a[1])} failed" + "".join(f"; {n}× {why}" for why, n in sorted(
              {w: sum(1 for a in during if not a[1] and a[2] == w) for w in {a[2] for a in during if not a[1]}}.items())))
print(f"background jobs: lease taken over {takeover:.1f} s after the runner's SIGKILL (limit 10 s), first fold done after {folded:.1f} s; "
      f"ran again {again:.1f} s after the primary was back")
print(f"fold runs per replica: {runs()}")

problems = []
if stored != totals["sent"]:
    problems.append(f"{totals['sent'] - stored} records lost")
if acknowledged != totals["sent"]:
    problems.append(f"{totals['sent'] - acknowledged} records not acknowledged")
if distinct != stored or summarized != stored:
    problems.append(f"keys {distinct} / summaries {summarized} differ from the {stored} records")
if totals["failed_runs"]:
    problems.append(f"{totals['failed_runs']} ingest runs failed")
if takeover > 10:
    problems.append(f"the takeover took {takeover:.1f} s")
if problems:
    fail("; ".join(problems))
print("ha drill passed: nothing lost, nothing twice")
cleanup()
