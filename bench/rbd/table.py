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

path, runs, runtime, ramp, size, load, strata_env, cache, latency_path = sys.argv[1:10]
rows = collections.OrderedDict()
for line in open(path):
    case, server, run, mib, iops = line.rstrip("\n").split("\t")
    rows.setdefault(case, collections.defaultdict(dict))[server][run] = (float(mib), float(iops))
present = {server for by in rows.values() for server in by}
servers = [s for s in ["strata", "strata-env", "qsd", "fio-rbd", "nbd-floor"] if s in present]
peers = [p for p in ["qsd", "fio-rbd"] if p in present]

ramped = f" after a {ramp} s ramp" if float(ramp) > 0 else ""
print(f"runs: {runs} x {runtime} s per case{ramped}, one RBD image of {size} on a single memstore OSD "
      f"(data in the OSD's memory, loopback), {os.cpu_count()} CPUs shared by the cluster, the server and fio")
print(f"load at the end: {load.strip()}")
print("cache: " + {
    "writeback": "writeback on every side: librbd's cache on and past its write-through start "
                 "(each server sent one write and a flush first; fio's rbd engine flushes at its start)",
    "writethrough": "write-through on every side: librbd's cache on, never flushed by the servers' "
                    "clients; fio's rbd engine with rbd_cache_max_dirty = 0",
    "none": "none on every side: rbd_cache=false (strata cache=none, qsd cache.direct=on, fio --direct=1)",
}[cache])
if strata_env:
    print(f"strata-env: the same strata with {strata_env}")
if "nbd-floor" in present:
    print("nbd-floor: nbdkit's null plugin (no storage) behind the same fio nbd engine: the NBD round trip alone")
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

latencies = collections.OrderedDict()
for line in open(latency_path):
    case, server, run, *numbers = line.rstrip("\n").split("\t")
    latencies.setdefault(case, collections.defaultdict(list))[server].append(list(map(float, numbers)))
if latencies:
    print()
    print("per request, medians over the runs: mean latency in µs as fio saw it, inside librbd (its rd_latency or "
          "wr_latency counter) and outside it (server, socket and fio's nbd engine; or fio's rbd engine alone); "
          "CPU µs of fio's process, the server, the OSD and the whole machine (cluster and all)")
    print()
    print("| case | side | latency | in librbd | outside | CPU fio | CPU server | CPU OSD | CPU machine |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, by in latencies.items():
        for name in servers:
            if name not in by:
                continue
            samples = by[name]
            total, fio_cpu, machine, server, osd = (statistics.median(s[i] for s in samples) for i in (0, 2, 3, 4, 5))
            # A librbd counter read can miss (nan): fio's rbd engine is read while it runs.
            read = [s for s in samples if s[1] == s[1]]
            librbd = statistics.median(s[1] for s in read) if read else float("nan")
            rest = statistics.median(s[0] - s[1] for s in read) if read else float("nan")
            server_cell = "-" if name == "fio-rbd" else f"{server:.0f}"
            inside, outside = (f"{librbd:.0f}", f"{rest:.0f}") if read else ("-", f"{total:.0f}")
            print(f"| {case} | {name} | {total:.0f} | {inside} | {outside} | {fio_cpu:.0f} | {server_cell} | {osd:.0f} | {machine:.0f} |")

if "nbd-floor" in present and "fio-rbd" in present and latencies:
    print()
    print("at queue depth 1, against the bare NBD round trip (nbd-floor): a server on librbd adds at least that round "
          "trip to librbd's own latency; \"beyond it\" is what strata spends outside librbd above it; the estimate "
          "fio-rbd / (fio-rbd + nbd-floor) is the ratio a server costing nothing beyond the round trip would get if "
          "librbd took as long in it as in fio (the in-librbd column above shows it does not, exactly)")
    print()
    print("| case | nbd-floor µs | strata outside librbd µs | beyond it µs | fio-rbd µs | estimate | strata/fio-rbd |")
    print("|---|---|---|---|---|---|---|")
    for case, by in latencies.items():
        if not case.endswith("QD1") or "fio-rbd" not in by or "nbd-floor" not in by:
            continue
        direct = statistics.median(s[0] for s in by["fio-rbd"])
        trip = statistics.median(s[0] for s in by["nbd-floor"])
        read = [s for s in by.get("strata", []) if s[1] == s[1]]
        outside = statistics.median(s[0] - s[1] for s in read) if read else float("nan")
        measured = cell(case, ratios(case, rows[case], "strata", "fio-rbd")) if "strata" in rows[case] else "n/a"
        print(f"| {case} | {trip:.0f} | {outside:.0f} | {outside - trip:.0f} | {direct:.0f} | {direct / (direct + trip):.2f}x | {measured} |")
