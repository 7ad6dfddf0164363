#!/usr/bin/env python3
"""Byte sampling's accuracy on tests/programs/sampled.c (docs/performance.md,
*Byte sampling*): one exact run, then RUNS sampled ones at MEAN, each site's
live bytes from `memtrail report -g function -f json -n 0`. Prints each
site's mean error over the runs, its standard deviation a run, the standard
error the theory predicts (one run, and an average of 5), then, in batches of
5 consecutive runs, the worst 5-run average error among the ten largest sites
and the total's.

    tests/bench/sample_accuracy.py BUILD [MEAN [RUNS]]    (default 64KiB 100)
"""
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile


def run(build, out, opts):
    memtrail = os.path.join(build, "analyzer", "memtrail")
    prog = os.path.join(build, "tests", "sampled")
    os.makedirs(out)
    subprocess.run([memtrail, "run", "-o", out, "--leak-check", "off"] + opts + ["--", prog],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    snap = glob.glob(os.path.join(out, "*.exit.mtsnap"))[0]
    rep = json.loads(subprocess.run([memtrail, "report", snap, "-g", "function", "-f", "json",
                                     "-n", "0"], capture_output=True, check=True).stdout)
    shutil.rmtree(out)
    sites = {e["key"]: (e["bytes"], e["blocks"]) for e in rep["entries"]
             if e["key"].startswith("site_")}
    return sites, rep["total_bytes"], rep["snapshot"].get("sample_mean_bytes")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    mean_arg = sys.argv[2] if len(sys.argv) > 2 else "64KiB"
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    tmp = tempfile.mkdtemp(prefix="memtrail-accuracy.")
    try:
        exact, exact_total, _ = run(build, os.path.join(tmp, "exact"), [])
        errs = {k: [] for k in exact}
        totals = []
        mean = None
        for r in range(runs):
            est, total, mean = run(build, os.path.join(tmp, "r%d" % r), ["--sample", mean_arg])
            totals.append(total / exact_total - 1)
            for k in exact:
                errs[k].append(est.get(k, (0, 0))[0] / exact[k][0] - 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def se(k):   # one run's relative standard error: sqrt((1 - p) / (n p))
        n = exact[k][1]
        p = 1 - math.exp(-(exact[k][0] / n) / mean)
        return math.sqrt((1 - p) / (n * p))

    def stats(v):
        m = sum(v) / len(v)
        return m, math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0

    tse = math.sqrt(sum((exact[k][0] * se(k)) ** 2 for k in exact)) / exact_total
    m, sd = stats(totals)
    print("exact: %d B in %d sites; sampled at %s (%d B), %d runs" %
          (exact_total, len(exact), mean_arg, mean, runs))
    print("total: mean error %+.2f%% (se %.2f%%), s.d. a run %.2f%% (theory %.2f%%)" %
          (100 * m, 100 * sd / math.sqrt(runs), 100 * sd, 100 * tse))
    order = sorted(exact, key=lambda k: -exact[k][0])
    top = order[:10]
    print("  site     block B    exact B   mean err  s.d./run  theory  theory/5")
    for k in order:
        m, sd = stats(errs[k])
        print("%s %s %9d %10d %+8.2f%% %8.2f%% %6.2f%% %8.2f%%" %
              ("*" if k in top else " ", k, exact[k][0] // exact[k][1], exact[k][0], 100 * m,
               100 * sd, 100 * se(k), 100 * se(k) / math.sqrt(5)))
    print("batches of 5 runs: the worst of the ten largest sites' average error, the total's")
    for b in range(runs // 5):
        worst = max(abs(sum(errs[k][5 * b:5 * b + 5]) / 5) for k in top)
        print("  %2d: %5.2f%%  %5.2f%%" % (b + 1, 100 * worst, 100 * abs(sum(totals[5 * b:5 * b + 5]) / 5)))


if __name__ == "__main__":
    main()
