"""The table of bench/rbd/run.sh: medians per case and server, and strata's ratio to each peer.

Input: a TSV of case, server, run, MiB/s, IOPS. A ratio is taken within one run (the servers of a run
saw the same load), then the median of those ratios is shown with its band (lowest and highest run):
the band says how far the machine's noise reaches. The issue's targets are strata >= 1.0x qsd and
>= 0.8x fio's rbd engine.
"""
import collections
import os
import statistics
import sys

path, runs, runtime, ramp, size, load, strata_env = sys.argv[1:8]
rows = collections.OrderedDict()
for line in open(path):
    case, server, run, mib, iops = line.rstrip("\n").split("\t")
    rows.setdefault(case, collections.defaultdict(dict))[server][run] = (float(mib), float(iops))
present = {server for by in rows.values() for server in by}
servers = [s for s in ["strata", "strata-env", "qsd", "fio-rbd"] if s in present]
peers = [p for p in ["qsd", "fio-rbd"] if p in present]

ramped = f" after a {ramp} s ramp" if float(ramp) > 0 else ""
print(f"runs: {runs} x {runtime} s per case{ramped}, one RBD image of {size} on a single memstore OSD "
      f"(data in the OSD's memory, loopback), {os.cpu_count()} CPUs shared by the cluster, the server and fio")
print(f"load at the end: {load.strip()}")
if strata_env:
    print(f"strata-env: the same strata with {strata_env}")
print("cells: IOPS for 4k cases, MiB/s for 1M cases, medians; ratios: median (lowest-highest run)")
print()


def value(case, sample):
    mib, iops = sample
    return iops if " 4k " in f" {case} " else mib


def ratios(case, by, a, b):
    return sorted(value(case, by[a][r]) / value(case, by[b][r])
                  for r in by.get(a, {}) if r in by.get(b, {}) and value(case, by[b][r]) > 0)


def cell(case, values):
    if not values:
        return "n/a"
    text = f"{statistics.median(values):.2f}x"
    if len(values) > 1:
        text += f" ({values[0]:.2f}-{values[-1]:.2f})"
    return text + (" (lower is better)" if case.startswith("peak RSS") else "")


pairs = [(s, p) for s in ["strata", "strata-env"] if s in present for p in peers]
if {"qsd", "fio-rbd"} <= present:
    pairs.append(("qsd", "fio-rbd"))
print("| case | " + " | ".join(servers) + "".join(f" | {a}/{b}" for a, b in pairs) + " |")
print("|---|" + "---|" * (len(servers) + len(pairs)))
for case, by in rows.items():
    cells = [f"{statistics.median(value(case, s) for s in by[name].values()):.0f}" if name in by else "n/a"
             for name in servers]
    print(f"| {case} | " + " | ".join(cells) + "".join(f" | {cell(case, ratios(case, by, a, b))}" for a, b in pairs) + " |")
