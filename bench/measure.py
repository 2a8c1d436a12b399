#!/usr/bin/env python3
"""measure.py: the timed part of bench/run.sh.

Runs each resort-sync command and its reference tool side by side,
interleaved (A B, then B A, ...) so that drift in machine load hits both
alike, after one untimed warm-up run of each (the databases are then in the
page cache, which is the state we want to compare).  Output goes to
/dev/null.  For every run it records wall time (perf_counter around
spawn..reap) and the child's own peak RSS, taken from os.wait4's rusage
(ru_maxrss, KiB on Linux), so no external `time` binary is needed.

Prints a table and writes a markdown report (bench/results/latest.md by
default).  Exit status 0 even when a bar is missed: the report says so.
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

MEM_BAR_KIB = 64 * 1024  # 64 MiB


GNU_TIME = "/usr/bin/time"


def have_gnu_time():
    try:
        r = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, text=True)
        return r.returncode == 0 and r.stderr.strip().splitlines()[-1].isdigit()
    except (OSError, IndexError):
        return False


USE_TIME = have_gnu_time()


def run_once(argv):
    """Wall seconds, peak RSS (KiB) and CPU seconds of one run; raises on failure.

    Peak RSS: Linux keeps a process's high-water RSS across exec, so a child
    spawned straight from this (~10 MiB) python would report at least
    python's own RSS.  GNU time is a small C program that forks the command
    and reports its wait4 ru_maxrss, accurate to about 1 MiB; it is used when
    present.  Without it we fall back to os.wait4 here and the report shows
    the floor that adds (the RSS of `true` measured the same way).
    """
    with tempfile.TemporaryFile() as errf, tempfile.NamedTemporaryFile("r") as rss:
        cmd = [GNU_TIME, "-f", "%M", "-o", rss.name, "--"] + argv if USE_TIME else argv
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            errf.seek(0)
            err = errf.read(500).decode(errors="replace")
            raise RuntimeError("%s exited %d: %s" % (" ".join(argv), p.returncode, err))
        maxrss = int(rss.read().split()[-1]) if USE_TIME else ru.ru_maxrss
    cpu = ru.ru_utime + ru.ru_stime  # the command's CPU (plus GNU time's, ~1 ms)
    return wall, maxrss, cpu


def rss_method():
    if USE_TIME:
        return "GNU time %M (the command's own wait4 ru_maxrss)"
    floor = run_once(["true"])[1]
    return ("os.wait4 ru_maxrss from python (no /usr/bin/time); includes a floor of %.1f MiB "
            "inherited from the python parent (RSS reported for `true`)" % (floor / 1024))


def measure_pair(a, b, runs):
    """a, b: argv lists.  Returns per-side lists of (wall, rss)."""
    run_once(a)
    run_once(b)
    res = {"a": [], "b": []}
    for i in range(runs):
        order = (("a", a), ("b", b)) if i % 2 == 0 else (("b", b), ("a", a))
        for side, argv in order:
            res[side].append(run_once(argv))
    return res


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except Exception:
        return ""


def machine_info(binary):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kb / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "sqlite3 CLI": sh("sqlite3 --version | cut -d' ' -f1-2"),
        "sqldiff": "from Debian sqlite3-tools %s (SQLite linked in statically; no --version option)"
                   % (sh("dpkg-query -W -f '${Version}' sqlite3-tools") or "?"),
        "SQLite library of resort-sync and sqlite3 CLI": "%s (%s)" % (
            sh("sqlite3 :memory: 'select sqlite_version()'"),
            sh("ldd %s | awk '/libsqlite3/ {print $3}'" % binary) or "static?"),
        "compiler": sh("${CC:-cc} --version | head -1"),
    }


def fmt_s(x):
    return "%.3f" % x


def fmt_mib(kib):
    return "%.1f" % (kib / 1024)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="resort-sync binary")
    ap.add_argument("--dir", required=True, help="directory with old.db, new.db")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mode", default="full")
    ap.add_argument("--out", default="bench/results/latest.md")
    ap.add_argument("--checks", help="file with correctness-check lines from run.sh")
    ap.add_argument("--commit", default="")
    ap.add_argument("--baseline", help="another resort-sync build, timed against this one in the same run")
    a = ap.parse_args()

    old = os.path.join(a.dir, "old.db")
    new = os.path.join(a.dir, "new.db")
    pairs = [
        ("diff (~100 changed rows)", "resort-sync diff old.db new.db", [a.bin, "diff", old, new],
         "sqldiff old.db new.db", ["sqldiff", old, new]),
        ("diff --plain (every row)", "resort-sync diff --plain old.db new.db", [a.bin, "diff", "--plain", old, new],
         "sqldiff old.db new.db", ["sqldiff", old, new]),
        ("dump", "resort-sync dump old.db", [a.bin, "dump", old],
         "sqlite3 old.db .dump", ["sqlite3", old, ".dump"]),
    ]

    load_before = open("/proc/loadavg").read().split()[:3]
    t_start = time.time()
    rows = []
    for name, la, aa, lb, ab in pairs:
        print("bench: %s: %d runs each, interleaved ..." % (name, a.runs), flush=True)
        r = measure_pair(aa, ab, a.runs)
        ra = [run[0] for run in r["a"]]
        rb = [run[0] for run in r["b"]]
        rows.append({
            "name": name, "la": la, "lb": lb,
            "ma": statistics.median(ra), "mb": statistics.median(rb),
            "ra": ra, "rb": rb,
            "ca": statistics.median(run[2] for run in r["a"]),
            "cb": statistics.median(run[2] for run in r["b"]),
            "rss_a": max(run[1] for run in r["a"]), "rss_b": max(run[1] for run in r["b"]),
        })
    base = []
    if a.baseline:
        # The same commands with an earlier build, interleaved with this one:
        # what the code changed, apart from what the machine did.
        for name, la, aa, lb, ab in pairs:
            print("bench: %s, this build against %s ..." % (name, a.baseline), flush=True)
            r = measure_pair(aa, [a.baseline] + aa[1:], a.runs)
            base.append((name, statistics.median(x[0] for x in r["a"]), statistics.median(x[0] for x in r["b"]),
                         statistics.median(x[2] for x in r["a"]), statistics.median(x[2] for x in r["b"])))
    elapsed = time.time() - t_start
    load_after = open("/proc/loadavg").read().split()[:3]

    # ---- console table
    hdr = "%-26s %12s %12s %8s %9s %11s %11s" % ("benchmark", "resort-sync", "reference",
                                                  "speedup", "CPU ratio", "rs RSS MiB", "ref RSS MiB")
    print()
    print(hdr)
    print("-" * len(hdr))
    for x in rows:
        print("%-26s %11ss %11ss %7.2fx %8.2fx %11s %11s" % (
            x["name"], fmt_s(x["ma"]), fmt_s(x["mb"]), x["mb"] / x["ma"], x["cb"] / x["ca"],
            fmt_mib(x["rss_a"]), fmt_mib(x["rss_b"])))
    print("(medians of %d runs; speedup = reference / resort-sync wall time, CPU ratio the same"
          " for user+sys CPU; >1 means resort-sync is faster)" % a.runs)

    # ---- bars
    diff, plain, dump = rows
    rs_rss = max(x["rss_a"] for x in rows)
    bars = [
        ("diff at least 10x faster than sqldiff (issue #7)",
         "%.2fx" % (diff["mb"] / diff["ma"]), diff["mb"] >= 10 * diff["ma"]),
        ("diff --plain at least as fast as sqldiff",
         "%.2fx" % (plain["mb"] / plain["ma"]), plain["ma"] <= plain["mb"]),
        ("dump at least 2x faster than `sqlite3 .dump` (issue #7)",
         "%.2fx" % (dump["mb"] / dump["ma"]), dump["mb"] / dump["ma"] >= 2),
        ("peak memory under 64 MiB",
         "%s MiB" % fmt_mib(rs_rss), rs_rss < MEM_BAR_KIB),
    ]
    print()
    for text, val, ok in bars:
        print("bar: %-48s %-10s %s" % (text, val, "MET" if ok else "NOT MET"))

    # ---- markdown
    sizes = []
    for f in ("old.db", "new.db", "small.db"):
        p = os.path.join(a.dir, f)
        if os.path.exists(p):
            sizes.append("`%s` %.1f MB" % (f, os.path.getsize(p) / 1e6))
    params = ""
    pp = os.path.join(a.dir, "params.txt")
    if os.path.exists(pp):
        params = open(pp).read().strip()
    info = machine_info(a.bin)
    md = []
    md.append("# resort-sync benchmark results (%s size)" % a.mode)
    md.append("")
    md.append("- date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if a.commit:
        md.append("- resort-sync commit: %s" % a.commit)
    md.append("- databases: %s (%s)" % (", ".join(sizes), params))
    md.append("- runs: %d per command, interleaved, after one untimed warm-up each; output to /dev/null; "
              "page cache warm" % a.runs)
    md.append("- peak RSS measured with: %s" % rss_method())
    md.append("- load average before/after: %s / %s; timed part took %.0f s"
              % (" ".join(load_before), " ".join(load_after), elapsed))
    md.append("")
    md.append("| benchmark | resort-sync median (s) | reference | reference median (s) | speedup | "
              "speedup of fastest runs | CPU median rs / ref (s) | CPU ratio | "
              "resort-sync peak RSS (MiB) | reference peak RSS (MiB) |")
    md.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for x in rows:
        md.append("| %s | %s | `%s` | %s | %.2fx | %.2fx | %s / %s | %.2fx | %s | %s |" % (
            x["name"], fmt_s(x["ma"]), x["lb"], fmt_s(x["mb"]), x["mb"] / x["ma"],
            min(x["rb"]) / min(x["ra"]), fmt_s(x["ca"]), fmt_s(x["cb"]), x["cb"] / x["ca"],
            fmt_mib(x["rss_a"]), fmt_mib(x["rss_b"])))
    md.append("")
    md.append("Speedup = reference median / resort-sync median (above 1: resort-sync is faster); "
              "the bars are judged on it.  The fastest-run ratio (min / min) is shown because "
              "other work on a shared machine only ever adds time; the CPU columns (user+sys) "
              "are less sensitive to it than wall time.  Peak RSS is the largest "
              "over all runs.")
    md.append("")
    md.append("All runs (seconds):")
    md.append("")
    for x in rows:
        md.append("- `%s`: %s" % (x["la"], ", ".join(fmt_s(v) for v in x["ra"])))
        md.append("- `%s`: %s" % (x["lb"], ", ".join(fmt_s(v) for v in x["rb"])))
    md.append("")
    md.append("## Bars")
    md.append("")
    md.append("| bar | measured | status |")
    md.append("|---|---:|---|")
    for text, val, ok in bars:
        md.append("| %s | %s | %s |" % (text, val, "met" if ok else "**NOT met**"))
    if base:
        md.append("")
        md.append("## Against an earlier build, same run")
        md.append("")
        md.append("Baseline: `%s`, the same commands, interleaved with this build, %d runs each after a "
                  "warm-up.  Ratio = baseline / this build (above 1: this build is faster)." % (a.baseline, a.runs))
        md.append("")
        md.append("| command | this build median (s) | baseline median (s) | ratio | CPU this / baseline (s) |")
        md.append("|---|---:|---:|---:|---:|")
        for name, ma, mb, ca, cb in base:
            md.append("| %s | %s | %s | %.2f | %s / %s |" % (name, fmt_s(ma), fmt_s(mb), mb / ma, fmt_s(ca), fmt_s(cb)))
    if a.checks and os.path.exists(a.checks):
        md.append("")
        md.append("## Correctness checks (untimed)")
        md.append("")
        for line in open(a.checks):
            if line.strip():
                md.append("- " + line.strip())
    md.append("")
    md.append("## Machine")
    md.append("")
    for k, v in info.items():
        md.append("- %s: %s" % (k, v))
    md.append("")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(md))
    print("\nbench: wrote %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
