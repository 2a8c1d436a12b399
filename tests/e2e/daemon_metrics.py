"""End-to-end: the daemon's metrics outputs, against local D1 (wrangler --local).

One `resort-sync run --metrics-file PATH` with a 1-second interval and an
HTTP endpoint, driven through these phases:

  1. first cycle (a full load): the metrics file appears, with the cycle
     counted, mode 0644 (umask 022), the same families and series as a
     scrape of /metrics;
  2. idle: cycles are skipped, no wrangler call is made (the wrangler
     wrapper's call log and resort_sync_remote_calls_total stay put), and
     the file is replaced after every cycle;
  3. duplicate: wrangler applies a payload but its answer is lost (the
     wrapper reports a failure that is not an SQL error), so the payload
     stays pending and the next cycle sends it again: D1's history already
     holds its key.  The scrape shows status="duplicate" counted once and
     rustresort_db_sync_last_success_unix_seconds moved to that cycle, and
     D1 has the change once;
  4. outage: wrangler fails; /healthz stays 200 while the last good cycle
     is younger than metrics.health_stale_seconds, turns 503 at the bound
     (not before, not long after), and 200 again after recovery;
  5. SIGTERM: exit 0, the file written a last time, no temporary left.

All along a thread reads the metrics file as fast as it can; every read
must parse under a strict text-format parser (below), contain every family,
and the inode must change from write to write (replaced by rename, never
rewritten in place).  `promtool check metrics` runs on the file and on a
scrape when promtool is on PATH, else SKIP.  A second short daemon with no
cycle yet checks that /healthz turns 503 once start-up is older than the bound.
"""
import hashlib
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.environ.get("RS_BIN", os.path.join(ROOT, BUILD, "resort-sync"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ beside the tests
import d1env  # noqa: E402
import e2e  # noqa: E402  (the PASS/FAIL reporter)
from daemon_d1 import get  # noqa: E402  (its HTTP helper; its main() does not run)
from e2e import free_port, report  # noqa: E402
WRANGLER = d1env.WRANGLER
STALE = 6  # metrics.health_stale_seconds


# ---- a strict parser for the Prometheus text format 0.0.4 ------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
HELP_RE = re.compile(r"# HELP (%s) ((?:[^\\\n]|\\\\|\\n)*)$" % NAME)
TYPE_RE = re.compile(r"# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)
SAMPLE_RE = re.compile(r"(%s)(?:\{(.*)\})? (\S+)(?: (-?[0-9]+))?$" % NAME)
PAIR_RE = re.compile(r'(%s)="((?:[^\\"\n]|\\\\|\\"|\\n)*)"' % LABEL)
# Every family resort-sync writes, in its order; the file must hold all of them.
FAMILIES = [
    "rustresort_db_sync_total", "rustresort_db_sync_duration_seconds",
    "rustresort_db_sync_last_success_unix_seconds", "rustresort_db_sync_backend_last_success_unix_seconds",
    "resort_sync_replication_lag_seconds", "resort_sync_pending_changes", "resort_sync_rows_sent_total",
    "resort_sync_bytes_sent_total", "resort_sync_remote_calls_total", "resort_sync_last_cycle_rows",
    "resort_sync_last_cycle_bytes", "resort_sync_errors_total", "resort_sync_last_error_unix_seconds",
    "resort_sync_verify_mismatch", "resort_sync_d1_fallback_full_loads_total", "resort_sync_d1_full_load_parts",
    "resort_sync_d1_full_load_parts_applied", "resort_sync_d1_full_load_resumes_total", "resort_sync_build_info",
]


def parse_value(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", s):
        raise ValueError("bad value %r" % s)
    return float(s)


def parse_labels(s):
    """'a="x",b="y"' -> (('a','x'),('b','y')); ValueError on anything else."""
    out, pos = [], 0
    while pos < len(s):
        m = PAIR_RE.match(s, pos)
        if not m:
            raise ValueError("bad label syntax at %r" % s[pos:pos + 30])
        out.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos < len(s):
            if s[pos] != ",":
                raise ValueError("expected ',' at %r" % s[pos:pos + 30])
            pos += 1
    names = [k for k, _ in out]
    if len(set(names)) != len(names):
        raise ValueError("repeated label name in {%s}" % s)
    return tuple(out)


def parse_exposition(text):
    """Parse strictly; return {family: {"type", "help", "samples": [(name, labels, value)]}}.

    Beyond the grammar: text ends in a newline; no blank lines or other
    comments (resort-sync writes none); each family has HELP and TYPE before
    its samples, once each; a family's samples are contiguous; sample names
    fit their family's type; no duplicate series; counters are >= 0;
    histograms have ascending `le` ending in +Inf, cumulative counts,
    _count equal to the +Inf bucket, and a _sum.
    """
    if not text.endswith("\n"):
        raise ValueError("does not end in a newline (%d bytes)" % len(text))
    fams, order, seen_series = {}, [], set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (n, line[:80])
        if line.startswith("#"):
            m = HELP_RE.match(line) or TYPE_RE.match(line)
            if not m:
                raise ValueError("%s: not a HELP or TYPE line" % where)
            fam = m.group(1)
            key = "help" if line.startswith("# HELP") else "type"
            f = fams.setdefault(fam, {"samples": []})
            if key in f:
                raise ValueError("%s: second %s for %s" % (where, key.upper(), fam))
            if f["samples"]:
                raise ValueError("%s: %s after samples of %s" % (where, key.upper(), fam))
            if fam != current and fam in order:
                raise ValueError("%s: family %s resumed" % (where, fam))
            f[key] = m.group(2)
            if fam not in order:
                order.append(fam)
            current = fam
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ValueError("%s: not a sample line" % where)
        name, labels = m.group(1), parse_labels(m.group(2) or "")
        value = parse_value(m.group(3))
        fam = current
        if fam is None or "type" not in fams[fam] or "help" not in fams[fam]:
            raise ValueError("%s: sample before its family's HELP and TYPE" % where)
        typ = fams[fam]["type"]
        allowed = {fam} if typ in ("counter", "gauge", "untyped") else \
            {fam + "_bucket", fam + "_sum", fam + "_count"}
        if name not in allowed:
            raise ValueError("%s: %s does not belong to %s family %s" % (where, name, typ, fam))
        if any(k == "le" for k, _ in labels) != (name.endswith("_bucket") and typ == "histogram"):
            raise ValueError("%s: le label misplaced" % where)
        if (name, labels) in seen_series:
            raise ValueError("%s: duplicate series" % where)
        seen_series.add((name, labels))
        if typ == "counter" and not (value >= 0):
            raise ValueError("%s: counter value %r" % (where, value))
        fams[fam]["samples"].append((name, labels, value))
    for fam, f in fams.items():
        if "type" not in f or "help" not in f:
            raise ValueError("family %s lacks HELP or TYPE" % fam)
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
    return fams


def check_histogram(fam, samples):
    groups = {}
    for name, labels, value in samples:
        base = tuple(kv for kv in labels if kv[0] != "le")
        g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            g["buckets"].append((parse_value(dict(labels)["le"]), value))
        elif name.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for base, g in groups.items():
        les = [b for b, _ in g["buckets"]]
        counts = [c for _, c in g["buckets"]]
        if not les or les[-1] != math.inf or les != sorted(les) or len(set(les)) != len(les):
            raise ValueError("%s%s: le values %r" % (fam, base, les))
        if counts != sorted(counts):
            raise ValueError("%s%s: buckets not cumulative %r" % (fam, base, counts))
        if g["sum"] is None or g["count"] is None or g["count"] != counts[-1]:
            raise ValueError("%s%s: _count %r, +Inf bucket %r, _sum %r" % (fam, base, g["count"], counts[-1],
                                                                         g["sum"]))


def value_of(fams, family, sample=None, **labels):
    """The value of one series, or None when absent."""
    for name, lab, v in fams.get(family, {"samples": []})["samples"]:
        if name == (sample or family) and dict(lab) == labels:
            return v
    return None


def series(fams):
    return {(name, lab) for f in fams.values() for name, lab, _ in f["samples"]}


# ---- the daemon's surroundings -----------------------------------------------

def wait_for(pred, timeout, step=0.2):
    """Poll pred until it returns something true; that value, or None after timeout seconds."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


class Watcher(threading.Thread):
    """Read the metrics file as often as possible; parse every new content.

    Records per read the inode and the content's digest; keeps the first
    parse error and the latest good parse (with its inode and time).
    """

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.reads = 0
        self.inodes = []      # distinct inodes in the order first seen
        self.inode_changes = 0  # reads whose inode differs from the read before (a freed
                                # inode number may come back, so count changes, not numbers)
        self.last_ino = None
        self.writes = 0       # times the (inode, content) pair changed
        self.last_seen = None
        self.modes = set()
        self.error = None
        self.parsed = {}      # digest -> families
        self.latest = None    # (inode, families, time)

    def run(self):
        while not self.stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    st = os.fstat(f.fileno())
                    data = f.read()
            except FileNotFoundError:
                time.sleep(0.002)
                continue
            digest = hashlib.sha256(data).digest()
            fams = self.parsed.get(digest)
            err = None
            if fams is None:
                try:
                    fams = parse_exposition(data.decode("utf-8"))
                    missing = [f for f in FAMILIES if f not in fams]
                    if missing:
                        raise ValueError("families missing: %s" % ", ".join(missing))
                    self.parsed[digest] = fams
                except (ValueError, UnicodeDecodeError) as e:
                    err = "%s (read %d, %d bytes)" % (e, self.reads + 1, len(data))
            with self.lock:
                self.reads += 1
                self.modes.add(st.st_mode & 0o7777)
                if st.st_ino not in self.inodes:
                    self.inodes.append(st.st_ino)
                if self.last_ino is not None and st.st_ino != self.last_ino:
                    self.inode_changes += 1
                self.last_ino = st.st_ino
                if self.last_seen != (st.st_ino, digest):
                    self.last_seen = (st.st_ino, digest)
                    self.writes += 1
                if err and not self.error:
                    self.error = err
                if fams is not None:
                    self.latest = (st.st_ino, fams, time.time())
            time.sleep(0.0005)

    def snapshot(self):
        with self.lock:
            return self.latest, self.inode_changes

    def wait_change(self, timeout):
        """Block until the file changes (new inode or new content); False on timeout."""
        with self.lock:
            n0 = self.writes
        return bool(wait_for(lambda: self.writes > n0, timeout, 0.002))

    def wait_new_write(self, timeout):
        """Block until the file changes once more; its families (None if they do not parse or no change)."""
        with self.lock:
            n0 = self.writes
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if self.writes > n0:
                    return self.latest[1] if self.latest and self.latest[0] == self.last_seen[0] else None
            time.sleep(0.002)
        return None


def promtool_check(name, text):
    tool = shutil.which("promtool")
    if not tool:
        print("SKIP %s: promtool not on PATH (Debian 12: package prometheus; scripts/deps.sh installs "
              "/usr/local/bin/promtool from it when run as root)" % name)
        return
    p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    report(name, p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
           "rc=%d out=%r err=%r" % (p.returncode, p.stdout[-500:], p.stderr[-500:]))


def insert(db, v):
    c = sqlite3.connect(db)
    c.execute("INSERT INTO t(v) VALUES (?)", (v,))
    c.commit()
    c.close()


def calls(tmp):
    try:
        return open(os.path.join(tmp, "calls")).read().split()
    except FileNotFoundError:
        return []


def main():
    os.umask(0o022)
    tmp = tempfile.mkdtemp(prefix="rs-dmetrics-")
    d = None
    try:
        proj = os.path.join(tmp, "proj")
        wt = d1env.wrangler_project(proj, "db")
        wrapper = os.path.join(tmp, "wrangler")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\necho start >> %s/calls\n"
                    "if [ -f %s/fail ]; then echo 'simulated outage' >&2; echo end >> %s/calls; exit 1; fi\n"
                    "if [ -f %s/lose ]; then rm %s/lose; %s \"$@\" >/dev/null 2>&1\n"
                    "  echo 'simulated lost answer' >&2; echo end >> %s/calls; exit 1; fi\n"
                    "%s \"$@\"; rc=$?\necho end >> %s/calls\nexit $rc\n"
                    % (tmp, tmp, tmp, tmp, tmp, WRANGLER, tmp, WRANGLER, tmp))
        os.chmod(wrapper, 0o755)
        db = os.path.join(tmp, "app.db")
        c = sqlite3.connect(db)
        c.executescript("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                        "INSERT INTO t(v) VALUES ('a'), ('b'), ('c');")
        c.close()
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        cfg = os.path.join(tmp, "rs.toml")
        body = ('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\ninterval_seconds = 1\n'
                '[database.sync.d1]\ndatabase = "db"\nwrangler = "%s"\nwrangler_config = "%s"\n'
                '[metrics]\nlisten = "127.0.0.1:%d"\nhealth_stale_seconds = %d\n' % (db, wrapper, wt, port, STALE))
        with open(cfg, "w") as f:
            f.write(body)
        mdir = os.path.join(tmp, "textfile")
        os.mkdir(mdir)
        mfile = os.path.join(mdir, "resort_sync.prom")
        snap = db + ".d1-sync-snapshot.db"
        log_path = os.path.join(tmp, "daemon.log")
        log = open(log_path, "w")
        w = Watcher(mfile)
        w.start()
        d = subprocess.Popen([RS, "-c", cfg, "run", "--metrics-file", mfile], stdout=log, stderr=subprocess.STDOUT)

        def scrape():
            code, text = get(base + "/metrics")
            if code != 200:
                return None
            try:
                return parse_exposition(text)
            except ValueError as e:
                report("scrape_parses_strictly", False, str(e))
                return None

        def tail():
            return open(log_path).read()[-800:]

        # -- 1. first cycle -------------------------------------------------------
        up = wait_for(lambda: get(base + "/healthz")[0] == 200, 120)
        report("healthz_200_at_start_up", bool(up), str(get(base + "/healthz")))
        ok = wait_for(lambda: w.snapshot()[0] and (value_of(w.snapshot()[0][1], "rustresort_db_sync_total",
                                                            backend="d1", status="success") or 0) >= 1, 120)
        report("metrics_file_written_after_cycle", bool(ok), tail())
        if not ok:
            return 1
        fams = w.snapshot()[0][1]
        report("metrics_file_has_cycle_values",
               (value_of(fams, "rustresort_db_sync_last_success_unix_seconds") or 0) > time.time() - 300
               and value_of(fams, "resort_sync_remote_calls_total", backend="d1") == 1
               and value_of(fams, "resort_sync_rows_sent_total", backend="d1") == 3
               and value_of(fams, "rustresort_db_sync_duration_seconds", "rustresort_db_sync_duration_seconds_count",
                            backend="d1", status="success") == 1
               and value_of(fams, "resort_sync_build_info", version=value_of_version(fams)) == 1,
               str({k: fams[k]["samples"] for k in ("rustresort_db_sync_last_success_unix_seconds",
                                                   "resort_sync_remote_calls_total", "resort_sync_rows_sent_total")}))
        st = os.stat(mfile)
        report("metrics_file_mode_0644", (st.st_mode & 0o7777) == 0o644 and w.modes == {0o644},
               "mode %o, seen %s" % (st.st_mode & 0o7777, sorted("%o" % m for m in w.modes)))
        same = None
        for _ in range(5):  # a cycle may land between the two reads; retry
            f1 = w.snapshot()[0][1]
            s = scrape()
            f2 = w.snapshot()[0][1]
            if s is not None and f1 is f2:
                same = ({k: (v["type"], v["help"]) for k, v in f1.items()} ==
                        {k: (v["type"], v["help"]) for k, v in s.items()} and series(f1) == series(s))
                if same:
                    break
        report("metrics_file_matches_scrape", bool(same), "families or series differ")

        # -- 2. idle cycles: no wrangler call, the file replaced each time -----------
        s0 = scrape()
        calls0, n_inodes0 = len(calls(tmp)), w.snapshot()[1]
        skipped0 = value_of(s0, "rustresort_db_sync_total", backend="d1", status="skipped")
        remote0 = value_of(s0, "resort_sync_remote_calls_total", backend="d1")
        s1 = wait_for(lambda: (lambda s: s if s and value_of(s, "rustresort_db_sync_total", backend="d1",
                                                            status="skipped") >= skipped0 + 3 else None)(scrape()), 30)
        report("idle_cycles_make_no_wrangler_call",
               s1 is not None and len(calls(tmp)) == calls0 and
               value_of(s1, "resort_sync_remote_calls_total", backend="d1") == remote0 and
               value_of(s1, "resort_sync_last_cycle_rows", backend="d1") == 0,
               "skipped %s -> %s, wrangler calls %d -> %d, remote_calls_total %s -> %s" % (
                   skipped0, s1 and value_of(s1, "rustresort_db_sync_total", backend="d1", status="skipped"),
                   calls0, len(calls(tmp)), remote0, s1 and value_of(s1, "resort_sync_remote_calls_total",
                                                                     backend="d1")))
        ok = wait_for(lambda: w.snapshot()[1] - n_inodes0 >= 3, 5)
        report("metrics_file_replaced_each_cycle", ok,
               "%d inode changes over 3 cycles" % (w.snapshot()[1] - n_inodes0))

        # -- 3. duplicate: D1 applied a payload but its answer was lost ---------------
        # The wrapper runs wrangler, then reports a failure that is not an SQL
        # error: D1's fate is unknown, the payload stays pending and the next
        # cycle sends the same file again; D1's history already has its key.
        before = scrape()
        ls_before = value_of(before, "rustresort_db_sync_last_success_unix_seconds")
        if not w.wait_change(10):  # a cycle just ended: the next one is ~1 s away
            report("duplicate_setup", False, "no cycle within 10 s")
        t_lose = time.time()
        open(os.path.join(tmp, "lose"), "w").close()
        insert(db, "d")
        s = wait_for(lambda: (lambda s: s if s and (value_of(s, "rustresort_db_sync_total", backend="d1",
                                                             status="duplicate") or 0) >= 1 else None)(scrape()), 90)
        report("duplicate_cycle_counted",
               s is not None and value_of(s, "rustresort_db_sync_total", backend="d1", status="duplicate") == 1
               and value_of(s, "rustresort_db_sync_total", backend="d1", status="error") == 1
               and value_of(s, "rustresort_db_sync_duration_seconds", "rustresort_db_sync_duration_seconds_count",
                            backend="d1", status="duplicate") == 1
               and "payload was applied before" in open(log_path).read(),
               tail())
        if s is not None:
            ls = value_of(s, "rustresort_db_sync_last_success_unix_seconds")
            report("duplicate_sets_last_success", ls is not None and ls >= t_lose and ls > ls_before
                   and value_of(s, "rustresort_db_sync_backend_last_success_unix_seconds", backend="d1") == ls,
                   "last success %r, before %r, answer lost from %.3f" % (ls, ls_before, t_lose))
            fams = w.wait_new_write(10)
            report("duplicate_in_metrics_file", fams is not None and value_of(
                fams, "rustresort_db_sync_total", backend="d1", status="duplicate") == 1)
        q = subprocess.run([WRANGLER, "d1", "execute", "db", "--local", "--json", "--command",
                            "SELECT (SELECT count(*) FROM t) AS n, (SELECT count(*) FROM _rustresort_sync_history) AS h"],
                           cwd=proj, capture_output=True, text=True, timeout=120)
        got = re.findall(r'"(n|h)":\s*(\d+)', q.stdout)
        snap_rows = sqlite3.connect(snap).execute("SELECT count(*) FROM t").fetchone()[0]
        report("duplicate_payload_applied_once",
               sorted(got) == [("h", "2"), ("n", "4")] and snap_rows == 4
               and not os.path.exists(snap + ".pending.sql"),
               "D1 %s, snapshot rows %d, pending left: %s" % (got or q.stderr[-300:], snap_rows,
                                                             os.path.exists(snap + ".pending.sql")))

        # -- 4. outage: /healthz tracks the staleness bound -----------------------------
        ok = wait_for(lambda: get(base + "/healthz")[0] == 200, 120)
        errors0 = value_of(scrape(), "rustresort_db_sync_total", backend="d1", status="error")
        open(os.path.join(tmp, "fail"), "w").close()
        insert(db, "during outage")
        t_change = time.time()
        polls, t_err, t503 = [], None, None
        while time.time() < t_change + STALE + 20:
            code, _ = get(base + "/healthz")
            now = time.time()
            polls.append((now, code))
            if t_err is None and (value_of(scrape() or {}, "rustresort_db_sync_total", backend="d1",
                                           status="error") or 0) > errors0:
                t_err = time.time()
            if code == 503 and t503 is None:
                t503 = now
            if t503 and t_err:
                break
            time.sleep(0.1)
        early = [round(t - t_change, 2) for t, code in polls if code != 200 and t < t_change + STALE - 1.5]
        within = [code for t, code in polls if t_err and t_err < t < t_change + STALE - 1.5]
        report("healthz_200_while_failing_within_bound", t_err is not None and within and not early,
               "first error %s s after the change, early non-200 at %s, %d polls in the window" % (
                   t_err and round(t_err - t_change, 2), early, len(within)))
        report("healthz_503_at_bound", t503 is not None and STALE - 1.5 <= t503 - t_change <= STALE + 2.5,
               "503 after %s s (bound %d s)" % (t503 and round(t503 - t_change, 2), STALE))
        code, text = get(base + "/metrics")
        try:
            s = parse_exposition(text)
            report("scrape_parses_strictly", code == 200 and all(f in s for f in FAMILIES), "HTTP %d" % code)
        except ValueError as e:
            s = {}
            report("scrape_parses_strictly", False, str(e))
        promtool_check("promtool_check_scrape", text)
        err_total = sum(value_of(s, "resort_sync_errors_total", backend="d1", **{"class": k}) or 0
                        for k in ("config", "local", "transport", "remote", "unsupported"))
        last_err = [value_of(s, "resort_sync_last_error_unix_seconds", backend="d1", **{"class": k})
                    for k in ("config", "local", "transport", "remote", "unsupported")]
        report("error_metrics_recorded", err_total >= 1 and any(v and v >= t_change - 0.5 for v in last_err),
               "errors_total %r, last_error %r" % (err_total, last_err))
        os.remove(os.path.join(tmp, "fail"))
        ok = wait_for(lambda: get(base + "/healthz")[0] == 200, 180)
        report("healthz_200_after_recovery", bool(ok), tail())

        # -- 5. stop ----------------------------------------------------------------------
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=90)
        time.sleep(0.2)
        w.stop.set()
        w.join()
        leftovers = [n for n in os.listdir(mdir) if n != "resort_sync.prom"]
        report("sigterm_exits_zero_no_temporary_left", rc == 0 and not leftovers,
               "rc=%s, left in the directory: %s" % (rc, leftovers))
        report("metrics_file_never_partial", w.error is None and w.reads >= 200,
               "%s; %d reads" % (w.error, w.reads))
        report("metrics_file_replaced_by_rename", w.inode_changes >= 8,
               "%d inode changes over the run" % w.inode_changes)
        text = open(mfile).read()
        final = parse_exposition(text)
        report("metrics_file_final_write_after_stop",
               value_of(final, "rustresort_db_sync_total", backend="d1", status="success") >= 2)
        promtool_check("promtool_check_metrics_file", text)
        d = None
    finally:
        if d is not None and d.poll() is None:
            d.kill()
            d.wait()

    # -- a daemon that has not finished a cycle yet: 503 once start-up is older than the bound
    port2 = free_port()
    cfg2 = os.path.join(tmp, "rs2.toml")
    with open(cfg2, "w") as f:
        f.write(body.replace("interval_seconds = 1", "interval_seconds = 60")
                .replace("127.0.0.1:%d" % port, "127.0.0.1:%d" % port2)
                .replace("health_stale_seconds = %d" % STALE, "health_stale_seconds = 3"))
    d = subprocess.Popen([RS, "-q", "-c", cfg2, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base2 = "http://127.0.0.1:%d" % port2
        t0 = time.time()
        first = wait_for(lambda: get(base2 + "/healthz")[0] or None, 10, 0.05)
        t_first = time.time() - t0
        later = wait_for(lambda: get(base2 + "/healthz")[0] == 503, 10)
        report("healthz_no_cycle_yet_503_past_bound", first == 200 and t_first < 2 and bool(later),
               "first answer %r after %.2f s, 503 later: %s" % (first, t_first, bool(later)))
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if e2e.failed else 0


def value_of_version(fams):
    s = fams.get("resort_sync_build_info", {"samples": []})["samples"]
    return dict(s[0][1]).get("version") if s else None


if __name__ == "__main__":
    sys.exit(main())
