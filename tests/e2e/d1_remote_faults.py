"""End-to-end: the remote misbehaves, through a scripted stand-in for wrangler.

tests/fixtures/d1/fake_wrangler.py applies files to a SQLite "D1" the way
D1 does and misbehaves on request.  For each misbehaviour, a cycle whose
payload D1 must not run twice (an added column, FTS 'delete' commands)
meets it, the source is written again, and the remote behaves again:
  - the failed cycle exits 1 with a message that says what happened
    (wrangler's own SQL error, "exited with status 1 and no message",
    "output is not a JSON array", "timed out after 1 s", "killed by signal
    9", "cannot run wrangler"), and leaves the snapshot as it was;
  - a hang is stopped at the configured timeout and no process of it is
    left running;
  - the next cycle converges: D1 equal to the source, the snapshot equal
    to the source, and no payload ever rejected by D1, which is what
    happens when a change D1 already has is sent again in a new payload
    (the remote applied the file but its answer was lost, garbled or late:
    D1's history is asked for the payload's key, and the file is not sent
    again when D1 has it); after a refusal (an SQL error), the next cycle is
    a full load.
Also: timeout_seconds = 0 is refused by the config.
"""
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "d1"))
import faults  # noqa: E402
from faults import gen  # noqa: E402

SEED = int(os.environ.get("RS_SEED", random.randrange(1 << 30)))
report = faults.Reporter(SEED)

# mode, text the error must contain, did D1 apply the file, does D1's history hold it afterwards
# The timeout of the cases that hang, and of every other call: long enough
# for the stand-in to start on a machine running other tests beside this one.
HANG = 4
SLOW = 60

CASES = [
    ("sqlerror", "wrangler d1 execute testdb: no such table: nope: SQLITE_ERROR", False, False),
    ("exit1", "wrangler d1 execute testdb: exited with status 1 and no message", False, False),
    ("garbage", "wrangler d1 execute testdb: output is not a JSON array: \"Segmentation fault", False, False),
    ("hang", "wrangler d1 execute testdb: timed out after %d s" % HANG, False, False),
    ("kill", "wrangler d1 execute testdb: killed by signal 9", False, False),
    ("apply-exit1", "wrangler d1 execute testdb: exited with status 1 and no message", True, True),
    ("apply-garbage", "output is not a JSON array: \"Segmentation fault (core dumped)", True, True),
    ("apply-hang", "wrangler d1 execute testdb: timed out after %d s" % HANG, True, True),
]


def main():
    tmp = faults.new_tmp("rs-d1-remote-")
    try:
        env = faults.Env(tmp, remote="fake", timeout=SLOW)
        g = gen.Gen(random.Random(SEED))
        if not env.first_sync(g, report):
            return 1
        for mode, text, applied, dup in CASES:
            name = mode.replace("-", "_")
            env.mutate(g)
            before = env.snapshot_digest()
            n0 = len(env.calls())
            env.script(mode)
            env.write_config(timeout=HANG if "hang" in mode else SLOW)
            p = env.sync()
            env.write_config(timeout=SLOW)
            calls = env.calls()[n0:]
            report(name + "_fails_with_a_clear_message", p.returncode == 1 and text in p.stderr,
                   "rc=%d stderr=%r" % (p.returncode, p.stderr[-400:]))
            report(name + "_snapshot_unchanged", env.snapshot_digest() == before, "the snapshot moved")
            report(name + "_d1_as_scripted", len(calls) == 1 and (calls[0]["outcome"] == "applied") == applied,
                   calls)
            if mode in ("hang", "apply-hang"):
                left = faults.our_processes(env.proj)  # its arguments name the project's wrangler.toml
                faults.kill_tree_of(env.proj)
                report(name + "_nothing_left_running", not left, "pids %s" % left)
            env.mutate(g)
            n1 = len(env.calls())
            p = env.sync()
            calls = env.calls()[n1:]
            d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
            report(name + "_then_converges", p.returncode == 0 and not d1, d1[:5])
            snap = env.snapshot_differences()
            report(name + "_then_snapshot_equals_source", not snap, snap[:5])
            outcomes = [c["outcome"] for c in calls]
            # A payload D1 may have is looked up in D1's history first: one D1 has is not sent again.
            want = ([] if dup else ["applied"] if mode in ("exit1", "garbage", "hang", "kill") else [])
            report(name + "_then_sent_once_more_as_needed", outcomes == want + ["applied"], outcomes)
            report(name + "_nothing_left_behind", not env.leftovers(), env.leftovers())

        # wrangler that cannot be run: a clear error, then a clean retry once it is there.
        env.mutate(g)
        env.write_config(timeout=SLOW, wrangler=os.path.join(tmp, "no-such-wrangler"))
        p = env.sync()
        report("missing_wrangler_fails_clearly", p.returncode == 1 and "cannot run wrangler '%s': No such file or "
               "directory" % os.path.join(tmp, "no-such-wrangler") in p.stderr, p.stderr[-300:])
        env.write_config(timeout=SLOW)
        p = env.sync()
        d1 = env.d1_differences() if p.returncode == 0 else [p.stderr[-500:]]
        report("missing_wrangler_then_converges", p.returncode == 0 and not d1, d1[:5])

        rejected = [c for c in env.calls() if c["outcome"] == "rejected"]
        report("d1_never_rejected_a_payload", not rejected, rejected)
        report("payload_files_private", all(c["perm"] == "600" for c in env.calls()),
               sorted({c["perm"] for c in env.calls()}))

        # The timeout is bounded below: 0 would mean none.
        r = subprocess.run([faults.RS, "-c", env.cfg, "-o", "database.sync.d1.timeout_seconds=0", "check"],
                           capture_output=True, text=True)
        report("timeout_zero_refused", r.returncode == 2 and "timeout_seconds" in r.stderr, r.stderr[-300:])
    finally:
        faults.kill_tree_of(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
