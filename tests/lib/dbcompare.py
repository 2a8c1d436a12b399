"""dbcompare: are two SQLite databases equal, as resort-sync promises?

Equal means: the same tables (shadow tables of virtual tables and sqlite_*
internals aside), each with the same rows, where a row is its rowid (for
rowid tables) plus every stored column's value with its type and exact
bits; the same sqlite_sequence; the same set of indexes, views and
triggers (by type, name and SQL text); FTS tables answering the same MATCH
queries.  Returns a list of differences (empty when equal).

Used by the end-to-end and property tests; runnable as
    python3 tests/lib/dbcompare.py A.db B.db
"""
import sqlite3
import struct
import sys


def _connect(path):
    if isinstance(path, sqlite3.Connection):
        return path
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True)


def _typed(v):
    if isinstance(v, float):
        return ("real", struct.pack("<d", v))
    if isinstance(v, int):
        return ("integer", v)
    if isinstance(v, bytes):
        return ("blob", v)
    if v is None:
        return ("null",)
    return ("text", v)


def _tables(c):
    out = {}
    for schema, name, typ, ncol, wr, strict in c.execute("PRAGMA main.table_list"):
        if schema != "main" or typ in ("shadow", "view") or name.lower().startswith("sqlite_"):
            continue
        out[name] = (typ, wr)
    return out


def _stored_cols(c, t):
    return [r[1] for r in c.execute("PRAGMA main.table_xinfo(%s)" % _q(t)) if r[6] == 0]


def _q(name):
    return '"' + name.replace('"', '""') + '"'


def _rows(c, t, kind, wr):
    cols = _stored_cols(c, t)
    sel = ", ".join("CAST(%s AS BLOB), typeof(%s), %s" % (_q(x), _q(x), _q(x)) for x in cols)
    if wr:
        q = "SELECT %s FROM %s" % (sel, _q(t))
    else:
        q = "SELECT rowid, %s FROM %s" % (sel, _q(t))
    c.text_factory = bytes
    rows = []
    for r in c.execute(q):
        r = list(r)
        key = [] if wr else [r.pop(0)]
        vals = []
        for i in range(0, len(r), 3):
            raw, typ, v = r[i], r[i + 1], r[i + 2]
            if typ == b"text":
                vals.append(("text", raw))  # bytes, exactly
            else:
                vals.append(_typed(v))
        rows.append(tuple(key) + tuple(vals))
    c.text_factory = str
    rows.sort(key=repr)
    return cols, rows


def _ddl(sql):
    """DDL without `--` comments (wrangler strips them from what it sends to D1)."""
    if sql is None:
        return None
    out, i, n = [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = sql.find(close, i + 1)
            while close != "]" and j >= 0 and j + 1 < n and sql[j + 1] == close:
                j = sql.find(close, j + 2)
            j = n - 1 if j < 0 else j
            out.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _objects(c):
    return sorted(
        (t, n, _ddl(s))
        for t, n, s in c.execute(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND type IN ('index','view','trigger')"
        )
        if not n.lower().startswith("sqlite_")
    )


def _sequence(c):
    try:
        return sorted(c.execute("SELECT name, seq FROM sqlite_sequence"))
    except sqlite3.OperationalError:
        return []


def compare(a, b, ignore=(), fts_queries=()):
    ca, cb = _connect(a), _connect(b)
    diffs = []
    ta = {k: v for k, v in _tables(ca).items() if k not in ignore}
    tb = {k: v for k, v in _tables(cb).items() if k not in ignore}
    if sorted(ta) != sorted(tb):
        diffs.append("tables differ: %s vs %s" % (sorted(ta), sorted(tb)))
    for t in sorted(set(ta) & set(tb)):
        typ, wr = tb[t]
        sql_a = ca.execute("SELECT sql FROM sqlite_schema WHERE name=?", (t,)).fetchone()
        sql_b = cb.execute("SELECT sql FROM sqlite_schema WHERE name=?", (t,)).fetchone()
        sql_a, sql_b = (sql_a and (_ddl(sql_a[0]),)), (sql_b and (_ddl(sql_b[0]),))
        if sql_a != sql_b:
            diffs.append("table %s: definition differs: %r vs %r" % (t, sql_a, sql_b))
            continue
        if typ == "virtual":
            sql = sql_b[0].lower()
            if "content=" in sql.replace(" ", ""):
                continue  # external content: checked through MATCH below
        cols_a, rows_a = _rows(ca, t, typ, wr)
        cols_b, rows_b = _rows(cb, t, typ, wr)
        if cols_a != cols_b:
            diffs.append("table %s: columns differ: %s vs %s" % (t, cols_a, cols_b))
        elif rows_a != rows_b:
            sa, sb = set(rows_a), set(rows_b)
            only_a, only_b = sorted(sa - sb, key=repr)[:3], sorted(sb - sa, key=repr)[:3]
            diffs.append("table %s: rows differ (%d vs %d rows); only in first: %s; only in second: %s"
                         % (t, len(rows_a), len(rows_b), only_a, only_b))
    if _objects(ca) != _objects(cb):
        oa, ob = set(_objects(ca)), set(_objects(cb))
        diffs.append("schema objects differ: only in first %s; only in second %s" % (sorted(oa - ob), sorted(ob - oa)))
    if _sequence(ca) != _sequence(cb):
        diffs.append("sqlite_sequence differs: %s vs %s" % (_sequence(ca), _sequence(cb)))
    for table, query in fts_queries:
        q = "SELECT rowid FROM %s WHERE %s MATCH ? ORDER BY rowid" % (_q(table), _q(table))
        ra, rb = ca.execute(q, (query,)).fetchall(), cb.execute(q, (query,)).fetchall()
        if ra != rb:
            diffs.append("FTS %s MATCH %r: %s vs %s" % (table, query, ra, rb))
    for name, c in (("first", ca), ("second", cb)):
        ok = c.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            diffs.append("%s database integrity_check: %s" % (name, ok))
    return diffs


if __name__ == "__main__":
    d = compare(sys.argv[1], sys.argv[2])
    for line in d:
        print(line)
    sys.exit(1 if d else 0)
