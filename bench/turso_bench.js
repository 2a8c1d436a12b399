// turso_bench.js: the official client's side of bench/turso_bench.py.
//
//   node turso_bench.js push URL PATH N   bootstrap, insert or update N rows locally, time push()
//   node turso_bench.js pull URL PATH     time the bootstrap pull of a fresh client
//   node turso_bench.js edits URL DIR     on a server holding table k (TEXT key): bootstrap client A
//                                         and client B, then in A update every 5th row and push, B
//                                         pulls, A deletes another 5th and pushes, B pulls, B pulls
//                                         again with nothing new
//
// push and pull print one JSON line: {"seconds": <the operation alone>, "rows": <rows in t>};
// edits prints {"bootstrap", "update_push", "update_pull", "delete_push", "delete_pull", "idle_pull": seconds of
// each operation alone, "updated", "deleted": rows changed, "rows_a", "rows_b": rows in k at the end, "updated_b": updated rows B holds}.
const path = require('path');
const { pathToFileURL } = require('url');

(async () => {
  const [mode, url, dbPath, n] = process.argv.slice(2);
  const root = process.env.ROOT || path.resolve(__dirname, '..');
  const mod = path.join(root, 'tools/node_modules/@tursodatabase/sync/dist/promise.js');
  const { connect } = await import(pathToFileURL(mod).href);
  if (mode === 'edits') {
    await edits(connect, url, dbPath);
    return;
  }
  const t0 = process.hrtime.bigint();
  const db = await connect({ path: dbPath, url, clientName: 'rs-bench' });
  let seconds;
  if (mode === 'push') {
    await db.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT, v REAL, b BLOB)');
    await db.exec('BEGIN');
    const ins = await db.prepare('INSERT OR REPLACE INTO t VALUES (?, ?, ?, ?)');
    for (let i = 1; i <= Number(n); i++) await ins.run([i, `official row ${i}`, i / 7, Buffer.from([i & 255, 1, 2])]);
    await db.exec('COMMIT');
    const p0 = process.hrtime.bigint();
    await db.push();
    seconds = Number(process.hrtime.bigint() - p0) / 1e9;
  } else {
    seconds = Number(process.hrtime.bigint() - t0) / 1e9; // connect() bootstraps
  }
  const cnt = await (await db.prepare('SELECT count(*) AS c FROM t')).get();
  console.log(JSON.stringify({ seconds, rows: cnt ? cnt.c : 0 }));
  await db.close();
})().catch(fail);

const secs = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

async function count(db, sql) {
  return (await (await db.prepare(sql)).get()).c;
}

async function edits(connect, url, dir) {
  const out = {};
  let t0 = process.hrtime.bigint();
  const a = await connect({ path: path.join(dir, 'js-a.db'), url, clientName: 'rs-bench-a' });
  out.bootstrap = secs(t0);
  const b = await connect({ path: path.join(dir, 'js-b.db'), url, clientName: 'rs-bench-b' });
  out.updated = await count(a, 'SELECT count(*) AS c FROM k WHERE rowid % 5 = 0');
  await a.exec("UPDATE k SET name = name || ' updated', n = n + 1 WHERE rowid % 5 = 0");
  t0 = process.hrtime.bigint();
  await a.push();
  out.update_push = secs(t0);
  t0 = process.hrtime.bigint();
  await b.pull();
  out.update_pull = secs(t0);
  out.deleted = await count(a, 'SELECT count(*) AS c FROM k WHERE rowid % 5 = 1');
  await a.exec('DELETE FROM k WHERE rowid % 5 = 1');
  t0 = process.hrtime.bigint();
  await a.push();
  out.delete_push = secs(t0);
  t0 = process.hrtime.bigint();
  await b.pull();
  out.delete_pull = secs(t0);
  t0 = process.hrtime.bigint();
  await b.pull();
  out.idle_pull = secs(t0);
  out.rows_a = await count(a, 'SELECT count(*) AS c FROM k');
  out.rows_b = await count(b, 'SELECT count(*) AS c FROM k');
  out.updated_b = await count(b, "SELECT count(*) AS c FROM k WHERE name LIKE '% updated'");
  console.log(JSON.stringify(out));
  await a.close();
  await b.close();
}

function fail(e) {
  console.error(e);
  process.exit(1);
}
