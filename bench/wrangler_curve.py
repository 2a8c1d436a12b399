#!/usr/bin/env python3
"""wrangler_curve.py: what local wrangler's `d1 execute --file` costs, by
statement size, value length and file size (bench/README.md, "wrangler
local's cost curve").

Every point is one SQL file applied with

    wrangler d1 execute DB --local --file F --json --yes

in a fresh wrangler project (a temporary directory with its own
wrangler.toml, so a fresh local D1 state).  A file is a CREATE TABLE
t(id INTEGER PRIMARY KEY, v TEXT) and multi-row INSERTs of rows
(id, 'text of the value length'), packed until the next row would pass the
statement size (at least one row per statement), until the file size is
reached; value length 0 stands for rows of eight 19-digit integers (no
text: every byte outside quotes, like tables of ids, counts and times).
Values are plain letters, no quotes to escape.  The JSON answer
must report success for every statement, else the point fails.

Parts (each can be left out by emptying its variable):

  1. grid: every statement size x value length, files of WC_GRID_MB;
  2. file sizes: WC_FILE_MB at the best statement size found for the
     middle value length, and at WC_EMIT_KB (what resort-sync emits);
  3. split: WC_SPLIT_MB of rows as one file, or as several files of
     WC_SPLIT_PARTS_MB each (one wrangler call per file, into the same
     fresh state), at the best statement size;
  4. start-up: a file holding `SELECT 1`, WC_STARTUP_RUNS times;
  5. literal length: the longest values written as literals of at most
     WC_PIECE_B bytes joined by || (the same TEXT), at the best statement
     size for them and at WC_EMIT_KB.  (wrangler splits a file into
     statements in JavaScript, one character at a time, and the cost of a
     quoted literal grows with the square of its length.)
  6. the splitter alone: the same files through wrangler's own
     splitSqlQuery (its code taken from wrangler-dist/cli.js) in node,
     timed without start-up or D1: the part of the cost that is node's.

Reported per point: wall seconds, MB/s (file bytes / wall), CPU seconds of
the children (node and workerd: wait4's rusage), statements, mean
statement bytes.  Standard library only.

  bench/wrangler_curve.py [--out bench/results/FILE.md]

Variables (defaults keep the run near 10 minutes on 2 vCPUs):
  WC_STMT_KB        5,10,20,50,98     statement sizes (KB of 1000 bytes)
  WC_VALUE_B        0,100,2000,20000  value lengths (bytes); 0: rows of eight 19-digit integers, no text
  WC_GRID_MB        2                 file size of the grid points (MB of 10^6 bytes)
  WC_FILE_MB        1,4,16            file sizes of part 2 (bigger: e.g. 1,4,16,49)
  WC_EMIT_KB        98                the statement size resort-sync emits today
  WC_SPLIT_MB       16                part 3's total
  WC_SPLIT_PARTS_MB 4                 part 3's file sizes (e.g. 4,1)
  WC_PIECE_B        500,2000          part 5: the longest values as ||-joined literals of these bytes
  WC_RUNS           2                 runs per grid and part-5 point (the fastest is kept)
  WC_SPLITTER       1                 part 6: time wrangler's splitter alone in node (0: skip)
  WC_WRANGLER       1                 0: part 6 only (no wrangler call)
  WC_STARTUP_RUNS   3
  WC_TIMEOUT        600               seconds per wrangler call
  WRANGLER          tools/node_modules/.bin/wrangler
"""
import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRANGLER = os.environ.get("WRANGLER", os.path.join(ROOT, "tools", "node_modules", ".bin", "wrangler"))
TOML = ('name = "wc"\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "bench"\n'
        'database_id = "00000000-0000-0000-0000-000000000000"\n')
NUM_COLS = ["a", "b", "c", "d", "e", "f", "g", "h"]
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def env_list(name, default, kind=float):
    text = os.environ.get(name, default).strip()
    return [kind(x) for x in text.split(",") if x.strip()] if text else []


