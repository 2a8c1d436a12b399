// turso_bench.js: the official client's side of bench/turso_bench.py.
//
//   node turso_bench.js push URL PATH N   bootstrap, insert or update N rows locally, time push()
//   node turso_bench.js pull URL PATH     time the bootstrap pull of a fresh client
//
// Prints one JSON line: {"seconds": <the operation alone>, "rows": <rows in t>}.
const path = require('path');
const { pathToFileURL } = require('url');

(async () => {
  const [mode, url, dbPath, n] = process.argv.slice(2);
  const root = process.env.ROOT || path.resolve(__dirname, '..');
  const mod = path.join(root, 'tools/node_modules/@tursodatabase/sync/dist/promise.js');
  const { connect } = await import(pathToFileURL(mod).href);
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
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
