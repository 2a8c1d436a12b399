"""End-to-end: `resort-sync run` as a service, against local D1 (wrangler --local).

Drives the scheduler with a 1-second interval: cycles happen and never
overlap; /metrics over HTTP carries the strategy's names, labels and
histogram buckets after success, skip and error cycles; /healthz answers;
a second instance is refused naming the holder's pid; SIGHUP with a broken
config keeps the old one; SIGHUP that cannot take up even the old one (the
lock is lost) exits non-zero saying why; SIGTERM during a cycle exits 0 with the snapshot
intact (old or new, never partial); mode none exits 0 at once.
"""
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BUILD", "build")
RS = os.environ.get("RS_BIN", os.path.join(ROOT, BUILD, "resort-sync"))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import d1env  # noqa: E402
import e2e  # noqa: E402
WRANGLER = d1env.WRANGLER
from e2e import free_port, report  # noqa: E402


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def metric(text, name, **labels):
    total = None
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all('%s="%s"' % kv in line for kv in labels.items()):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def main():
    tmp = tempfile.mkdtemp(prefix="rs-daemon-")
    try:
        proj = os.path.join(tmp, "proj")
        d1env.wrangler_project(proj, "db")
        wrapper = os.path.join(tmp, "wrangler")
        open(wrapper, "w").write("#!/bin/sh\necho start >> %s/calls\n"
                                 "if [ -f %s/fail ]; then echo 'simulated outage' >&2; echo end >> %s/calls; exit 1; fi\n"
                                 "%s \"$@\"; rc=$?\necho end >> %s/calls\nexit $rc\n" % (tmp, tmp, tmp, WRANGLER, tmp))
        os.chmod(wrapper, 0o755)
        db = os.path.join(tmp, "app.db")
        c = sqlite3.connect(db)
        c.executescript("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                        "INSERT INTO t(v) VALUES ('a'), ('b');")
        c.close()
        port = free_port()
        cfg = os.path.join(tmp, "rs.toml")
        body = ('[database]\npath = "%s"\n[database.sync]\nmode = "d1"\ninterval_seconds = 1\n'
                '[database.sync.d1]\ndatabase = "db"\nwrangler = "%s"\nwrangler_config = "%s"\n'
                '[metrics]\nlisten = "127.0.0.1:%d"\nhealth_stale_seconds = 4\n'
                % (db, wrapper, os.path.join(proj, "wrangler.toml"), port))
        open(cfg, "w").write(body)
        log = open(os.path.join(tmp, "daemon.log"), "w")
        d = subprocess.Popen([RS, "-v", "-v", "-c", cfg, "run"], stdout=log, stderr=subprocess.STDOUT)
        base = "http://127.0.0.1:%d" % port
        try:
            up = wait_for(lambda: get(base + "/healthz")[0] in (200, 503), 30)
            report("metrics_endpoint_up", up)
            ok = wait_for(lambda: (metric(get(base + "/metrics")[1], "rustresort_db_sync_total",
                                          backend="d1", status="success") or 0) >= 1, 180)
            report("cycle_runs_on_interval", ok, open(log.name).read()[-500:])
            # a skipped cycle follows (nothing changed)
            ok = wait_for(lambda: (metric(get(base + "/metrics")[1], "rustresort_db_sync_total",
                                          backend="d1", status="skipped") or 0) >= 1, 120)
            report("idle_cycle_is_skipped", ok)
            ok = wait_for(lambda: "nothing to diff" in open(log.name).read(), 60)
            report("idle_cycle_does_not_scan", ok, open(log.name).read()[-500:])

            # second instance refused, naming the pid
            p = subprocess.run([RS, "-c", cfg, "sync"], capture_output=True, text=True, timeout=60)
            report("second_instance_refused", p.returncode == 1 and ("pid %d" % d.pid) in p.stderr,
                   "rc=%d %r" % (p.returncode, p.stderr))

            # an outage: error cycles, then /healthz turns 503 past the staleness bound
            open(os.path.join(tmp, "fail"), "w").close()
            c = sqlite3.connect(db)
            c.execute("INSERT INTO t(v) VALUES ('during outage')")
            c.commit()
            c.close()
            ok = wait_for(lambda: (metric(get(base + "/metrics")[1], "rustresort_db_sync_total",
                                          backend="d1", status="error") or 0) >= 1, 30)
            report("error_cycle_recorded", ok)
            ok503 = wait_for(lambda: get(base + "/healthz")[0] == 503, 20)
            report("healthz_503_when_stale", ok503, str(get(base + "/healthz")))
            os.remove(os.path.join(tmp, "fail"))
            ok = wait_for(lambda: get(base + "/healthz")[0] == 200, 180)
            report("healthz_recovers", ok)

            def in_snapshot():
                try:
                    s = sqlite3.connect("file:%s?mode=ro" % (db + ".d1-sync-snapshot.db"), uri=True)
                    n = s.execute("SELECT count(*) FROM t WHERE v = 'during outage'").fetchone()[0]
                    s.close()
                    return n == 1
                except sqlite3.Error:
                    return False
            # the write made while cycles were skipping reached D1 (the snapshot advances only then)
            report("change_after_idle_cycles_is_sent", wait_for(in_snapshot, 180))

            text = get(base + "/metrics")[1]
            buckets = re.findall(r'rustresort_db_sync_duration_seconds_bucket\{backend="d1",status="success",le="([^"]+)"\}', text)
            report("histogram_buckets_as_original",
                   buckets == ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"],
                   str(buckets))
            helps = all(("# HELP %s " % n) in text and ("# TYPE %s " % n) in text for n in (
                "rustresort_db_sync_total", "rustresort_db_sync_duration_seconds",
                "rustresort_db_sync_last_success_unix_seconds", "rustresort_db_sync_backend_last_success_unix_seconds"))
            report("metrics_have_help_and_type", helps)
            report("last_success_gauge_set", (metric(text, "rustresort_db_sync_last_success_unix_seconds") or 0) > 1e9)

            # cycles never overlap: wrangler starts and ends alternate in the call log
            seq = open(os.path.join(tmp, "calls")).read().split()
            overlap = any(seq[i] == seq[i + 1] == "start" for i in range(len(seq) - 1))
            report("cycles_never_overlap", not overlap and len(seq) >= 2, str(seq))

            # SIGHUP with a broken config keeps the old one
            open(cfg, "w").write(body.replace('mode = "d1"', 'mode = "d2"'))
            d.send_signal(signal.SIGHUP)
            time.sleep(2.5)
            alive = d.poll() is None
            code, _ = get(base + "/healthz")
            report("sighup_broken_config_keeps_old", alive and code == 200 and
                   "keeping the old configuration" in open(log.name).read(), "alive=%s code=%s" % (alive, code))
            open(cfg, "w").write(body)

            # SIGTERM during a cycle: exit 0, snapshot intact
            c = sqlite3.connect(db)
            c.execute("INSERT INTO t(v) VALUES ('last')")
            c.commit()
            c.close()
            wait_for(lambda: open(os.path.join(tmp, "calls")).read().split()[-1:] == ["start"], 10)
            d.send_signal(signal.SIGTERM)
            rc = d.wait(timeout=60)
            snap = db + ".d1-sync-snapshot.db"
            integ = sqlite3.connect(snap).execute("PRAGMA integrity_check").fetchone()[0]
            report("sigterm_exits_cleanly_snapshot_intact", rc == 0 and integ == "ok", "rc=%s integrity=%s" % (rc, integ))
        finally:
            if d.poll() is None:
                d.kill()
                d.wait()
        # SIGHUP when neither the new nor the old configuration can be taken up again (the
        # database went away while the lock was released to reload): the daemon has lost its
        # lock and can run no cycle, so it must exit non-zero (systemd's Restart=on-failure
        # then restarts it) and log why, naming the database.
        hup_log = open(os.path.join(tmp, "hup.log"), "w+")
        d = subprocess.Popen([RS, "-c", cfg, "run"], stdout=hup_log, stderr=subprocess.STDOUT)
        lockf = db + ".resort-sync.lock"
        held = wait_for(lambda: os.path.exists(lockf) and open(lockf).read().strip() == str(d.pid), 30)
        held = held and wait_for(lambda: "start-up" in open(hup_log.name).read(), 30)
        os.rename(db, db + ".away")
        d.send_signal(signal.SIGHUP)
        try:
            rc = d.wait(30)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait()
            rc = "still running"
        os.rename(db + ".away", db)
        out = open(hup_log.name).read()
        report("reload_losing_the_lock_exits_nonzero_saying_why",
               held and rc not in (0, "still running") and "level=error" in out
               and "cannot be taken up again; stopping" in out and db in out,
               "held=%s rc=%s %s" % (held, rc, out[-600:]))

        # mode none: run exits 0 at once
        open(cfg, "w").write(body.replace('mode = "d1"', 'mode = "none"'))
        p = subprocess.run([RS, "-c", cfg, "run"], capture_output=True, text=True, timeout=20)
        report("mode_none_exits_zero", p.returncode == 0 and "disabled" in p.stderr, p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
