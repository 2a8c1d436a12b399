// turso_adversarial.js: the official client (@tursodatabase/sync) as a peer
// for tests/e2e/turso_adversarial.py, with each sync step separate so two
// clients can write concurrently (each writes before seeing the other's push).
//
//   node turso_adversarial.js pull URL PATH             pull
//   node turso_adversarial.js write URL PATH SQL [..]   run statements locally (no pull, no push)
//   node turso_adversarial.js push URL PATH             push
//   node turso_adversarial.js dump URL PATH TABLE       print the table (no pull) as JSON lines,
//                                                       columns in name order
//
// The first call on a PATH bootstraps it from the server.
const path = require('path');
const { pathToFileURL } = require('url');

(async () => {
  const [mode, url, dbPath, ...rest] = process.argv.slice(2);
  const root = process.env.ROOT || path.resolve(__dirname, '../..');
  const mod = path.join(root, 'tools/node_modules/@tursodatabase/sync/dist/promise.js');
  const { connect } = await import(pathToFileURL(mod).href);
  const db = await connect({ path: dbPath, url, clientName: 'rs-adversarial' });
  if (mode === 'pull') {
    await db.pull();
  } else if (mode === 'write') {
    for (const sql of rest) await db.exec(sql);
  } else if (mode === 'push') {
    await db.push();
  } else if (mode === 'dump') {
    const t = rest[0].replace(/"/g, '""');
    const info = await db.prepare(`SELECT name FROM pragma_table_info('${rest[0].replace(/'/g, "''")}') ORDER BY cid`);
    const cols = (await info.all()).map((r) => r.name).sort();
    const sel = cols.map((c) => `quote("${c.replace(/"/g, '""')}")`).join(', ');
    const stmt = await db.prepare(`SELECT ${sel} FROM "${t}"`);
    for (const row of await stmt.all()) console.log(JSON.stringify(Object.values(row)));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  await db.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