def value(i, length, piece=0):
    """Value number i as SQL: `length` letters, different per row; with piece,
    as literals of at most piece letters joined by || (the same TEXT)."""
    head = "%d-" % i
    body = (LETTERS[i % len(LETTERS):] + LETTERS) * (length // len(LETTERS) + 2)
    text = (head + body)[:length]
    if not piece or length <= piece:
        return "'%s'" % text
    return "||".join("'%s'" % text[k:k + piece] for k in range(0, length, piece))


def write_sql(path, stmt_bytes, value_len, file_bytes, first_id=1, create=True, piece=0):
    """Write one file; return (rows, statements, bytes, next id)."""
    n_stmt = rows = 0
    i = first_id
    with open(path, "w") as f:
        size = 0
        if create:
            head = "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT, %s);\n" % ", ".join(NUM_COLS)
            f.write(head)
            size += len(head)
            n_stmt += 1
        while size < file_bytes:
            parts = ["INSERT INTO t(id, %s) VALUES\n" % (", ".join(NUM_COLS) if not value_len else "v")]
            used = len(parts[0])
            k = 0
            while k == 0 or size + used < file_bytes:
                if value_len:
                    row = "%s(%d,%s)" % (",\n" if k else "", i, value(i, value_len, piece))
                else:  # a row of numbers: every byte outside quotes
                    row = "%s(%d,%s)" % (",\n" if k else "", i, ",".join(
                        "%d" % ((i * 7919 + c * 104729) * 1000003 % 10 ** 18 + 10 ** 18) for c in range(len(NUM_COLS))))
                if k and used + len(row) + 2 > stmt_bytes:
                    break
                parts.append(row)
                used += len(row)
                i += 1
                k += 1
            parts.append(";\n")
            text = "".join(parts)
            f.write(text)
            size += len(text)
            n_stmt += 1
            rows += k
    return rows, n_stmt, os.path.getsize(path), i


def project():
    d = tempfile.mkdtemp(prefix="rs-wcurve-")
    with open(os.path.join(d, "wrangler.toml"), "w") as f:
        f.write(TOML)
    return d


def execute(proj, sql, statements, timeout):
    """(wall s, children's CPU s, error or None) of one wrangler call."""
    env = dict(os.environ, WRANGLER_SEND_METRICS="false", CI="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        p = subprocess.run([WRANGLER, "d1", "execute", "bench", "--local", "--file", sql, "--json", "--yes"],
                           cwd=proj, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return timeout, float("nan"), "timed out after %d s" % timeout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode != 0:
        return wall, cpu, "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).decode(errors="replace")[-300:])
    try:
        res = json.loads(p.stdout)
    except ValueError:
        return wall, cpu, "not JSON: %s" % p.stdout.decode(errors="replace")[:300]
    if not isinstance(res, list) or not all(r.get("success") for r in res):
        return wall, cpu, "a statement failed: %s" % p.stdout.decode(errors="replace")[:300]
    if statements is not None and len(res) != statements:
        return wall, cpu, "%d results for %d statements" % (len(res), statements)
    return wall, cpu, None


class Bench:
    def __init__(self, timeout):
        self.timeout = timeout
        self.points = []
        self.tmp = tempfile.mkdtemp(prefix="rs-wcurve-sql-")

    def point(self, part, stmt_kb, value_len, file_mb, runs=1, piece=0):
        """One file, one call, a fresh state each run; the fastest run is kept
        (other load on the machine only adds time)."""
        sql = os.path.join(self.tmp, "p.sql")
        rows, n, size, _ = write_sql(sql, int(stmt_kb * 1000), value_len, int(file_mb * 1e6), piece=piece)
        walls, best, err = [], None, None
        for _ in range(runs):
            proj = project()
            try:
                wall, cpu, err = execute(proj, sql, n, self.timeout)
            finally:
                shutil.rmtree(proj, ignore_errors=True)
            if err:
                break
            walls.append(wall)
            if best is None or wall < best[0]:
                best = (wall, cpu)
        wall, cpu = best if best and not err else (wall, cpu)
        p = {"part": part + (" (literals of %d B)" % piece if piece else ""), "stmt_kb": stmt_kb,
             "value": value_len, "file_mb": file_mb, "bytes": size, "rows": rows, "statements": n,
             "mean_stmt": size / n, "wall": wall, "cpu": cpu, "err": err, "calls": 1, "runs": walls}
        self.points.append(p)
        show(p)
        return p

    def split(self, stmt_kb, value_len, total_mb, part_mb):
        """total_mb of rows in files of part_mb, one call each, into one fresh state."""
        proj = project()
        wall = cpu = 0.0
        size = n_all = rows_all = calls = 0
        err = None
        next_id = 1
        try:
            done = 0
            while done < total_mb * 1e6 and not err:
                sql = os.path.join(self.tmp, "s%d.sql" % calls)
                want = min(part_mb * 1e6, total_mb * 1e6 - done)
                rows, n, b, next_id = write_sql(sql, int(stmt_kb * 1000), value_len, int(want), next_id,
                                                create=calls == 0)
                w, c, err = execute(proj, sql, n, self.timeout)
                wall += w
                cpu += c
                size += b
                done += b
                n_all += n
                rows_all += rows
                calls += 1
                os.remove(sql)
        finally:
            shutil.rmtree(proj, ignore_errors=True)
        p = {"part": "split %g MB files" % part_mb, "stmt_kb": stmt_kb, "value": value_len, "file_mb": total_mb,
             "bytes": size, "rows": rows_all, "statements": n_all, "mean_stmt": size / max(n_all, 1),
             "wall": wall, "cpu": cpu, "err": err, "calls": calls, "runs": [wall]}
        self.points.append(p)
        show(p)
        return p

    def startup(self, runs):
        sql = os.path.join(self.tmp, "one.sql")
        with open(sql, "w") as f:
            f.write("SELECT 1;\n")
        walls = []
        for _ in range(runs):
            proj = project()
            try:
                w, _, err = execute(proj, sql, 1, self.timeout)
            finally:
                shutil.rmtree(proj, ignore_errors=True)
            if err:
                raise SystemExit("wrangler_curve: wrangler does not run: %s" % err)
            walls.append(w)
        return walls


HARNESS = r"""
function trimSqlQuery(sql) { return sql; }
const fs = require("fs");
for (const f of process.argv.slice(2)) {
  const sql = fs.readFileSync(f, "utf8");
  const t0 = process.hrtime.bigint();
  const n = splitSqlQuery(sql).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({file: f, statements: n, seconds: s}));
}
"""


def splitter_times(files, timeout):
    """Seconds wrangler's own statement splitter (src/d1/splitter.ts, taken
    from wrangler-dist/cli.js) takes on each file, in node, without start-up
    or D1; None when the code cannot be found."""
    dist = os.path.join(os.path.dirname(os.path.realpath(WRANGLER)), "..", "wrangler-dist", "cli.js")
    try:
        code = open(dist, encoding="utf-8").read()
    except OSError:
        return None
    a, b = code.find("// src/d1/splitter.ts"), code.find("var init_splitter")
    if a < 0 or b < a:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
        f.write(code[a:b] + HARNESS)
        js = f.name
    try:
        out = {}
        for path in files:  # one process per file: each starts with a fresh heap
            p = subprocess.run(["node", js, path], capture_output=True, timeout=timeout)
            if p.returncode != 0:
                return None
            r = json.loads(p.stdout.decode().strip().splitlines()[-1])
            out[path] = (r["seconds"], r["statements"])
        return out
    finally:
        os.remove(js)


def mbps(p):
    return p["bytes"] / 1e6 / p["wall"] if not p["err"] and p["wall"] > 0 else float("nan")


def show(p):
    print("%-22s stmt %5.0f KB  value %6d B  file %5.1f MB  %4d stmts (mean %6.0f B)  %2d call(s)  %7.2f s"
          "  %6.3f MB/s  cpu %7.2f s  runs %s%s" % (
              p["part"], p["stmt_kb"], p["value"], p["bytes"] / 1e6, p["statements"], p["mean_stmt"], p["calls"],
              p["wall"], mbps(p), p["cpu"], " ".join("%.2f" % w for w in p["runs"]),
              "  FAILED: " + p["err"] if p["err"] else ""), flush=True)


def best_stmt(points, value_len):
    ok = [p for p in points if p["part"] == "grid" and p["value"] == value_len and not p["err"]]  # one literal
    return max(ok, key=mbps) if ok else None


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError):
        mem = float("nan")
    ver = subprocess.run([WRANGLER, "--version"], capture_output=True).stdout.decode().strip().splitlines()
    node = subprocess.run(["node", "--version"], capture_output=True).stdout.decode().strip()
    return ("%d vCPUs, %s, %.1f GiB RAM, Linux %s, Python %s, wrangler %s, node %s, load average %s"
            % (os.cpu_count(), model, mem, platform.release(), platform.python_version(),
               ver[-1] if ver else "?", node or "?", " ".join("%.2f" % x for x in os.getloadavg())))


def net_mbps(p, start):
    """MB/s once the calls' start-up (start s each) is taken off."""
    net = p["wall"] - p["calls"] * start
    return p["bytes"] / 1e6 / net if not p["err"] and net > 0 else float("nan")


def table(points, start):
    lines = ["| part | statement limit | value | file | statements (mean bytes) | calls | wall s (fastest) | MB/s"
             " | MB/s without start-up | CPU s | all runs, s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in points:
        lines.append("| %s | %g KB | %d B | %.2f MB | %d (%.0f) | %d | %s | %s | %s | %.2f | %s |" % (
            p["part"], p["stmt_kb"], p["value"], p["bytes"] / 1e6, p["statements"], p["mean_stmt"], p["calls"],
            "%.2f" % p["wall"] if not p["err"] else "FAILED (%s)" % p["err"][:60],
            "%.3f" % mbps(p) if not p["err"] else "-", "%.3f" % net_mbps(p, start) if not p["err"] else "-",
            p["cpu"], " ".join("%.2f" % w for w in p["runs"])))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="markdown report")
    args = ap.parse_args()
    if not os.access(WRANGLER, os.X_OK):
        raise SystemExit("wrangler_curve: %s not found (npm install in tools/)" % WRANGLER)
    stmts = env_list("WC_STMT_KB", "5,10,20,50,98")
    values = env_list("WC_VALUE_B", "0,100,2000,20000", int)
    grid_mb = float(os.environ.get("WC_GRID_MB", "2"))
    files = env_list("WC_FILE_MB", "1,4,16")
    emit_kb = float(os.environ.get("WC_EMIT_KB", "98"))
    split_mb = float(os.environ.get("WC_SPLIT_MB", "16"))
    parts = env_list("WC_SPLIT_PARTS_MB", "4")
    timeout = int(os.environ.get("WC_TIMEOUT", "600"))
    runs = int(os.environ.get("WC_RUNS", "2"))
    pieces = env_list("WC_PIECE_B", "500,2000", int)
    b = Bench(timeout)
    t_start = time.time()
    host = machine()
    print(host, flush=True)
    calls = os.environ.get("WC_WRANGLER", "1") == "1"
    starts, start, best_kb = [], float("nan"), None
    try:
        if calls:
            starts = b.startup(int(os.environ.get("WC_STARTUP_RUNS", "3")))
            start = statistics.median(starts)
            print("start-up (SELECT 1, fresh state): %s s, median %.2f s" % (
                ", ".join("%.2f" % s for s in starts), start), flush=True)
        for v in values if calls else []:
            for s in stmts:
                b.point("grid", s, v, grid_mb, runs)
        mid = values[len(values) // 2] if values else 2000
        bp = best_stmt(b.points, mid)
        best_kb = bp["stmt_kb"] if bp else 10
        for s in sorted({best_kb, emit_kb}) if calls else []:
            for f in files:
                b.point("file size", s, mid, f)
        if calls and split_mb and parts:
            whole = [p for p in b.points if p["part"] == "file size" and p["stmt_kb"] == best_kb
                     and p["file_mb"] == split_mb]
            if not whole:
                b.point("file size", best_kb, mid, split_mb)
            for m in parts:
                b.split(best_kb, mid, split_mb, m)
        if calls and values and pieces:
            longest = max(values)
            lp = best_stmt(b.points, longest)
            for s in sorted({lp["stmt_kb"] if lp else 10, emit_kb}):
                for c in pieces:
                    b.point("pieces", s, longest, grid_mb, runs, piece=c)
        # 6. wrangler's splitter alone, on the grid's and part 5's files
        split_rows = []
        if os.environ.get("WC_SPLITTER", "1") == "1" and values and stmts:
            files, shape = [], {}
            for v in values:
                for s in stmts:
                    for c in [0] + (pieces if v == max(values) else []):
                        path = os.path.join(b.tmp, "sp_%d_%g_%d.sql" % (v, s, c))
                        _, n, size, _ = write_sql(path, int(s * 1000), v, int(grid_mb * 1e6), piece=c)
                        files.append(path)
                        shape[path] = (s, v, c, size, n)
            times = splitter_times(files, timeout)
            for path in files if times else []:
                s, v, c, size, n = shape[path]
                split_rows.append((s, v, c, size, times[path][0], times[path][1] == n))
            for r in split_rows:
                print("splitter only: stmt %g KB value %d B%s: %.2f s, %.3f MB/s%s" % (
                    r[0], r[1], " (literals of %d B)" % r[2] if r[2] else "", r[4], r[3] / 1e6 / r[4],
                    "" if r[5] else " (statement count differs)"), flush=True)
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
    took = time.time() - t_start

    out = ["# wrangler local: cost by statement size, value length and file size", "",
           "`bench/wrangler_curve.py`, %s UTC; the run took %.0f s." % (
               time.strftime("%Y-%m-%d %H:%M", time.gmtime(t_start)), took), "",
           "Machine: %s." % host, "",
           "Start-up of one call (`SELECT 1`, fresh state): %s s (median %.2f s)." % (
               ", ".join("%.2f" % s for s in starts), start), "",
           table(b.points, start), "", "Best statement size per value length (grid, %g MB files):" % grid_mb, ""]
    for v in values:
        bp = best_stmt(b.points, v)
        row = [p for p in b.points if p["part"] == "grid" and p["value"] == v]
        if bp:
            out.append("- %d B values: best %g KB at %.3f MB/s (%s)" % (
                v, bp["stmt_kb"], mbps(bp), ", ".join("%g KB %.2f s" % (p["stmt_kb"], p["wall"])
                                                     if not p["err"] else "%g KB failed" % p["stmt_kb"]
                                                     for p in row)))
    for p in b.points:
        if p["part"].startswith("pieces") and not p["err"]:
            same = [q for q in b.points if q["part"] == "grid" and q["value"] == p["value"]
                    and q["stmt_kb"] == p["stmt_kb"] and not q["err"]]
            out.append("- %d B values, %g KB statements, %s: %.2f s%s" % (
                p["value"], p["stmt_kb"], p["part"][len("pieces "):], p["wall"],
                " against %.2f s as one literal each" % same[0]["wall"] if same else ""))
    out.append("")
    if calls and split_mb and parts:
        out.append("Split (one file of %g MB against several, counting each call's start-up):" % split_mb)
        out.append("")
    for p in b.points:
        if p["part"].startswith("split") or (p["part"] == "file size" and p["file_mb"] == split_mb
                                             and p["stmt_kb"] == best_kb):
            out.append("- %s: %d call(s), %.2f s (%.2f s of it start-up at %.2f s per call)%s" % (
                "one file" if p["part"] == "file size" else p["part"], p["calls"], p["wall"],
                p["calls"] * start, start, " FAILED" if p["err"] else ""))
    if split_rows:
        out += ["", "wrangler's statement splitter alone (node, no start-up, no D1), %g MB files:" % grid_mb, "",
                "| statement limit | value | literals | seconds | MB/s |", "|---:|---:|---:|---:|---:|"]
        for r in split_rows:
            out.append("| %g KB | %d B | %s | %.2f | %.3f |" % (
                r[0], r[1], "%d B" % r[2] if r[2] else "one per value", r[4], r[3] / 1e6 / r[4]))
    text = "\n".join(out) + "\n"
    print()
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 1 if any(p["err"] for p in b.points) else 0


if __name__ == "__main__":
    sys.exit(main())
