"""End-to-end: Turso mode with the replica's file system full (a small tmpfs).

Everything Turso mode keeps beside the replica (database.sync.turso.replica_path)
lives here on a 4 MB tmpfs: the replica, its state (-syncstate), the base
copy of a pull (-base), the push overlay (-sync.json), the status file and
the pull's scratch files (-pullstage, -pulljournal, .pull-tmp); the
database is elsewhere.  A fresh `tursodb --sync-server` per case.

Sweeps: the tmpfs is filled so that 0, 8 KiB, 16 KiB, ... are left, and one
`resort-sync sync` runs per amount, until a sync succeeds on the filled disk
(so every write of the cycle in turn is the one that fails):

  - pull sweep: before each sync a third party changes and adds rows on the
    server (through /v2/pipeline) and the database gets local writes: the
    start-up pull fails at one of its writes;
  - push sweep: only local writes: the start-up pull has nothing to write,
    the push's overlay write fails (nothing sent), or the server commits and
    the overlay's confirmation cannot be written (the next cycle asks the
    server's watermark), or the pull of our own rows fails.

After every failed sync: exit 1 with "No space left on device" and the path
of a file on the full file system; every local write still in the
database; the replica intact (integrity_check, its size what its state
says); no scratch file left; the server holding all or none of the local
writes.  Then the space is freed and the next sync converges: the server,
read through /v2/pipeline, equals the database table by table, and no local
write is lost.  A daemon (`run`, 1 s interval) goes through the same with
its state kept in memory across the failed cycles.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "d1"))
import e2e  # noqa: E402
from e2e import report  # noqa: E402
import faults  # noqa: E402  (try_tmpfs, unmount)
import turso_sync as ts  # noqa: E402  (Server, same_table, RS, TURSODB)

MAX_ROUNDS = 120
SCRATCH = re.compile(r"(-pullstage|-pulljournal|\.pull-tmp|-base\.tmp|\.tmp-\d+)$")
TABLES = ["t", "mine"]


class Full:
    """The tmpfs, filled to leave a given number of bytes."""

    def __init__(self, mnt):
        self.mnt = mnt
        self.filler = os.path.join(mnt, "filler")

    def fill(self, leave):
        st = os.statvfs(self.mnt)
        free = st.f_bavail * st.f_frsize
        with open(self.filler, "ab") as f:
            f.write(b"\0" * max(0, free - leave))

    def free(self):
        if os.path.exists(self.filler):
            os.remove(self.filler)


class Local:
    def __init__(self, d, mnt, srv):
        self.db = os.path.join(d, "app.db")
        self.replica = os.path.join(mnt, "app.replica.db")
        self.cfg = os.path.join(d, "app.toml")
        with open(self.cfg, "w") as f:
            f.write('[database]\npath = "%s"\n[database.sync]\nmode = "turso"\ninterval_seconds = 1\n'
                    '[database.sync.turso]\nremote_url = "%s"\nreplica_path = "%s"\n'
                    % (self.db, srv.url, self.replica))

    def sql(self, *stmts):
        c = sqlite3.connect(self.db, isolation_level=None)
        c.execute("PRAGMA journal_mode=wal")
        for s in stmts:
            c.execute(*s) if isinstance(s, tuple) else c.execute(s)
        c.close()

    def mine(self):
        c = sqlite3.connect(self.db)
        rows = dict(c.execute("SELECT id, v FROM mine"))
        c.close()
        return rows

    def sync(self):
        p = subprocess.run([ts.RS, "-c", self.cfg, "sync"], capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr


def server_mine(srv):
    return {r[1][1]: r[2][1].decode() for r in srv.pipeline("SELECT rowid, id, v FROM mine")[0]}


def replica_problems(cl, mnt):
    """The replica is intact and holds what its state says; no scratch file is left."""
    out = []
    left = [f for f in os.listdir(mnt) if SCRATCH.search(f)]
    if left:
        out.append("left behind: %s" % left)
    st = json.load(open(cl.replica + "-syncstate"))
    if st["revision"]:
        size = os.path.getsize(cl.replica)
        if size != st["db_size"] * 4096:
            out.append("replica is %d bytes, its state says %d pages" % (size, st["db_size"]))
        c = sqlite3.connect("file:%s?immutable=1" % cl.replica, uri=True)
        ic = c.execute("PRAGMA integrity_check").fetchone()[0]
        c.close()
        if ic != "ok":
            out.append("replica integrity_check: %s" % ic)
    return out


def converged(cl, srv):
    for t in TABLES:
        ok, why = ts.same_table(cl.db, srv, t)
        if not ok:
            return why
    return ""


def setup(d, mnt, srv):
    cl = Local(d, mnt, srv)
    cl.sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "CREATE TABLE mine(id INTEGER PRIMARY KEY, v TEXT)",
           *[("INSERT INTO t VALUES (?, ?)", (i, "seed %d " % i + "s" * 150)) for i in range(1, 121)],
           *[("INSERT INTO mine VALUES (?, ?)", (i, "local 0")) for i in range(1, 241)])
    rc, out = cl.sync()
    if rc != 0 or converged(cl, srv):
        raise RuntimeError("first sync: %s %s" % (out[-500:], converged(cl, srv)))
    return cl


def sweep(name, d, mnt, srv, server_writes, step_bytes):
    """One sync per amount of free space (step_bytes more each time) until one succeeds on the filled disk."""
    cl = setup(d, mnt, srv)
    full = Full(mnt)
    points, problems, unconverged = {}, [], []
    committed_unconfirmed = 0
    succeeded_at = None
    for rnd in range(1, MAX_ROUNDS + 1):
        leave = (rnd - 1) * step_bytes
        # Writes of this round: the local ones (updates and one insert) must never be lost.
        cl.sql(("UPDATE mine SET v = ? WHERE id % 2 = ?", ("local %d" % rnd, rnd % 2)),
               ("INSERT INTO mine VALUES (?, ?)", (1000 + rnd, "new %d" % rnd)))
        if server_writes:
            srv.pipeline(("UPDATE t SET v = ? WHERE id % 5 = ?", ("remote %d " % rnd + "r" * 150, rnd % 5)),
                         ("INSERT INTO t VALUES (?, ?)", (1000 + rnd, "remote new %d" % rnd)))
        expect = cl.mine()
        on_server = server_mine(srv)
        full.fill(leave)
        rc, out = cl.sync()
        if rc == 0:
            full.free()
            succeeded_at = leave
            break
        # A failed sync on a full disk.
        paths = re.findall(re.escape(mnt) + r"/[^:\s\"]+", out)
        where = re.sub(r"\d+$", "N", os.path.basename(paths[-1])) if paths else None
        if where:
            points[where] = points.get(where, 0) + 1
        step = re.search(r"resort-sync: ([a-z -]+(?:\([^)]*\))?):", out)
        if step and where:
            points[where + " in " + step.group(1)] = 1
        after = server_mine(srv)
        why = []
        if rnd <= 2:
            print("  %d bytes left: %s" % (leave, out.strip().splitlines()[-1] if out.strip() else "(no message)"))
        if rc != 1 or "No space left on device" not in out or not where:
            why.append("rc=%d, message %r" % (rc, out.strip().splitlines()[-1:] if out.strip() else ""))
        if cl.mine() != expect:
            why.append("local writes changed by the failed sync")
        if after not in (on_server, expect):
            why.append("the server holds part of a batch")
        why += replica_problems(cl, mnt)
        if why:
            problems.append("round %d (%d bytes left): %s" % (rnd, leave, "; ".join(why)))
        # Room again: the next cycle converges, nothing lost.
        full.free()
        rc2, out2 = cl.sync()
        diff = converged(cl, srv) if rc2 == 0 else out2[-300:]
        if not diff and server_mine(srv) != cl.mine():
            diff = "mine differs"
        if not diff and cl.mine() != expect:
            diff = "a local write was lost"
        if step and step.group(1).endswith("push") and after == expect and after != on_server:
            committed_unconfirmed += 1
            if "had committed" not in out2:
                diff += " (the server had the batch but the next cycle did not settle it as committed)"
        if diff:
            unconverged.append("round %d (%d bytes left): %s" % (rnd, leave, diff))
    full.free()
    print("%s: %d syncs failed on the full disk, then one succeeded with %s bytes left; failure points %s; "
          "%d times the server committed a push whose confirmation could not be written"
          % (name, rnd - 1 if succeeded_at is not None else rnd, succeeded_at,
             sorted(k for k in points if " in " in k), committed_unconfirmed))
    files = {k for k in points if " in " not in k}
    report(name + "_failures_are_clear_and_lose_nothing", not problems, problems[:4])
    report(name + "_next_cycle_converges", not unconverged, unconverged[:4])
    report(name + "_ends_with_a_sync_on_the_filled_disk", succeeded_at is not None and rnd > 1,
           "rounds %d" % rnd)
    return files, committed_unconfirmed


def case_pull(d, srv, mnt):
    files, _ = sweep("pull_sweep", d, mnt, srv, server_writes=True, step_bytes=8192)
    want = {"app.replica.db-pullstage", "app.replica.db-base.tmp", "app.replica.db-pulljournal"}
    report("pull_sweep_fails_at_stage_base_and_journal", want <= files, sorted(files))


def case_push(d, srv, mnt):
    files, committed = sweep("push_sweep", d, mnt, srv, server_writes=False, step_bytes=4096)
    report("push_sweep_fails_at_the_overlay", any(f.startswith("app.replica.db-sync.json") for f in files),
           sorted(files))
    report("push_sweep_commit_without_confirmation_settled", committed >= 1,
           "the sweep never hit the window between the server's commit and the overlay's confirmation")


def case_daemon(d, srv, mnt):
    """`run`: failed cycles keep their state in memory; once there is room the daemon converges."""
    cl = setup(d, mnt, srv)
    full = Full(mnt)
    log = os.path.join(d, "daemon.log")
    lf = open(log, "w")
    p = subprocess.Popen([ts.RS, "-c", cl.cfg, "run"], stdout=lf, stderr=subprocess.STDOUT)

    def count(what):
        return open(log).read().count(what)

    def wait(what, n, secs=20):
        end = time.time() + secs
        while time.time() < end and count(what) < n:
            time.sleep(0.2)
        return count(what) >= n

    problems = []
    try:
        if not wait("sync done", 1):  # the first cycle, after start-up
            problems.append("no first cycle")
        for rnd, leave in enumerate((0, 16384, 65536, 131072, 262144), 1):
            cl.sql(("UPDATE mine SET v = ? WHERE id % 3 = ?", ("daemon %d" % rnd, rnd % 3)),
                   ("INSERT INTO mine VALUES (?, ?)", (5000 + rnd, "daemon new %d" % rnd)))
            srv.pipeline(("UPDATE t SET v = ? WHERE id % 7 = ?", ("daemon remote %d " % rnd + "d" * 200, rnd % 7)),
                         ("INSERT INTO t VALUES (?, ?)", (5000 + rnd, "daemon remote new")))
            cycles = count("sync failed") + count("sync done")
            full.fill(leave)
            # two more cycles on the full disk (failed or not)
            end = time.time() + 20
            while time.time() < end and count("sync failed") + count("sync done") < cycles + 2:
                time.sleep(0.2)
            full.free()
            done = count("sync done")
            if not wait("sync done", done + 2):
                problems.append("round %d: no successful cycle after the space came back" % rnd)
                continue
            why = converged(cl, srv)
            if not why and server_mine(srv) != cl.mine():
                why = "mine differs"
            if why:
                problems.append("round %d (%d bytes left): %s" % (rnd, leave, why))
    finally:
        full.free()
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
        lf.close()
    out = open(log).read()
    nfail = out.count("sync failed")
    print("daemon: %d cycles failed on the full disk, %d succeeded" % (nfail, out.count("sync done")))
    report("daemon_full_disk_converges", not problems and p.returncode == 0 and nfail >= 1,
           "%s rc=%s failed cycles %d %s" % (problems[:3], p.returncode, nfail, out[-600:]))
    report("daemon_full_disk_errors_name_the_file",
           all("No space left on device" in line and mnt in line for line in out.splitlines() if "sync failed" in line),
           [line for line in out.splitlines() if "sync failed" in line][:3])


def run_case(fn, mnt):
    d = tempfile.mkdtemp(prefix="rs-turso-full-")
    srv = ts.Server(d)
    try:
        for f in os.listdir(mnt):
            os.remove(os.path.join(mnt, f))
        fn(d, srv, mnt)
    except Exception as e:  # a broken case is a failure, not a crash of the suite
        report(fn.__name__, False, "exception %r" % (e,))
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    cases = (case_pull, case_push, case_daemon)
    if not os.path.exists(ts.TURSODB):
        for c in cases:
            print("SKIP %s: tursodb missing (run scripts/deps.sh)" % c.__name__)
        return 0
    tmp = tempfile.mkdtemp(prefix="rs-turso-tmpfs-")
    mnt = os.path.join(tmp, "small")
    try:
        if not faults.try_tmpfs(mnt, "4m"):
            for c in cases:
                print("SKIP %s: cannot mount a tmpfs here (needs root and a kernel that allows it)" % c.__name__)
            return 0
        try:
            for c in cases:
                run_case(c, mnt)
        finally:
            faults.unmount(mnt)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
