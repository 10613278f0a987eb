"""Tracing of gpuledger itself (run by scripts/trace-test): a test OTLP/HTTP receiver decodes what
gpuledger exports with opentelemetry-proto (PyPI); an ingest request and a report request sent with
a caller's W3C traceparent must come back with that trace id in their traceparent, and their spans
(the server span, auth, parse, COPY, COMMIT; the report's query) must reach the receiver in that
trace, the server span a child of the caller's span.
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
import urllib.request
import uuid

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

binary = sys.argv[1] if len(sys.argv) > 1 else ".build/debug/gpuledger"
spans: list = []
asked: list = []
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404)
            self.end_headers()
            return
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        with lock:
            for rs in request.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        spans.append({"service": service, "trace": s.trace_id.hex(), "span": s.span_id.hex(), "parent": s.parent_span_id.hex(),
                                      "name": s.name, "kind": s.kind})
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


work = tempfile.mkdtemp(prefix="gpl-trace-")
os.chmod(work, 0o755)
receiver_port, serve_port = free_port(), free_port()
receiver = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver_port}", OTEL_SERVICE_NAME="gpuledger-trace-test",
           OTEL_BSP_SCHEDULE_DELAY="200", GPULEDGER_LOG_FORMAT="json", GPULEDGER_LOG_LEVEL="warning")
serve = subprocess.Popen([binary, "serve", "--data-dir", f"{work}/data", "--port", str(serve_port), "--pricing", "pricing"],
                         env=env, stdout=open(f"{work}/serve.log", "w"), stderr=subprocess.STDOUT)
url = f"http://127.0.0.1:{serve_port}"


def finish(code, message):
    print(message, flush=True)
    if code and os.path.exists(f"{work}/serve.log"):
        print("--- the service's log (last lines):\n" + "".join(open(f"{work}/serve.log").readlines()[-15:]))
    serve.terminate()
    try:
        serve.wait(timeout=20)
    except subprocess.TimeoutExpired:
        serve.kill()
    shutil.rmtree(work, ignore_errors=True)
    os._exit(code)


def wait_for(what, check, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    finish(1, f"TRACE TEST FAILED: {what} not within {seconds} s; spans received: {spans}; asked: {asked}")


wait_for("gpuledger ready", lambda: urllib.request.urlopen(url + "/readyz", timeout=2).status == 200, 120)
key = open(f"{work}/data/admin.key").read().strip()


def call(method, path, body, trace_id, parent):
    asked.append((trace_id, parent))
    req = urllib.request.Request(url + path, method=method, data=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson", "traceparent": f"00-{trace_id}-{parent}-01"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("traceparent")
    except urllib.error.HTTPError as e:
        finish(1, f"TRACE TEST FAILED: {method} {path} answered {e.code}: {e.read()[:300]}")


def check(what, trace_id, parent, status, returned, names):
    if returned is None or returned.split("-")[1] != trace_id:
        finish(1, f"TRACE TEST FAILED: {what}: the answer's traceparent {returned!r} is not of trace {trace_id}")
    def arrived():
        with lock:
            mine = [s for s in spans if s["trace"] == trace_id]
        return all(any(s["name"] == n for s in mine) for n in names)
    wait_for(f"{what}'s spans {names}", arrived, 30)
    with lock:
        mine = [s for s in spans if s["trace"] == trace_id]
    roots = [s for s in mine if s["parent"] == parent]
    if len(roots) != 1 or roots[0]["kind"] != 2:  # SPAN_KIND_SERVER
        finish(1, f"TRACE TEST FAILED: {what}: one server span should be the child of the caller's span {parent}: {mine}")
    if any(s["service"] != "gpuledger-trace-test" for s in mine):
        finish(1, f"TRACE TEST FAILED: {what}: spans of another service.name: {mine}")
    print(f"{what}: HTTP {status}, traceparent {returned}; {len(mine)} spans in trace {trace_id}: "
          + ", ".join(sorted(s['name'] for s in mine)))


record = json.dumps({"request_id": "traced-1", "tenant": "acme", "model": "llama-3.1-70b", "accelerator": "H100",
                     "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)), "gpu_seconds": 2.5,
                     "input_tokens": 100, "output_tokens": 20}) + "\n"
trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
status, returned = call("POST", "/v1/usage", record.encode(), trace_id, parent)
check("POST /v1/usage", trace_id, parent, status, returned, ["/v1/usage", "auth", "parse", "COPY usage_records", "COPY usage_delta", "COMMIT"])
trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
status, returned = call("GET", "/v1/stats?group_by=model", None, trace_id, parent)
check("GET /v1/stats", trace_id, parent, status, returned, ["/v1/stats", "auth", "report stats"])
with lock:
    probes = [s for s in spans if s["name"] in ("/readyz", "/healthz", "/metrics")]
if probes:
    finish(1, f"TRACE TEST FAILED: probes and the scrape are traced: {probes}")
finish(0, "trace test passed")
