"""Driver for bench/write_throughput.sh: an application's write throughput
with and without `resort-sync run` beside it, and the daemon's idle cost.

Configurations, run in interleaved rounds (the order rotates every round so
drift in the machine's load hits each alike):

  off    the writer alone
  d1     the writer, and `resort-sync run` in d1 mode against local D1
         (wrangler --local), interval 1 s: the writer changes rows all the
         time, so every cycle has a payload and calls wrangler; wrangler at
         the default `wrangler_priority` (low)
  d1idle, d1normal  as d1 with `wrangler_priority = "idle"` / `"normal"`
  stub   as d1, but `database.sync.d1.wrangler` is a script that answers
         success at once: the daemon's own work (read transaction, diff, SQL file,
         snapshot advance) without wrangler's node process and its local
         D1; its own snapshot path, so it never disturbs the d1 one
  d1ioidle (diagnostic, not run by default) as d1, wrangler also in the
         idle I/O class (`ionice -c 3` in a wrapper script)
  d1nice (diagnostic, not run by default) as d1, the whole daemon started
         under `nice -n 19 ionice -c 3`: its own read transaction too
  stubshm  (diagnostic, not run by default) as stub, with the snapshot and
         the payload files on tmpfs (/dev/shm): the daemon then writes
         nothing to the disk the database is on except its small status
         and metrics files, which separates its I/O from its CPU

The d1 variants share one snapshot and local D1 database (their rounds
never overlap).  Each daemon is started for its round and stopped with
SIGTERM after the writer finished; by default in a session of its own
(--session own), as systemd starts a service: the scheduler's autogroups
are per session, so this is where a nice value in the daemon stops
counting against the application; --session shared keeps it in the
writer's.  Its CPU time is the wait4() rusage, which includes the wrangler
processes it ran and reaped.  Every daemon round writes its metrics with
--metrics-file, from which the cycle counts are taken.  While the writer
runs, the daemon's process tree is sampled every 0.1 s from /proc: CPU
time per command (resort-sync, node, workerd), and the scheduling policy,
nice value, session and autogroup each process was seen with.  The
machine's busy CPU time (/proc/stat) less the writer's and the daemon
tree's is the other load (other users, and the kernel's own threads,
the writer's I/O completion among them).

Then the idle cost: the d1 daemon for IDLE seconds with no writer (after one
`sync` so nothing is pending), CPU time read from /proc between the end of
start-up and the end, and the remote calls it made.
"""
import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import d1env  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def parse_kv(line):
    return {k: float(v) for k, v in (f.split("=", 1) for f in line.split())}


def read_metrics(path):
    """Sample values of a metrics file keyed by the sample text before the value."""
    out = {}
    try:
        text = open(path).read()
    except OSError:
        return out
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def wait_first_cycle(mfile, timeout=120):
    """Wait until the daemon finished its first cycle (the one after start-up diffs in full)."""
    end = time.time() + timeout
    while time.time() < end and not any(k.startswith("rustresort_db_sync_total") and v > 0
                                        for k, v in read_metrics(mfile).items()):
        time.sleep(0.05)


def proc_cpu(pid):
    """utime + stime of a live process, in seconds (children not included)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_fields(pid):
    """The fields of /proc/PID/stat after the command name (index 0 is the state), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    return text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()


