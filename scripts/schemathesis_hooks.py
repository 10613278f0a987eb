"""What openapi.yaml cannot say, told to schemathesis (scripts/contract-test loads this module).

OpenAPI describes each parameter and field on its own; the service has a few rules across them
and one that depends on its configuration. Without these hooks schemathesis would send requests
that every field of allows and the service rightly refuses (ST202). Each rule is also written in
the description, in words:
- `from` is not after `to` (/v1/costs, /v1/stats): the two are swapped;
- exactly one of `pool` and `accelerator` (/v1/forecast/capacity): `accelerator` is left out, or
  the pool that the script made is named;
- a record's `accelerator` is one the rate cards in force name (GET /v1/rates; the script passes
  them in GPULEDGER_ACCELERATORS), its `started_at` at most 5 minutes in the future, and
  `cached_input_tokens` at most `input_tokens`: such values are replaced by ones that are;
- a record's `gpu_seconds` may be left out only on a pool that allocates by tokens (the script's
  pool p1 does not): a missing one is sent as 1.5;
- a pool's `token_weights` are not all 0: an all-zero set gets output 1;
- a record's token counts are integer literals (`920`, not `920.0`, which JSON Schema also calls
  an integer): a whole float is sent as the integer it is;
- a pool's `gpu_selector` values are regular expressions (that Prometheus's RE2 takes): each is
  sent quoted (`re.escape`), a literal, which every regular expression engine takes;
- only a finished month can be closed (/v1/periods/{period}/close): a month not over yet is
  replaced by the same month of 2025.
Only values that are valid on their own are changed, so a request made invalid on purpose
(negative testing) stays invalid.
"""
import datetime
import os
import re

import schemathesis

ACCELERATORS = [a for a in os.environ.get("GPULEDGER_ACCELERATORS", "H100").split(",") if a]


def _time(text):
    """A date or RFC 3339 time as an aware datetime; None when it is neither."""
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 10:
            return datetime.datetime.fromisoformat(text + "T00:00:00+00:00")
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


def _fix_record(record):
    if not isinstance(record, dict):
        return
    if "gpu_seconds" not in record:
        record["gpu_seconds"] = 1.5
    for key in ("input_tokens", "output_tokens", "cached_input_tokens"):
        value = record.get(key)
        if isinstance(value, float) and value.is_integer():
            record[key] = int(value)
    accelerator = record.get("accelerator")
    if isinstance(accelerator, str) and 1 <= len(accelerator) <= 64 and accelerator not in ACCELERATORS:
        record["accelerator"] = ACCELERATORS[sum(map(ord, accelerator)) % len(ACCELERATORS)]
    started = _time(record.get("started_at"))
    if started is not None and started.tzinfo is not None:
        if started > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=4):
            record["started_at"] = "2026-01-01T00:00:00Z"
    cached, total = record.get("cached_input_tokens"), record.get("input_tokens")
    numbers = (int, float)
    if isinstance(cached, numbers) and isinstance(total, numbers) and not isinstance(cached, bool) \
            and not isinstance(total, bool) and 0 <= total < cached:
        record["cached_input_tokens"] = total


@schemathesis.hook
def before_call(ctx, case, kwargs):
    """Every phase's requests pass here (the coverage phase's too, which filters do not see)."""
    path = case.operation.path
    query = case.query
    if isinstance(query, dict):
        start, end = _time(query.get("from")), _time(query.get("to"))
        if start is not None and end is not None and start.tzinfo and end.tzinfo and start > end:
            query["from"], query["to"] = query["to"], query["from"]
        if path == "/v1/forecast/capacity":
            if "pool" in query and "accelerator" in query:
                del query["accelerator"]
            elif "pool" not in query and "accelerator" not in query:
                query["pool"] = os.environ.get("GPULEDGER_POOL", "p1")
    if path == "/v1/periods/{period}/close" and isinstance(case.path_parameters, dict):
        month = case.path_parameters.get("period")
        if isinstance(month, str) and len(month) == 7 and month[:4].isdigit() and month[5:].isdigit():
            now = datetime.datetime.now(datetime.timezone.utc)
            if (int(month[:4]), int(month[5:])) >= (now.year, now.month):
                case.path_parameters["period"] = "2025-" + month[5:]
    if path == "/v1/pools/{pool}" and isinstance(case.body, dict):
        weights = case.body.get("token_weights")
        if isinstance(weights, dict) and set(weights) == {"input", "cached_input", "output"} \
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0 for v in weights.values()):
            weights["output"] = 1
        selector = case.body.get("gpu_selector")
        if isinstance(selector, dict):
            for label, value in list(selector.items()):
                if isinstance(value, str) and 1 <= len(value) <= 512:
                    quoted = re.escape(value)
                    selector[label] = quoted if len(quoted) <= 512 else "x"
    if path == "/v1/usage":
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("records"), list):
            records = body["records"]
        elif isinstance(body, list):
            records = body
        else:
            records = [body]
        for record in records:
            _fix_record(record)
