#!/usr/bin/env python3
"""The reference for gpuledger-backtest: statsforecast's AutoETS on the same generated series,
with the same rolling origins, horizons and scores.

    .build/release/gpuledger-backtest --dump-series /tmp/series.csv
    pip install statsforecast && python3 scripts/autoets_backtest.py /tmp/series.csv
"""
import csv
import sys

import numpy as np
from statsforecast.models import AutoETS

series = {}
with open(sys.argv[1]) as f:
    for row in csv.DictReader(f):
        series.setdefault(int(row["series"]), []).append(float(row["y"]))

horizons, period, first, step = [7, 14, 28], 7, 365, 7
scores = {h: {"mase": [], "smape": [], "point": [], "total": [], "naive": []} for h in horizons}
for y in series.values():
    y = np.array(y)
    origin = first
    while origin + max(horizons) <= len(y):
        train = y[:origin]
        scale = np.mean(np.abs(train[period:] - train[:-period]))
        model = AutoETS(season_length=period, model="ZZZ").fit(train)
        fc = model.predict(h=max(horizons), level=[80])
        mean, lo, hi = fc["mean"], fc["lo-80"], fc["hi-80"]
        naive = np.array([train[len(train) - period + (k % period)] for k in range(max(horizons))])
        for h in horizons:
            test = y[origin:origin + h]
            s = scores[h]
            s["mase"].append(np.mean(np.abs(test - mean[:h])) / scale)
            s["naive"].append(np.mean(np.abs(test - naive[:h])) / scale)
            s["smape"].append(np.mean(2 * np.abs(test - mean[:h]) / (np.abs(test) + np.abs(mean[:h]))) * 100)
            s["point"].append(np.mean((test >= lo[:h]) & (test <= hi[:h])))
        origin += step

print("AutoETS (statsforecast, model ZZZ, season 7) on the same series and origins")
print("  horizon   MASE  (s-naive)   sMAPE%   80% cover: points")
for h in horizons:
    s = scores[h]
    print(f"  {h:<7} {np.mean(s['mase']):6.3f}  ({np.mean(s['naive']):6.3f})   {np.mean(s['smape']):6.3f}          {np.mean(s['point']):6.3f}   {len(s['mase'])}")
