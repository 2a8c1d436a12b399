"""Helpers every end-to-end test script shares: the PASS/FAIL lines that
tests/run.sh counts, and a free loopback port."""
import socket
import sys

failed = 0  # FAIL lines printed so far (a script exits 1 when it is not 0)


def report(name, ok, why=""):
    global failed
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)))
    failed += 0 if ok else 1
    sys.stdout.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
