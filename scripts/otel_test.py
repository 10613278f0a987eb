"""A real OpenTelemetry client against POST /v1/traces (run by scripts/otel-test).

Python's opentelemetry-sdk with opentelemetry-exporter-otlp-proto-http (pinned in
scripts/otel-test) exports spans shaped like vLLM's `llm_request` (vllm/tracing.py: the request
id, prompt and completion tokens, time to first token, end-to-end latency and time in queue, in
seconds; the model only in the resource's service.name) to a running gpuledger, in protobuf
(plain and gzip, through the SDK's own exporter) and in OTLP's JSON encoding (the SDK's encoder,
ids in hex). Then every record is read back through /v1/usage/{tenant}/{request_id} with every
mapped field, their costs appear in /v1/costs, a resend stores nothing twice, and a span whose
tenant cannot be found is counted in rejected_spans with its reason.
"""
import json
import os
import sys
import time
import urllib.request

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

url, key = os.environ["GPULEDGER_URL"], os.environ["GPULEDGER_KEY"]
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def http(method, path, body=None, headers=None):
    req = urllib.request.Request(url + path, data=body, method=method,
                                 headers={"Authorization": f"Bearer {key}", **(headers or {})})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type")


def get_json(path):
    status, body, _ = http("GET", path)
    return status, json.loads(body) if body else None


def vllm_spans(provider, prefix, n, tenant="acme"):
    """n spans as vLLM's engine emits them, plus gpuledger's tenant and pool attributes."""
    tracer = provider.get_tracer("vllm.llm_engine")
    t0 = time.time_ns() - 120 * 10**9
    for i in range(n):
        start = t0 + i * 10**9
        span = tracer.start_span("llm_request", kind=SpanKind.SERVER, start_time=start)
        prompt, completion = 700 + 37 * i, 90 + 11 * i
        attributes = {
            "gen_ai.response.model": None, "gen_ai.request.id": f"{prefix}-{i}",
            "gen_ai.request.temperature": 0.7, "gen_ai.request.top_p": 1.0, "gen_ai.request.max_tokens": 512,
            "gen_ai.request.n": 1, "gen_ai.usage.prompt_tokens": prompt, "gen_ai.usage.completion_tokens": completion,
            "gen_ai.latency.time_in_queue": 0.05 * i, "gen_ai.latency.time_to_first_token": 0.2 + 0.01 * i,
            "gen_ai.latency.e2e": 2.5 + 0.1 * i, "gen_ai.latency.time_in_scheduler": 0.001,
            "gpuledger.pool": "vllm-h100", "gpuledger.label.feature": "chat",
        }
        if tenant:
            attributes["gpuledger.tenant"] = tenant
        for k, v in attributes.items():
            if v is not None:
                span.set_attribute(k, v)
        if i == n - 1 and n > 2:
            span.set_status(Status(StatusCode.ERROR, "engine error"))
            span.set_attribute("error.type", "oom")
        span.end(end_time=start + int((2.5 + 0.1 * i) * 10**9))
        yield prefix, i, prompt, completion


def expect_record(tenant, request_id, i, prompt, completion, error=False):
    status, r = get_json(f"/v1/usage/{tenant}/{request_id}")
    check(status == 200, f"{request_id} reads back (got {status})")
    if status != 200:
        return None
    e2e, ttft = (2.5 + 0.1 * i) * 1000, (0.2 + 0.01 * i) * 1000
    check(r["model"] == MODEL, f"{request_id}: model from service.name ({r['model']})")
    check(r["pool"] == "vllm-h100" and r["accelerator"] == "H100", f"{request_id}: pool and its accelerator ({r['pool']}, {r['accelerator']})")
    check(r["input_tokens"] == prompt and r["output_tokens"] == completion, f"{request_id}: tokens ({r['input_tokens']}, {r['output_tokens']})")
    check(abs(r["e2e_ms"] - e2e) < 1e-6 and abs(r["ttft_ms"] - ttft) < 1e-6, f"{request_id}: e2e_ms and ttft_ms ({r['e2e_ms']}, {r['ttft_ms']})")
    check(abs(r["tpot_ms"] - (e2e - ttft) / (completion - 1)) < 1e-6, f"{request_id}: tpot_ms ({r['tpot_ms']})")
    check(abs(r["queue_ms"] - 50 * i) < 1e-6, f"{request_id}: queue_ms ({r['queue_ms']})")
    check(r["labels"] == {"feature": "chat"}, f"{request_id}: labels ({r['labels']})")
    check(r["allocation"] == "tokens" and r["cost_usd"] is not None, f"{request_id}: priced by tokens ({r['allocation']}, {r['cost_usd']})")
    check(r["status"] == ("error" if error else "ok") and r["error_type"] == ("oom" if error else None),
          f"{request_id}: status ({r['status']}, {r['error_type']})")
    return r


