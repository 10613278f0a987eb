#!/usr/bin/env python3
"""Derives pricing/*.csv from the public list prices in ../shared/data/prices/.

One rate row per (provider, region, accelerator, tier): the price per GPU-hour is the instance
price divided by its GPU count. Where several instance types carry the same accelerator in a
region, the lowest per-GPU price is kept and `source` names the instance type. AWS rows from the
SkyPilot catalog (per availability zone, with spot) are preferred to libcloud's where both have
the type and region (the data README explains why); a region's spot rate is the median over its
zones. `effective_from` is the snapshot date where the source has one, else 2025-01-01 (the
snapshots with unknown dates are from late 2024 to mid 2025).

Run: python3 scripts/make-rate-cards.py ../shared/data/prices/gpu_instance_prices.csv pricing
"""
import csv
import statistics
import sys
from collections import defaultdict
from decimal import Decimal, ROUND_HALF_EVEN

src, out = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(src)))

def effective(row):
    snap = row["source_snapshot"]
    return snap if len(snap) == 10 and snap[4] == "-" else "2025-01-01"

def short_source(row):
    s = row["pricing_source"]
    if s.startswith("apache-libcloud"):
        return "libcloud 3.9.1 pricing.json"
    return s.replace("skypilot-catalog:catalogs/v7/", "skypilot catalog v7 ")

def per_gpu(price, count):
    return (Decimal(price) / Decimal(count)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)

# (provider, instance_type, region) pairs that the AWS SkyPilot catalog covers.
skypilot_aws = {(r["instance_type"], r["region"]) for r in rows
                if r["provider"] == "aws" and r["pricing_source"].startswith("skypilot")}

# candidates[(provider, region, accel, tier)] = list of (usd_per_gpu_hour, effective_from, source)
candidates = defaultdict(list)
spot_by_zone = defaultdict(list)  # (provider, region, accel, instance) -> [(per_gpu, row)]
for r in rows:
    provider, region, accel, count = r["provider"], r["region"], r["accelerator_name"], int(r["accelerator_count"])
    if count <= 0:
        continue
    if provider == "aws" and r["pricing_source"].startswith("apache-libcloud") and (r["instance_type"], region) in skypilot_aws:
        continue
    if r["ondemand_usd_per_hour"]:
        candidates[(provider, region, accel, "on_demand")].append(
            (per_gpu(r["ondemand_usd_per_hour"], count), effective(r),
             f"{r['instance_type']} ({count}x {accel}, ${r['ondemand_usd_per_hour']}/h), {short_source(r)}, snapshot {r['source_snapshot']}"))
    if r["spot_usd_per_hour"]:
        spot_by_zone[(provider, region, accel, r["instance_type"])].append((per_gpu(r["spot_usd_per_hour"], count), r))

for (provider, region, accel, instance), zones in spot_by_zone.items():
    prices = sorted(p for p, _ in zones)
    median = Decimal(statistics.median(prices)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
    r = zones[0][1]
    where = f"median of {len(zones)} zones" if len(zones) > 1 else (r["availability_zone"] or region)
    candidates[(provider, region, accel, "spot")].append(
        (median, effective(r), f"{instance} spot, {where}, {short_source(r)}, snapshot {r['source_snapshot']}"))

by_provider = defaultdict(list)
for (provider, region, accel, tier), options in candidates.items():
    price, eff, source = min(options, key=lambda o: (o[0], o[2]))
    by_provider[provider].append((region, accel, tier, price, eff, source))

header = ["provider", "region", "accelerator", "tier", "usd_per_gpu_hour", "effective_from", "source"]
for provider, items in sorted(by_provider.items()):
    with open(f"{out}/{provider}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for region, accel, tier, price, eff, source in sorted(items):
            w.writerow([provider, region, accel, tier, f"{price.normalize():f}", eff, source])
    print(f"{out}/{provider}.csv: {len(items)} rates")

# pricing/defaults.csv: the rate for usage on no registered pool, per accelerator: AWS us-east-1
# on-demand where AWS has the accelerator, else the first of Lambda us-east-1, Nebius eu-north1,
# RunPod US on-demand.
preferences = [("aws", "us-east-1"), ("lambda", "us-east-1"), ("nebius", "eu-north1"), ("runpod", "US")]
accels = sorted({a for (_, _, a, _) in candidates})
with open(f"{out}/defaults.csv", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["accelerator", "provider", "region", "tier"])
    n = 0
    for accel in accels:
        for provider, region in preferences:
            if (provider, region, accel, "on_demand") in candidates:
                w.writerow([accel, provider, region, "on_demand"])
                n += 1
                break
        else:
            # any on-demand rate for it, lowest price first
            options = sorted((min(o)[0], p, r) for (p, r, a, t), o in candidates.items() if a == accel and t == "on_demand")
            if options:
                w.writerow([accel, options[0][1], options[0][2], "on_demand"])
                n += 1
print(f"{out}/defaults.csv: {n} accelerators")
