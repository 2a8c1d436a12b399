"""End-to-end soak: resort-sync SIGKILLed at random moments while a writer keeps writing.

A writer process commits transactions to the source database (WAL) without
pause: random changes from tests/e2e/engine_property.py, now and then a new
column and FTS 'delete' commands (which D1 must never see twice), and one
ledger row per transaction.  Meanwhile `resort-sync sync` is started over
and over and killed with SIGKILL after a random delay (from nothing to a
little more than a cycle takes), and `resort-sync run` (interval 1 s) is
started and killed likewise.  Phase 1 runs against the stand-in for D1
(tests/fixtures/d1/fake_wrangler.py, fast enough for hundreds of cycles),
phase 2 against local D1 through wrangler --local.

Checked along the way: the snapshot, recovered by SQLite from its journal,
always passes integrity_check.  At the end (writer stopped, one clean
cycle): D1 equal to the source, the snapshot equal to the source, every
ledger row on D1, D1 never rejected a payload (which a change sent twice
causes), no file left beside the snapshot, no wrangler left running.
Divergences (the sum of those failures) must be 0.

RS_SOAK_SECONDS (default 30, 15 under the sanitizers) bounds phase 1, RS_SOAK_REAL (default 6) is the
number of killed cycles in phase 2, RS_SOAK_DAEMON (default 4) the number of
killed daemons per phase; `make soak-d1` runs a long soak.
"""
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "d1"))
import faults  # noqa: E402
from faults import gen  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
SECONDS = float(os.environ.get("RS_SOAK_SECONDS", "15" if faults.SANITIZED else "30"))
REAL = int(os.environ.get("RS_SOAK_REAL", "6"))
DAEMONS = int(os.environ.get("RS_SOAK_DAEMON", "4"))
report = faults.Reporter(SEED)

WRITER = r"""
import os, random, sqlite3, sys, time
sys.path.insert(0, os.environ["RS_FAULTS_DIR"])
import faults
from faults import gen
db, stop, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])


class FewColumns(random.Random):
    # gen.mutate adds a column on op 10 of 16; the writer adds its own, a bounded number.
    def randrange(self, *a):
        v = super().randrange(*a)
        while a == (16,) and v == 10:
            v = super().randrange(*a)
        return v


g = gen.Gen(FewColumns(seed))
names = {"hostile": tuple(sys.argv[4:6])}
c = sqlite3.connect(db, timeout=60)
c.execute("PRAGMA foreign_keys = ON")
c.execute("CREATE TABLE IF NOT EXISTS ledger(seq INTEGER PRIMARY KEY, note TEXT)")
c.commit()
seq = c.execute("SELECT coalesce(max(seq), 0) FROM ledger").fetchone()[0]
cols = 0
done = 0
while not os.path.exists(stop):
    try:
        gen.mutate(c, g, names, 12)
        if (seq + 1) % 15 == 0 and cols < 40:
            c.execute("ALTER TABLE textpk ADD COLUMN soak%d_%d TEXT DEFAULT 's'" % (seed % 1000, cols + 1))
        c.execute("UPDATE docs SET body = body || ' beta' WHERE id = (SELECT max(id) FROM docs)")
        c.execute("INSERT INTO ledger(seq, note) VALUES (?, ?)", (seq + 1, "t%d" % (seq + 1)))
        c.commit()
    except sqlite3.Error as e:
        c.rollback()
        print("writer: rolled back: %s" % e, file=sys.stderr)
        continue
    seq += 1
    done += 1
    cols += (seq % 15 == 0 and cols < 40)
    time.sleep(random.random() * 0.01)
print(seq, done, flush=True)
"""


