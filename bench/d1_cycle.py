#!/usr/bin/env python3
"""d1_cycle.py: the local work of one D1 sync cycle, resort-sync against the
original strategy, side by side (bench/README.md, "A whole D1 cycle").

The original strategy's cycle does, locally: `VACUUM INTO` a source copy,
`sqldiff` of the last snapshot against it, and a copy of it over the
snapshot (the promotion).  resort-sync's cycle: `resort-sync sync` with
mode d1, its wrangler replaced by a stub that answers success at once, so
what is timed is the local work only (consistent view, change detection,
payload, snapshot advance).

Setup (untimed): live.db is a copy of old.db in WAL mode; a first
`resort-sync sync` does the full load; the original's snapshot starts as a
copy of old.db.  Each run first applies ~100 changed rows to live.db
(alternately the diff old->new and new->old, so every run has the same
amount of change), then times both sides, in alternating order.

Per side: median wall time, median CPU (user+sys), peak RSS, and bytes
written (the processes' write_bytes: GNU time's %O, in 512-byte blocks,
which the kernel counts when a page is dirtied).

  bench/d1_cycle.py --bin build/resort-sync --dir /tmp/resort-sync-bench/full [--runs 5] [--out FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TIME = "/usr/bin/time"


def timed(argv, cwd=None, stdout=subprocess.DEVNULL):
    """(wall s, cpu s, peak RSS KiB, bytes written) of one command; raises on failure."""
    with tempfile.NamedTemporaryFile("r") as out:
        t0 = time.perf_counter()
        p = subprocess.run([TIME, "-f", "%U %S %M %O", "-o", out.name, "--"] + argv, cwd=cwd, stdout=stdout,
                           stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit("bench: %s failed: %s" % (" ".join(argv), p.stderr.decode()[-500:]))
        u, s, m, o = out.read().split()[-4:]
        return wall, float(u) + float(s), int(m), int(o) * 512


def add(a, b):
    return (a[0] + b[0], a[1] + b[1], max(a[2], b[2]), a[3] + b[3])


def original_cycle(work, live):
    src = os.path.join(work, "orig-src.db")
    snap = os.path.join(work, "orig-snapshot.db")
    out = os.path.join(work, "orig-diff.sql")
    if os.path.exists(src):
        os.remove(src)
    r = timed(["sqlite3", live, "VACUUM INTO '%s'" % src])
    with open(out, "wb") as f:
        r = add(r, timed(["sqldiff", snap, src], stdout=f))
    r = add(r, timed(["cp", src, snap]))
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", required=True, help="with old.db and new.db (bench/gen.py)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", help="append a markdown section to this file")
    ap.add_argument("--label", default="", help="said in the section's heading (e.g. a baseline build)")
    a = ap.parse_args()
    apply_sql = os.path.join(os.path.dirname(os.path.abspath(a.bin)), "tools", "apply_sql")
    old, new = os.path.join(a.dir, "old.db"), os.path.join(a.dir, "new.db")
    work = tempfile.mkdtemp(prefix="rs-bench-cycle-", dir=os.environ.get("TMPDIR", "/tmp"))
    try:
        live = os.path.join(work, "live.db")
        shutil.copy(old, live)
        subprocess.run(["sqlite3", live, "PRAGMA journal_mode = WAL"], check=True, capture_output=True)
        fwd, back = os.path.join(work, "fwd.sql"), os.path.join(work, "back.sql")
        for (x, y, f) in ((old, new, fwd), (new, old, back)):
            with open(f, "wb") as out:
                subprocess.run([a.bin, "diff", x, y], stdout=out, check=True)
        stub = os.path.join(work, "wrangler-stub")
        with open(stub, "w") as f:
            f.write("#!/bin/sh\necho '[{\"results\": [], \"success\": true, \"meta\": {\"duration\": 0}}]'\n")
        os.chmod(stub, 0o755)
        os.makedirs(os.path.join(work, "proj"))
        with open(os.path.join(work, "proj", "wrangler.toml"), "w") as f:
            f.write('name = "bench"\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "bench"\n'
                    'database_id = "00000000-0000-0000-0000-000000000000"\n')
        snap = os.path.join(work, "snapshot.db")
        cfg = os.path.join(work, "resort-sync.toml")
        with open(cfg, "w") as f:
            f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\n[database.sync.d1]\n'
                    'database = "bench"\nwrangler = "%s"\nwrangler_config = "%s"\nsnapshot_path = "%s"\n'
                    % (live, stub, os.path.join(work, "proj", "wrangler.toml"), snap))
        print("bench: d1 cycle: first sync (full load), untimed ...", flush=True)
        full = timed([a.bin, "-q", "-c", cfg, "sync"])
        shutil.copy(old, os.path.join(work, "orig-snapshot.db"))
        size = os.path.getsize(live)

        ours, theirs, snapshot_bytes = [], [], []
        print("bench: d1 cycle: %d runs each, interleaved ..." % a.runs, flush=True)
        for i in range(a.runs):
            subprocess.run([apply_sql, live, fwd if i % 2 == 0 else back], check=True, capture_output=True)
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                if side == 0:
                    ours.append(timed([a.bin, "-q", "-c", cfg, "sync"]))
                    st = json.load(open(snap + ".status.json"))
                    if st.get("last_mode") != "diff" or st.get("last_status") != "success":
                        raise SystemExit("bench: the cycle did not send a diff: %s" % st)
                    snapshot_bytes.append(st.get("last_snapshot_bytes", 0))
                else:
                    theirs.append(original_cycle(work, live))

        def med(rs, k):
            return statistics.median(r[k] for r in rs)

        rows = [
            ("wall time, median", "%.3f s" % med(ours, 0), "%.3f s" % med(theirs, 0),
             "%.1fx" % (med(theirs, 0) / med(ours, 0))),
            ("CPU user+sys, median", "%.3f s" % med(ours, 1), "%.3f s" % med(theirs, 1),
             "%.1fx" % (med(theirs, 1) / med(ours, 1))),
            ("peak RSS", "%.1f MiB" % (max(r[2] for r in ours) / 1024),
             "%.1f MiB" % (max(r[2] for r in theirs) / 1024), ""),
            ("bytes written (write_bytes), median", "%.2f MB" % (med(ours, 3) / 1e6),
             "%.2f MB" % (med(theirs, 3) / 1e6), "%.0fx" % (med(theirs, 3) / max(med(ours, 3), 1))),
            ("snapshot advance, bytes (status file)", "%.2f MB" % (statistics.median(snapshot_bytes) / 1e6),
             "%.2f MB (the copy)" % (size / 1e6), ""),
        ]
        load = open("/proc/loadavg").read().split()[:3]
        print()
        print("%-40s %14s %16s %8s" % ("D1 cycle, local work", "resort-sync", "original", "ratio"))
        for r in rows:
            print("%-40s %14s %16s %8s" % r)
        print("(database %.0f MB, ~100 changed rows per cycle, %d runs each; load average %s; first full load"
              " %.2f s, %.0f MiB peak)" % (size / 1e6, a.runs, " ".join(load), full[0], full[2] / 1024))
        ratio = med(theirs, 0) / med(ours, 0)
        print("bar: whole D1 cycle's local work at least 10x faster than VACUUM INTO + sqldiff + copy: %.1fx %s"
              % (ratio, "MET" if ratio >= 10 else "NOT MET"))
        if a.out:
            with open(a.out, "a") as f:
                f.write("\n## D1 cycle, local work (bench/d1_cycle.py)%s\n\n" % (", " + a.label if a.label else ""))
                f.write("Database %.0f MB (`%s`), ~100 changed rows per cycle, %d runs each, interleaved;"
                        " load average %s.  resort-sync: `resort-sync sync` (mode d1, wrangler stubbed);"
                        " original: `sqlite3 live.db \"VACUUM INTO 'src.db'\"` + `sqldiff snapshot.db src.db`"
                        " + `cp src.db snapshot.db`.\n\n" % (size / 1e6, a.dir, a.runs, " ".join(load)))
                f.write("| | resort-sync | original | ratio |\n|---|---:|---:|---:|\n")
                for r in rows:
                    f.write("| %s | %s | %s | %s |\n" % r)
                f.write("\nBar (issue #7): whole cycle at least 10x faster: **%.1fx**, %s.\n"
                        % (ratio, "met" if ratio >= 10 else "NOT met"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
