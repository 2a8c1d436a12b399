// turso_official.js: the official client (@tursodatabase/sync) as a peer for
// tests/e2e/turso_sync.py.
//
//   node turso_official.js dump URL PATH TABLE       pull, print the table as JSON lines
//   node turso_official.js exec URL PATH SQL [SQL..] pull, run each statement, push
//
// Rows print as [rowid, [type, value]...] with blobs in hex, so the test can
// compare them with its own view of SQLite values.
const path = require('path');
const { pathToFileURL } = require('url');

(async () => {
  const [mode, url, dbPath, ...rest] = process.argv.slice(2);
  const root = process.env.ROOT || path.resolve(__dirname, '../..');
  const mod = path.join(root, 'tools/node_modules/@tursodatabase/sync/dist/promise.js');
  const { connect } = await import(pathToFileURL(mod).href);
  const db = await connect({ path: dbPath, url, clientName: 'rs-official' });
  await db.pull();
  if (mode === 'dump') {
    const t = rest[0].replace(/"/g, '""');
    const info = await db.prepare(`SELECT name FROM pragma_table_info('${rest[0].replace(/'/g, "''")}') ORDER BY cid`);
    const cols = (await info.all()).map((r) => r.name);
    const sel = cols.map((c) => `typeof("${c.replace(/"/g, '""')}"), quote("${c.replace(/"/g, '""')}")`).join(', ');
    const stmt = await db.prepare(`SELECT rowid AS r, ${sel} FROM "${t}" ORDER BY rowid`);
    for (const row of await stmt.all()) console.log(JSON.stringify(Object.values(row)));
  } else if (mode === 'exec') {
    for (const sql of rest) await db.exec(sql);
    await db.push();
    console.log('pushed');
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  await db.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