resource = Resource.create({"service.name": MODEL})
sent = {}

# 1. Protobuf through the SDK's exporter, plain and gzip.
for compression, prefix in [(Compression.NoCompression, "pb"), (Compression.Gzip, "gz")]:
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", headers={"Authorization": f"Bearer {key}"}, compression=compression)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    sent[prefix] = list(vllm_spans(provider, prefix, 4))
    spans = memory.get_finished_spans()
    check(exporter.export(spans) == SpanExportResult.SUCCESS, f"the SDK's exporter ({prefix}) reports success")
    # The same export again: stored once.
    check(exporter.export(spans) == SpanExportResult.SUCCESS, f"the same export again ({prefix}) is taken")
    exporter.shutdown()

# 2. OTLP's JSON encoding (the SDK's encoder; OTLP/JSON writes ids in hex, not base64).
provider = TracerProvider(resource=resource)
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
sent["js"] = list(vllm_spans(provider, "js", 3))
list(vllm_spans(provider, "lost", 1, tenant=None))  # no tenant anywhere: rejected with its reason
payload = MessageToDict(encode_spans(memory.get_finished_spans()))
for rs in payload["resourceSpans"]:
    for ss in rs["scopeSpans"]:
        for s in ss["spans"]:
            for k in ("traceId", "spanId", "parentSpanId"):
                if k in s:
                    import base64
                    s[k] = base64.b64decode(s[k]).hex()
status, body, ctype = http("POST", "/v1/traces", json.dumps(payload).encode(), {"Content-Type": "application/json"})
check(status == 200 and ctype == "application/json", f"OTLP/JSON export answered 200 in JSON ({status}, {ctype})")
answer = json.loads(body)
partial = answer.get("partialSuccess", {})
check(int(partial.get("rejectedSpans", 0)) == 1 and "tenant: none found" in partial.get("errorMessage", ""),
      f"the span without a tenant is rejected with its reason ({partial})")

# 3. A protobuf answer is an ExportTraceServiceResponse.
status, body, ctype = http("POST", "/v1/traces", encode_spans(memory.get_finished_spans()[:1]).SerializeToString(),
                           {"Content-Type": "application/x-protobuf"})
response = ExportTraceServiceResponse()
response.ParseFromString(body)
check(status == 200 and ctype == "application/x-protobuf" and not response.HasField("partial_success"),
      f"protobuf answer: an ExportTraceServiceResponse without partial_success ({status}, {ctype})")

# 4. Every record back, with every mapped field; resends stored once; costs in /v1/costs.
total = 0
for prefix, spans in sent.items():
    for (_, i, prompt, completion) in spans:
        expect_record("acme", f"{prefix}-{i}", i, prompt, completion, error=(i == len(spans) - 1 and len(spans) > 2))
        total += 1
status, costs = get_json("/v1/costs?group_by=tenant&from=" + time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 86400)))
rows = {r["tenant"]: r for r in costs["rows"]}
check(status == 200 and rows.get("acme", {}).get("requests") == total,
      f"/v1/costs counts each exported request once ({rows.get('acme', {}).get('requests')} of {total})")
check(rows.get("acme", {}).get("cost_usd") not in (None, "0", "0.000000000000"), f"and prices them ({rows.get('acme', {}).get('cost_usd')})")

print(f"{total} exported requests checked; {len(failures)} failures")
sys.exit(1 if failures else 0)
