"""Driver for bench/write_throughput.sh: an application's write throughput
with and without `resort-sync run` beside it, and the daemon's idle cost.

Configurations, run in interleaved rounds (the order rotates every round so
drift in the machine's load hits each alike):

  off    the writer alone
  d1     the writer, and `resort-sync run` in d1 mode against local D1
         (wrangler --local), interval 1 s: the writer changes rows all the
         time, so every cycle has a payload and calls wrangler
  stub   as d1, but `database.sync.d1.wrangler` is a script that answers
         success at once: the daemon's own work (read transaction, diff, SQL file,
         snapshot advance) without wrangler's node process and its local
         D1; its own snapshot path, so it never disturbs the d1 one
  d1nice (diagnostic, not run by default) as d1, the daemon started under
         `nice -n 19 ionice -c 3` (its wrangler children inherit both): does
         giving the application priority over the sync recover its throughput?
  d1wnice (diagnostic, not run by default) as d1, only wrangler under
         `nice -n 19 ionice -c 3` (through a wrapper script): the daemon's
         own read transaction keeps its normal priority
  stubshm  (diagnostic, not run by default) as stub, with the snapshot and
         the payload files on tmpfs (/dev/shm): the daemon then writes
         nothing to the disk the database is on except its small status
         and metrics files, which separates its I/O from its CPU

Each daemon is started for its round and stopped with SIGTERM after the
writer finished; its CPU time is the wait4() rusage, which includes the
wrangler processes it ran and reaped.  Every daemon round writes its metrics
with --metrics-file, from which the cycle counts are taken.

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
        wnice = os.path.join(self.work, "wrangler-nice")
        with open(wnice, "w") as f:
            f.write('#!/bin/sh\nexec nice -n 19 ionice -c 3 "%s" "$@"\n' % d1env.WRANGLER)
        os.chmod(wnice, 0o755)
        self.shm = None
        if "stubshm" in a.configs:
            self.shm = tempfile.mkdtemp(prefix="resort-sync-wt-", dir="/dev/shm")
        for name, wrangler, extra in (
                ("d1", d1env.WRANGLER, ""),
                ("d1wnice", wnice, ""),
                ("stub", stub, 'snapshot_path = "%s.stub-snapshot.db"\n' % self.db),
                ("stubshm", stub, 'snapshot_path = "%s/snapshot.db"\n' % self.shm)):
            if not self.needs(name):
                continue
            path = os.path.join(self.work, "rs-%s.toml" % name)
            with open(path, "w") as f:
                f.write(common + 'wrangler = "%s"\n' % wrangler + extra)
            self.cfg[name] = path
        # First (full) loads now, so no measured round starts with one.
        for name in ("d1", "stub", "stubshm"):
            if self.needs(name):
                sh([a.bin, "-q", "-c", self.cfg[name], "sync"])

    def needs(self, name):
        """Is this daemon configuration run, itself or as a niced variant (d1nice, d1wnice use d1's state)?"""
        return any(c == name or (c.startswith(name) and c.endswith("nice")) for c in self.a.configs)

    def writer(self, seed):
        a = self.a
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = sh([a.writer, "run", self.db, str(a.seconds), "--sync", a.sync, "--ops", str(a.ops),
                "--seed", str(seed)])
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # only the writer was reaped in between
        r = parse_kv(p.stdout.strip())
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        r["writer_cpu_ms_per_ktx"] = 1e6 * cpu / max(r["tx"], 1)
        return r

    def round(self, name, seed):
        if name == "off":
            return self.writer(seed)
        mfile = os.path.join(self.work, "metrics-%s.prom" % name)
        if os.path.exists(mfile):
            os.remove(mfile)
        cmd = [self.a.bin, "-c", self.cfg[name if name in self.cfg else name[:-4]], "run", "--metrics-file", mfile]
        if name in ("d1nice", "stubnice"):
            cmd = ["nice", "-n", "19", "ionice", "-c", "3"] + cmd
        d = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            r = self.writer(seed)
        finally:
            rc, cpu = stop(d)
        m = read_metrics(mfile)
        lab = '{backend="d1",status="%s"}'
        r.update(daemon_rc=rc, daemon_cpu_s=cpu,
                 cycles_with_payload=m.get("rustresort_db_sync_total" + lab % "success", 0),
                 cycles_skipped=m.get("rustresort_db_sync_total" + lab % "skipped", 0),
                 cycles_error=m.get("rustresort_db_sync_total" + lab % "error", 0),
                 cycle_seconds=m.get("rustresort_db_sync_duration_seconds_sum" + lab % "success", 0),
                 rows_sent=m.get('resort_sync_rows_sent_total{backend="d1"}', 0),
                 remote_calls=m.get('resort_sync_remote_calls_total{backend="d1"}', 0))
        return r

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
    a = ap.parse_args()
    a.configs = a.configs.split(",")
    if a.configs[0] != "off" or any(c not in ("off", "d1", "d1nice", "d1wnice", "stub", "stubshm") for c in a.configs):
        sys.exit("write_throughput: --configs must start with off and name only off, d1, d1nice, d1wnice, stub, stubshm")
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
            print("round %d %-4s %8.1f tx/s  writer CPU %.0f ms/1000 tx  p99 %.2f ms  max %.1f ms  WAL max %.1f MB%s"
                  % (i + 1, c, r["tx_per_s"], r["writer_cpu_ms_per_ktx"], r["p99_ms"], r["max_ms"],
                     r["wal_max_bytes"] / 1e6, extra), flush=True)
    load1 = loadavg()
    idle = b.idle() if a.idle > 0 and "d1" in b.cfg else None
    big = b.idle_big(a.idle_db) if a.idle > 0 and a.idle_db else None

    med = {c: statistics.median(r["tx_per_s"] for r in res[c]) for c in a.configs}
    lines = ["# Write throughput with and without `resort-sync run`", ""]
    lines.append("%s; %d rounds of %g s per configuration, interleaved; synchronous=%s, %d statements per "
                 "transaction; daemon interval %d s; load average %s at the start, %s at the end of the "
                 "rounds; %s" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), a.rounds, a.seconds, a.sync,
                                 a.ops, a.interval, load0, load1, a.commit))
    lines += ["", "| configuration | median tx/s | ratio to off | paired ratio (median of per-round) "
              "| writer CPU ms/1000 tx (median) | p99 ms (median) | max ms (worst) | WAL max MB (worst) "
              "| daemon CPU s/round (median) | cycles with payload/round (median) | busy retries |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in a.configs:
        rs = res[c]
        paired = statistics.median(r["tx_per_s"] / o["tx_per_s"] for r, o in zip(rs, res["off"]))
        daemon = ("%.1f" % statistics.median(r["daemon_cpu_s"] for r in rs), "%g" % statistics.median(
            r["cycles_with_payload"] for r in rs)) if c != "off" else ("", "")
        lines.append("| %s | %.0f | %.3f | %.3f | %.0f | %.2f | %.1f | %.1f | %s | %s | %d |" % (
            c, med[c], med[c] / med["off"], paired, statistics.median(r["writer_cpu_ms_per_ktx"] for r in rs),
            statistics.median(r["p99_ms"] for r in rs),
            max(r["max_ms"] for r in rs), max(r["wal_max_bytes"] for r in rs) / 1e6, daemon[0], daemon[1],
            sum(r["busy"] for r in rs)))
    lines += ["", "Per round (tx/s):", ""]
    for c in a.configs:
        lines.append("- %s: %s" % (c, ", ".join("%.0f" % r["tx_per_s"] for r in res[c])))
    errors = sum(r.get("cycles_error", 0) for c in a.configs for r in res[c])
    if errors:
        lines += ["", "**%d daemon cycles failed** (see %s/daemon.log)" % (errors, a.work)]
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
