"""End-to-end: resort-sync stays out of the application's way.

An application writes its WAL-mode database continuously (wal_autocheckpoint
= 100 pages, about 400 KB, at a steady ~2 MB/s) while `resort-sync run`
syncs it into local D1 every second.  resort-sync holds its read transaction
only for the local part of a cycle, never during the wrangler call (several
seconds), and never checkpoints itself; so the application's WAL stays near
its own autocheckpoint size.  A program that held the read transaction
across the remote call would let the WAL grow by seconds of writes
(about 6 MB here), past the bound this test asserts (3 MB).
"""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.environ.get("RS_BIN", os.path.join(ROOT, BUILD, "resort-sync"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import d1env  # noqa: E402
WRANGLER = d1env.WRANGLER
BOUND = 3 << 20


def main():
    tmp = tempfile.mkdtemp(prefix="rs-wal-")
    try:
        proj = os.path.join(tmp, "proj")
        d1env.wrangler_project(proj, "db")
        db = os.path.join(tmp, "app.db")
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA wal_autocheckpoint = 100")
        c.execute("CREATE TABLE log(id INTEGER PRIMARY KEY, body TEXT)")
        cfg = os.path.join(tmp, "rs.toml")
        open(cfg, "w").write('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\ninterval_seconds = 1\n'
                             '[database.sync.d1]\ndatabase = "db"\nwrangler = "%s"\nwrangler_config = "%s"\n'
                             % (db, WRANGLER, os.path.join(proj, "wrangler.toml")))
        d = subprocess.Popen([RS, "-c", cfg, "-q", "run"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wal = db + "-wal"
        biggest, rows, t_end = 0, 0, time.time() + 15
        body = "x" * 2000
        try:
            while time.time() < t_end:
                t0 = time.time()
                for _ in range(50):  # ~100 KB per batch, 20 batches a second: ~2 MB/s
                    c.execute("INSERT INTO log(body) VALUES (?)", (body,))
                    rows += 1
                if os.path.exists(wal):
                    biggest = max(biggest, os.path.getsize(wal))
                time.sleep(max(0, 0.05 - (time.time() - t0)))
        finally:
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=60)
        synced = sqlite3.connect(db + ".d1-sync-snapshot.db").execute("SELECT count(*) FROM log").fetchone()[0]
        ok = biggest < BOUND and synced > 0
        print(("PASS" if ok else "FAIL") + " wal_bounded_while_daemon_runs" +
              ("" if ok else ": max WAL %d bytes (bound %d), %d rows written, %d in the snapshot"
               % (biggest, BOUND, rows, synced)))
        print("# max WAL %d bytes, %d rows written in 15 s, %d synced" % (biggest, rows, synced))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
