"""End-to-end: the Turso auth token is used and never shown.

The token is a random string; every check searches for its bytes.

  - A sync against `tursodb --sync-server` with the token in a 0600 config
    file, at debug verbosity: it succeeds, and the token is in no output and
    in no file resort-sync wrote (replica, state, overlay, status, lock).
  - A server that sees the Authorization header and echoes it in a 500 and
    a 401 body (a broken proxy does that): the sync fails, the header
    reached the server as `Bearer <token>`, and the error printed and the
    status file show `<redacted>` in its place.
  - `check`, `status`, `verify` at debug verbosity: no token.
  - A daemon (`run`) given the token in TURSO_AUTH_TOKEN: the token is not
    in its command line, its core file size limit is 0, and the server
    received the token.
  - The token given with `-o` gets a warning that the command line is
    public; a config file with a token readable by others gets a warning
    naming the file; a 0600 one none.
"""
import http.server
import os
import secrets
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("ROOT", os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)
import e2e  # noqa: E402
from e2e import report  # noqa: E402
import turso_sync as ts  # noqa: E402  (Server, RS, TURSODB)

TOKEN = "rs-tok-" + secrets.token_hex(16)


class Echo(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Answers every request with `status` and a body that repeats its Authorization header."""
    daemon_threads = True

    def __init__(self, status, delay=0.0):
        self.status, self.seen = status, []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(h):
                n = int(h.headers.get("content-length") or 0)
                h.rfile.read(n)
                auth = h.headers.get("authorization", "")
                self.seen.append(auth)
                time.sleep(delay)  # (a slow answer keeps the daemon in its cycle meanwhile)
                body = ("upstream refused: authorization=%s" % auth).encode()
                h.send_response(self.status)
                h.send_header("content-type", "text/plain")
                h.send_header("content-length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)

            do_GET = do_POST

            def log_message(h, *a):
                pass

        super().__init__(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


def write_cfg(d, url, token=True, mode=0o600):
    cfg = os.path.join(d, "app.toml")
    with open(cfg, "w") as f:
        f.write('[database]\npath = "%s"\n[database.sync]\nmode = "turso"\ninterval_seconds = 1\n'
                '[database.sync.turso]\nremote_url = "%s"\n%s'
                % (os.path.join(d, "app.db"), url, 'auth_token = "%s"\n' % TOKEN if token else ""))
    os.chmod(cfg, mode)
    return cfg


def rs(cfg, *args, env=None, pre=()):
    e = dict(os.environ)
    e.pop("TURSO_AUTH_TOKEN", None)
    e.update(env or {})
    p = subprocess.run([ts.RS, "-vv", "-c", cfg] + list(pre) + list(args), capture_output=True, text=True,
                       env=e, timeout=60)
    return p.returncode, p.stdout + p.stderr


def files_with_token(d, skip):
    hits = []
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if path in skip or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            if TOKEN.encode() in f.read():
                hits.append(name)
    return hits


def make_db(d):
    import sqlite3
    c = sqlite3.connect(os.path.join(d, "app.db"))
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    c.execute("INSERT INTO t VALUES(1, ?)", ("not the token",))
    c.commit()
    c.close()


def real_server(d):
    srv = ts.Server(d)
    try:
        make_db(d)
        cfg = write_cfg(d, srv.url)
        rc, out = rs(cfg, "sync")
        report("sync_with_token_succeeds", rc == 0 and srv.rows("t"), out[-400:])
        report("token_not_in_sync_output", TOKEN not in out, out[-400:])
        outs = [rs(cfg, c)[1] for c in ("check", "status", "verify")]
        report("token_not_in_check_status_verify_output", all(TOKEN not in o for o in outs)
               and "<redacted>" in outs[0], outs[0][-400:])
        hits = files_with_token(d, {cfg, os.path.join(d, "server.log")} |
                                {os.path.join(d, "server.db" + s) for s in ("", "-wal", "-shm")})
        report("token_in_no_file_resort_sync_wrote", not hits, "token found in %s" % hits)
        overlay = [n for n in os.listdir(d) if n.endswith("-sync.json")]
        report("push_overlay_is_private", overlay and all(
            os.stat(os.path.join(d, n)).st_mode & 0o077 == 0 for n in overlay), "%s" % overlay)
    finally:
        srv.stop()


def echoing_server(d):
    for status in (500, 401):
        srv = Echo(status)
        sub = os.path.join(d, "echo%d" % status)
        os.mkdir(sub)
        make_db(sub)
        cfg = write_cfg(sub, srv.url)
        rc, out = rs(cfg, "sync")
        status_files = [os.path.join(sub, n) for n in os.listdir(sub) if n.endswith("status.json")]
        stext = "".join(open(p).read() for p in status_files)
        srv.shutdown()
        srv.server_close()
        report("echoed_token_redacted_http_%d" % status,
               rc == 1 and "Bearer " + TOKEN in srv.seen and TOKEN not in out and TOKEN not in stext
               and "<redacted>" in out,
               "rc %d, server saw %d requests%s; %s" % (rc, len(srv.seen), "" if srv.seen else "",
                                                       out[-500:].replace(TOKEN, "TOKEN")))


def daemon(d):
    srv = Echo(500, delay=1.0)
    make_db(d)
    cfg = write_cfg(d, srv.url, token=False)
    e = dict(os.environ)
    e["TURSO_AUTH_TOKEN"] = TOKEN
    log = open(os.path.join(d, "run.log"), "w")
    p = subprocess.Popen([ts.RS, "-c", cfg, "run"], env=e, stdout=log, stderr=log)
    try:
        end = time.time() + 15
        while time.time() < end and not srv.seen and p.poll() is None:
            time.sleep(0.1)
        cmdline = open("/proc/%d/cmdline" % p.pid, "rb").read() if p.poll() is None else b""
        limits = open("/proc/%d/limits" % p.pid).read() if p.poll() is None else ""
        core = [ln.split()[4:6] for ln in limits.splitlines() if ln.startswith("Max core file size")]
        report("daemon_token_from_environment_reaches_server", "Bearer " + TOKEN in srv.seen,
               "server saw %r" % [s.replace(TOKEN, "TOKEN") for s in srv.seen[:2]])
        report("daemon_token_not_on_command_line_no_core_file",
               cmdline and TOKEN.encode() not in cmdline and core == [["0", "0"]],
               "cmdline %r core limit %r" % (cmdline.replace(TOKEN.encode(), b"TOKEN"), core))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
        srv.shutdown()
        srv.server_close()
    out = open(os.path.join(d, "run.log")).read()
    report("daemon_log_has_no_token", TOKEN not in out and "<redacted>" in out, out[-300:].replace(TOKEN, "TOKEN"))


def warnings(d):
    make_db(d)
    cfg = write_cfg(d, "http://127.0.0.1:9", mode=0o644)
    rc, out = rs(cfg, "check")
    report("readable_config_with_token_warned", "readable by group or others" in out and cfg in out, out[-400:])
    os.chmod(cfg, 0o600)
    rc, out = rs(cfg, "check")
    report("private_config_not_warned", "readable by group or others" not in out, out[-400:])
    cfg2 = write_cfg(d, "http://127.0.0.1:9", token=False)
    rc, out = rs(cfg2, "check", pre=["-o", "database.sync.turso.auth_token=" + TOKEN])
    report("token_on_command_line_warned", "visible to every user" in out and TOKEN not in out,
           out[-400:].replace(TOKEN, "TOKEN"))


def main():
    if not os.path.exists(ts.TURSODB):
        print("SKIP turso_secrets: tursodb missing (run scripts/deps.sh)")
        return 0
    for fn in (real_server, echoing_server, daemon, warnings):
        d = tempfile.mkdtemp(prefix="rs-secret-")
        try:
            fn(d)
        except Exception as ex:  # a broken case is a failure, not a crash of the suite
            report(fn.__name__, False, "exception %r" % (ex,))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return 1 if e2e.failed else 0


if __name__ == "__main__":
    sys.exit(main())