def machine_busy():
    """CPU seconds all CPUs spent not idle (nor waiting for I/O) since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


class TreeSampler:
    """Samples the processes under a pid every 0.1 s from a thread (see the module docstring)."""

    POLICY = {0: "normal", 3: "batch", 5: "idle"}

    def __init__(self, pid):
        self.pid = pid
        self.seen = {}  # pid -> (comm, own cpu s, tag)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def tree(self):
        kids = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                f = proc_fields(int(d))
                if f:
                    kids.setdefault(int(f[1][1]), []).append(int(d))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo += kids.get(p, [])
        return out

    def cpu(self):
        """CPU seconds of the tree now: each live process with the children it reaped."""
        total = 0.0
        for p in self.tree():
            f = proc_fields(p)
            if f:
                total += sum(int(x) for x in f[1][11:15]) / CLK_TCK
        return total

    def loop(self):
        while not self.done.wait(0.1):
            for p in self.tree():
                f = proc_fields(p)
                if not f:
                    continue
                comm, st = f
                try:
                    with open("/proc/%d/autogroup" % p) as g:
                        ag = g.read().split()
                    ag = "%s nice %s" % (ag[0], ag[-1])
                except (OSError, IndexError):
                    ag = "-"
                tag = "%s nice %s%s, autogroup %s" % (self.POLICY.get(int(st[38]), st[38]), st[16],
                                                      ", own session" if int(st[3]) == p and p != self.pid else "",
                                                      ag.split(" ", 1)[1] if " " in ag else ag)
                self.seen[p] = (comm, (int(st[11]) + int(st[12])) / CLK_TCK, tag)

    def stop(self):
        self.done.set()
        self.thread.join()
        by = {}
        for comm, cpu, tag in self.seen.values():
            c = by.setdefault(comm, [0.0, set()])
            c[0] += cpu
            c[1].add(tag)
        return by


def stop(p):
    """SIGTERM the daemon, reap it; (exit status, CPU seconds incl. reaped children)."""
    p.send_signal(signal.SIGTERM)
    deadline = time.time() + 120
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.05)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_utime + ru.ru_stime


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        self.db = os.path.join(self.work, "app.db")
        self.log = open(os.path.join(self.work, "daemon.log"), "a")
        self.cfg = {}

    def setup(self):
        a = self.a
        sh([a.writer, "init", self.db])
        wt = d1env.wrangler_project(os.path.join(self.work, "proj"), "bench")
        stub = os.path.join(self.work, "wrangler-stub")
        with open(stub, "w") as f:
            # what wrangler --json prints for a file whose statements all succeeded
            f.write("#!/bin/sh\necho '[{\"results\": [], \"success\": true, \"meta\": {}}]'\n")
        os.chmod(stub, 0o755)
        common = ('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\ninterval_seconds = %d\n'
                  '[database.sync.d1]\ndatabase = "bench"\nwrangler_config = "%s"\n' % (self.db, a.interval, wt))
        ioidle = os.path.join(self.work, "wrangler-ioidle")
        with open(ioidle, "w") as f:
            f.write('#!/bin/sh\nexec ionice -c 3 "%s" "$@"\n' % d1env.WRANGLER)
        os.chmod(ioidle, 0o755)
        self.shm = None
        if "stubshm" in a.configs:
            self.shm = tempfile.mkdtemp(prefix="resort-sync-wt-", dir="/dev/shm")
        for name, wrangler, extra in (
                ("d1", d1env.WRANGLER, ""),
                ("d1idle", d1env.WRANGLER, 'wrangler_priority = "idle"\n'),
                ("d1normal", d1env.WRANGLER, 'wrangler_priority = "normal"\n'),
                ("d1ioidle", ioidle, ""),
                ("d1nice", d1env.WRANGLER, ""),
                ("stub", stub, 'snapshot_path = "%s.stub-snapshot.db"\n' % self.db),
                ("stubshm", stub, 'snapshot_path = "%s/snapshot.db"\n' % self.shm)):
            if name not in a.configs and not (name == "d1" and any(c.startswith("d1") for c in a.configs)):
                continue
            path = os.path.join(self.work, "rs-%s.toml" % name)
            with open(path, "w") as f:
                f.write(common + 'wrangler = "%s"\n' % wrangler + extra)
            self.cfg[name] = path
        # First (full) loads now, so no measured round starts with one (the d1 variants share d1's state).
        for name in ("d1", "stub", "stubshm"):
            if name in self.cfg:
                sh([a.bin, "-q", "-c", self.cfg[name], "sync"])

    def writer(self, seed, sampler=None):
        a = self.a
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        b0, d0 = machine_busy(), sampler.cpu() if sampler else 0.0
        p = sh([a.writer, "run", self.db, str(a.seconds), "--sync", a.sync, "--ops", str(a.ops),
                "--seed", str(seed)])
        b1, d1 = machine_busy(), sampler.cpu() if sampler else 0.0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # only the writer was reaped in between
        r = parse_kv(p.stdout.strip())
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        tx = max(r["tx"], 1)
        r["writer_cpu_ms_per_ktx"] = 1e6 * cpu / tx
        r["runq_ms_per_ktx"] = 1000 * r.get("runq_ms", 0) / tx
        r["commit_ms_per_tx"] = r.get("commit_ms", 0) / tx
        r["other_cores"] = max(0.0, (b1 - b0) - cpu - (d1 - d0)) / r["seconds"]
        r["load1"] = float(open("/proc/loadavg").read().split()[0])
        return r

    def round(self, name, seed):
        if name == "off":
            return self.writer(seed)
        mfile = os.path.join(self.work, "metrics-%s.prom" % name)
        if os.path.exists(mfile):
            os.remove(mfile)
        cmd = [self.a.bin, "-c", self.cfg[name], "run", "--metrics-file", mfile]
        if name == "d1nice":
            cmd = ["nice", "-n", "19", "ionice", "-c", "3"] + cmd
        d = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                             start_new_session=self.a.session == "own")
        sampler = TreeSampler(d.pid)
        try:
            r = self.writer(seed, sampler)
        finally:
            tree = sampler.stop()
            rc, cpu = stop(d)
        m = read_metrics(mfile)
        lab = '{backend="d1",status="%s"}'
        r.update(daemon_rc=rc, daemon_cpu_s=cpu, tree=tree,
                 cycles_with_payload=m.get("rustresort_db_sync_total" + lab % "success", 0),
                 cycles_skipped=m.get("rustresort_db_sync_total" + lab % "skipped", 0),
                 cycles_error=m.get("rustresort_db_sync_total" + lab % "error", 0),
                 cycle_seconds=m.get("rustresort_db_sync_duration_seconds_sum" + lab % "success", 0),
                 rows_sent=m.get('resort_sync_rows_sent_total{backend="d1"}', 0),
                 remote_calls=m.get('resort_sync_remote_calls_total{backend="d1"}', 0))
        return r

    def call_cost(self, n=3):
        """One d1 cycle with a payload, nothing else of ours running: the writer runs 2 s, then `sync`.

        Median wall and CPU time (rusage of `sync` and what it reaped) and the CPU split by command
        (sampled)."""
        a = self.a
        out = []
        for i in range(n):
            sh([a.writer, "run", self.db, "2", "--sync", a.sync, "--ops", str(a.ops), "--seed", str(90000 + i)])
            r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
            p = subprocess.Popen([a.bin, "-c", self.cfg["d1"], "sync"], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, start_new_session=a.session == "own")
            sampler = TreeSampler(p.pid)
            text = p.communicate()[0]
            tree = sampler.stop()
            wall, r1 = time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
            m = re.search(r"(\d+) rows, (\d+) bytes", text)
            if p.returncode != 0 or not m:
                sys.exit("write_throughput: sync failed: %s" % text)
            out.append(dict(wall=wall, cpu=(r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
                            rows=int(m.group(1)), bytes=int(m.group(2)),
                            **{k: tree.get(k, [0.0])[0] for k in ("resort-sync", "node", "workerd")}))
        return {k: statistics.median(o[k] for o in out) for k in out[0]}

    def idle_big(self, path):
        """Idle cost on a large database: CPU per skipped cycle (stub wrangler; no call is made when idle)."""
        a = self.a
        cfg = os.path.join(self.work, "rs-big.toml")
        with open(cfg, "w") as f:
            f.write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\ninterval_seconds = 1\n'
                    '[database.sync.d1]\ndatabase = "bench"\nwrangler = "%s"\nsnapshot_path = "%s"\n'
                    % (path, os.path.join(self.work, "wrangler-stub"), os.path.join(self.work, "big-snapshot.db")))
        sh([a.bin, "-q", "-c", cfg, "sync"])  # the first (full) load, through the stub
        mfile = os.path.join(self.work, "metrics-big.prom")
        d = subprocess.Popen([a.bin, "-c", cfg, "run", "--metrics-file", mfile], stdout=self.log,
                             stderr=subprocess.STDOUT)
        wait_first_cycle(mfile)
        first = read_metrics(mfile).get("rustresort_db_sync_duration_seconds_sum{backend=\"d1\",status=\"skipped\"}", 0)
        c0, w0 = proc_cpu(d.pid), time.time()
        time.sleep(a.idle)
        c1, w1 = proc_cpu(d.pid), time.time()
        stop(d)
        m = read_metrics(mfile)
        lab = '{backend="d1",status="skipped"}'
        n = m.get("rustresort_db_sync_total" + lab, 0) - 1  # the first one is not measured
        return dict(path=path, size=os.path.getsize(path), seconds=w1 - w0, cpu_s=c1 - c0, skipped=n,
                    first_s=first,
                    cycle_s=(m.get("rustresort_db_sync_duration_seconds_sum" + lab, 0) - first) / max(n, 1),
                    remote_calls=m.get('resort_sync_remote_calls_total{backend="d1"}', 0))

    def idle(self):
        a = self.a
        sh([a.bin, "-q", "-c", self.cfg["d1"], "sync"])  # nothing pending from the rounds
        mfile = os.path.join(self.work, "metrics-idle.prom")
        t0 = time.time()
        d = subprocess.Popen([a.bin, "-c", self.cfg["d1"], "run", "--metrics-file", mfile],
                             stdout=self.log, stderr=subprocess.STDOUT)
        wait_first_cycle(mfile)  # past start-up and the first cycle: not the idle cost
        c0, w0 = proc_cpu(d.pid), time.time()
        time.sleep(a.idle)
        c1, w1 = proc_cpu(d.pid), time.time()
        rc, total = stop(d)
        life = time.time() - t0
        m = read_metrics(mfile)
        # Between cycles: the same daemon with an interval longer than the measurement.
        between = os.path.join(self.work, "rs-between.toml")
        with open(self.cfg["d1"]) as f, open(between, "w") as g:
            g.write(f.read().replace("interval_seconds = %d" % a.interval, "interval_seconds = 3600"))
        d = subprocess.Popen([a.bin, "-q", "-c", between, "run"], stdout=self.log, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        b0, v0 = proc_cpu(d.pid), time.time()
        time.sleep(min(a.idle, 20))
        b1, v1 = proc_cpu(d.pid), time.time()
        stop(d)
        return dict(seconds=w1 - w0, cpu_s=c1 - c0, total_cpu_s=total, total_seconds=life,
                    between_cpu_s=b1 - b0, between_seconds=v1 - v0, rc=rc, skipped=m.get('rustresort_db_sync_total{backend="d1",status="skipped"}', 0) - 1,
                    success=m.get('rustresort_db_sync_total{backend="d1",status="success"}', 0),
                    remote_calls=m.get('resort_sync_remote_calls_total{backend="d1"}', 0))


def loadavg():
    """1-minute load average, and the CPU pressure (PSI "some" avg60) when the kernel has it."""
    text = open("/proc/loadavg").read().split()[0]
    try:
        psi = open("/proc/pressure/cpu").readline()
        text += " (CPU pressure %s%%)" % re.search(r"avg60=([0-9.]+)", psi).group(1)
    except (OSError, AttributeError):
        pass
    return text


CONFIGS = ("off", "d1", "d1idle", "d1normal", "stub", "d1ioidle", "d1nice", "stubshm")


def median(rs, key):
    return statistics.median(r[key] for r in rs)


def daemon_table(a, res):
    """Where the daemon's CPU went, per configuration (from the tree sampler), and how its processes ran."""
    lines = ["", "Daemon side, medians per round. The daemon's CPU is its whole life's (wait4: it finishes the "
             "cycle under way after the writer stops); the split by process is what the sampled tree used while "
             "the writer ran (it misses at most 0.1 s at the end of each process).", "",
             "| configuration | daemon CPU s/round | cycles with payload/round | resort-sync CPU s | node CPU s "
             "| workerd CPU s | wrangler's processes ran as |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for c in a.configs:
        if c == "off":
            continue
        rs = res[c]

        def cpu(comm):
            return statistics.median(r["tree"].get(comm, [0.0])[0] for r in rs)
        tags = set()
        for r in rs:
            for comm, (_, t) in r["tree"].items():
                if comm != "resort-sync":
                    tags |= {"%s: %s" % (comm, x) for x in t}
        lines.append("| %s | %.1f | %g | %.2f | %.2f | %.2f | %s |" % (
            c, median(rs, "daemon_cpu_s"), median(rs, "cycles_with_payload"), cpu("resort-sync"), cpu("node"),
            cpu("workerd"), "; ".join(sorted(tags)) or "-"))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--writer", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--sync", default="FULL")
    ap.add_argument("--ops", type=int, default=4)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--configs", default="off,d1,stub")
    ap.add_argument("--interval", type=int, default=1)
    ap.add_argument("--idle-db", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--commit", default="")
    ap.add_argument("--session", choices=("own", "shared"), default="own")
    a = ap.parse_args()
    a.configs = a.configs.split(",")
    if a.configs[0] != "off" or any(c not in CONFIGS for c in a.configs):
        sys.exit("write_throughput: --configs must start with off and name only " + ", ".join(CONFIGS))
    b = Bench(a)
    try:
        b.setup()
        return run(a, b)
    finally:
        if b.shm:
            shutil.rmtree(b.shm, ignore_errors=True)


def run(a, b):
    load0 = loadavg()
    res = {c: [] for c in a.configs}
    for i in range(a.rounds):
        order = a.configs[i % len(a.configs):] + a.configs[:i % len(a.configs)]
        for c in order:
            r = b.round(c, seed=1000 * i + len(res[c]))
            res[c].append(r)
            extra = ""
            if c != "off":
                extra = "  daemon: %d cycles with payload (%.2f s each), %d rows sent, CPU %.1f s" % (
                    r["cycles_with_payload"], r["cycle_seconds"] / max(r["cycles_with_payload"], 1),
                    r["rows_sent"], r["daemon_cpu_s"])
            print("round %d %-8s %8.1f tx/s  writer CPU %.0f ms/1000 tx, waiting for a CPU %.0f ms/1000 tx, "
                  "commit %.3f ms/tx  p99 %.2f ms  max %.1f ms  WAL max %.1f MB  other load %.2f cores%s"
                  % (i + 1, c, r["tx_per_s"], r["writer_cpu_ms_per_ktx"], r["runq_ms_per_ktx"], r["commit_ms_per_tx"],
                     r["p99_ms"], r["max_ms"], r["wal_max_bytes"] / 1e6, r["other_cores"], extra), flush=True)
    load1 = loadavg()
    call = b.call_cost() if a.idle > 0 and "d1" in b.cfg else None
    idle = b.idle() if a.idle > 0 and "d1" in b.cfg else None
    big = b.idle_big(a.idle_db) if a.idle > 0 and a.idle_db else None

    med = {c: statistics.median(r["tx_per_s"] for r in res[c]) for c in a.configs}
    lines = ["# Write throughput with and without `resort-sync run`", ""]
    lines.append("%s; %d rounds of %g s per configuration, interleaved; synchronous=%s, %d statements per "
                 "transaction; daemon interval %d s, started in %s session; load average %s at the start, %s at "
                 "the end of the rounds; %s" % (
                     time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), a.rounds, a.seconds, a.sync, a.ops,
                     a.interval, "its own" if a.session == "own" else "the writer's", load0, load1, a.commit))
    lines += ["", "| configuration | median tx/s | ratio to off | paired ratio (median of per-round) "
              "| writer CPU ms/1000 tx | writer waiting for a CPU, ms/1000 tx | in COMMIT, ms/tx | p99 ms "
              "| max ms (worst) | WAL max MB (worst) | other load, cores | busy retries |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in a.configs:
        rs = res[c]
        paired = statistics.median(r["tx_per_s"] / o["tx_per_s"] for r, o in zip(rs, res["off"]))
        lines.append("| %s | %.0f | %.3f | %.3f | %.0f | %.0f | %.3f | %.2f | %.1f | %.1f | %.2f | %d |" % (
            c, med[c], med[c] / med["off"], paired, median(rs, "writer_cpu_ms_per_ktx"),
            median(rs, "runq_ms_per_ktx"), median(rs, "commit_ms_per_tx"), median(rs, "p99_ms"),
            max(r["max_ms"] for r in rs), max(r["wal_max_bytes"] for r in rs) / 1e6, median(rs, "other_cores"),
            sum(r["busy"] for r in rs)))
    lines += ["", "Medians over the rounds; \"other load\" is the machine's busy CPU time less the writer's and "
              "the daemon tree's, per second of the writer's run."]
    lines += daemon_table(a, res)
    lines += ["", "Per round (tx/s, and other load in cores):", ""]
    for c in a.configs:
        lines.append("- %s: %s" % (c, ", ".join("%.0f (%.2f)" % (r["tx_per_s"], r["other_cores"]) for r in res[c])))
    errors = sum(r.get("cycles_error", 0) for c in a.configs for r in res[c])
    if errors:
        lines += ["", "**%d daemon cycles failed** (see %s/daemon.log)" % (errors, a.work)]
    if call:
        lines += ["", "One cycle with a payload, without the writer (median of 3; load average %s): %d rows, %.1f MB "
                  "of SQL; %.1f s wall, %.1f s CPU, of which resort-sync %.2f s, node %.2f s, workerd %.2f s "
                  "(sampled)." % (loadavg(), call["rows"], call["bytes"] / 1e6, call["wall"], call["cpu"],
                                  call["resort-sync"], call["node"], call["workerd"])]
    if idle:
        lines += ["", "Idle: `resort-sync run` (d1, interval %d s, nothing changing), after its first cycle, for %.0f s: CPU %.3f s "
                  "(%.3f%% of one core), %d skipped cycles, %d cycles with payload, %d remote calls; "
                  "whole process life including start-up and stop %.3f s CPU in %.0f s." % (
                      a.interval, idle["seconds"], idle["cpu_s"], 100 * idle["cpu_s"] / idle["seconds"], idle["skipped"],
                      idle["success"], idle["remote_calls"], idle["total_cpu_s"], idle["total_seconds"]),
                  "", "Between cycles (interval 3600 s, no cycle due): CPU %.3f s in %.0f s." % (
                      idle["between_cpu_s"], idle["between_seconds"])]
    if big:
        lines += ["", "Idle on a larger database (%s, %.0f MB; wrangler stubbed, no call is made when idle): "
                  "the first cycle after start-up took %.2f s; then %d skipped cycles in %.0f s, %.3f s each, "
                  "CPU %.2f s = %.3f s per skipped cycle, %d remote calls; at the default interval of 300 s "
                  "that is %.3f%% of one core." % (
                      os.path.basename(big["path"]), big["size"] / 1e6, big["first_s"], big["skipped"], big["seconds"],
                      big["cycle_s"], big["cpu_s"], big["cpu_s"] / max(big["skipped"], 1), big["remote_calls"],
                      100 * big["cpu_s"] / max(big["skipped"], 1) / 300)]
    text = "\n".join(lines) + "\n"
    print()
    print(text, end="")
    with open(a.out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