class Soak:
    def __init__(self, env, name, rnd):
        self.env, self.name, self.r = env, name, rnd
        self.started = self.killed = self.completed = self.failed = self.torn = 0
        self.daemons = 0
        self.durations = []

    def start_writer(self, tmp):
        self.stop = os.path.join(tmp, "stop-" + self.name)
        n1, n2 = self.env.names["hostile"]
        self.writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, self.env.db, self.stop, str(self.r.randrange(1 << 30)), n1, n2],
            stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, RS_FAULTS_DIR=os.path.dirname(faults.__file__)))

    def stop_writer(self):
        open(self.stop, "w").close()
        out, _ = self.writer.communicate(timeout=120)
        words = out.split()
        self.transactions = int(words[1]) if len(words) == 2 else -1
        return int(words[0]) if len(words) == 2 else -1

    def run_once(self, args, limit):
        """Start resort-sync and SIGKILL it after a random delay up to limit (None: let it finish)."""
        env = dict(os.environ, WRANGLER_SEND_METRICS="false")
        p = subprocess.Popen([faults.RS, "-c", self.env.cfg] + args, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env)
        self.started += 1
        t0 = time.monotonic()
        try:
            p.wait(timeout=600 if limit is None else self.r.uniform(0, limit))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
        p.communicate()
        if p.returncode == -signal.SIGKILL:
            self.killed += 1
        elif p.returncode == 0:
            self.completed += 1
            if args == ["sync"]:
                self.durations.append(time.monotonic() - t0)
        else:
            self.failed += 1

    def check_snapshot(self, tmp):
        if os.path.exists(self.env.snapshot):
            _, ok = faults.recovered_copy(self.env.snapshot, os.path.join(tmp, "check"))
            if ok != "ok":
                self.torn += 1

    def typical(self):
        """The median duration of the last completed one-shot cycles."""
        d = sorted(self.durations[-9:])
        return d[len(d) // 2]

    def finish(self, tmp, writes):
        """Writer stopped: one clean cycle, then the end checks; returns the divergences found."""
        p = None
        for _ in range(5):
            p = self.env.sync()
            if p.returncode == 0:
                break
        d1 = self.env.d1_differences()
        snap = self.env.snapshot_differences()
        ledger = -1
        if self.env.d1_path():
            c = sqlite3.connect("file:%s?mode=ro" % self.env.d1_path(), uri=True)
            ledger = c.execute("SELECT count(*) FROM ledger").fetchone()[0]
            c.close()
        rejected = [c for c in self.env.calls() if c.get("outcome") == "rejected"]
        left = self.env.leftovers()
        running = faults.our_processes(self.env.proj)
        divergences = len(d1) + len(snap) + (ledger != writes) + len(rejected) + self.torn
        n = self.name
        report(n + "_final_cycle_succeeds", p.returncode == 0, p.stderr[-500:])
        report(n + "_d1_equals_source", not d1, d1[:5])
        report(n + "_snapshot_equals_source", not snap, snap[:5])
        report(n + "_no_write_lost", ledger == writes, "ledger rows on D1 %d, writer committed %d" % (ledger, writes))
        report(n + "_never_rejected", not rejected, rejected[:3])
        report(n + "_snapshot_never_torn", self.torn == 0, "%d torn snapshots seen" % self.torn)
        report(n + "_nothing_left_behind", not left and not running, "files %s, processes %s" % (left, running))
        print("soak %s: %d runs started (%d daemons), %d killed mid-run, %d completed, %d failed, "
              "%d writer transactions, %d payloads handed to wrangler (%d of them sent again after a kill), "
              "%d divergences"
              % (n, self.started, self.daemons, self.killed, self.completed, self.failed, self.transactions,
                 len(self.env.calls()), len(self.env.calls()) - len({c["key"] for c in self.env.calls()}),
                 divergences))
        sys.stdout.flush()
        return divergences


def phase(tmp, name, remote, rnd, until, daemons):
    env = faults.Env(os.path.join(tmp, name), remote=remote, timeout=60)
    g = gen.Gen(random.Random(rnd.randrange(1 << 30)))
    env.build(g)
    s = Soak(env, name, rnd)
    p = env.sync()
    if not report(name + "_first_full_load", p.returncode == 0, p.stderr[-500:]):
        return 1
    s.start_writer(tmp)
    try:
        # Every 8th cycle runs to its end: it measures how long a cycle takes (the
        # kills are spread over that time and a little more) and makes progress.
        i = 0
        while not until(s):
            s.run_once(["sync"], None if i % 8 == 0 else 1.2 * s.typical())
            i += 1
            if i % 5 == 0:
                s.check_snapshot(tmp)
        for _ in range(daemons):  # `run` starts its first cycle one interval (1 s) after start-up
            s.daemons += 1
            s.run_once(["run"], 1.0 + 2.5 * s.typical())
            s.check_snapshot(tmp)
    finally:
        writes = s.stop_writer()
    return s.finish(tmp, writes)


def main():
    tmp = faults.new_tmp("rs-d1-soak-")
    rnd = random.Random(SEED)
    total = 0
    try:
        end = time.monotonic() + SECONDS
        total += phase(tmp, "fake", "fake", rnd, lambda s: time.monotonic() >= end, DAEMONS)
        if REAL > 0:
            total += phase(tmp, "wrangler", "real", rnd, lambda s: s.killed >= REAL or s.started >= 4 * REAL,
                           min(DAEMONS, 2))
        print("soak: %d divergences in all" % total)
    finally:
        faults.kill_tree_of(os.path.join(tmp, ""))
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
