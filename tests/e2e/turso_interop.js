// turso_interop.js: drive the official client (@tursodatabase/sync) for
// tests/e2e/turso_transport.sh.
//
//   node turso_interop.js write URL PATH   bootstrap, insert row 4242, push; prints "pushed"
//   node turso_interop.js read URL PATH    pull, print the row 777 written by our C client
//
// The package lives in tools/node_modules, outside this file's resolution
// path, so it is imported by absolute file URL.
const path = require('path');
const { pathToFileURL } = require('url');

(async () => {
  const [mode, url, dbPath] = process.argv.slice(2);
  const root = process.env.ROOT || path.resolve(__dirname, '../..');
  const mod = path.join(root, 'tools/node_modules/@tursodatabase/sync/dist/promise.js');
  const { connect } = await import(pathToFileURL(mod).href);
  const db = await connect({ path: dbPath, url, clientName: 'rs-interop' });
  if (mode === 'write') {
    await db.pull();
    await db.exec("INSERT INTO t VALUES (4242, 'from-js', x'beef')");
    await db.push();
    console.log('pushed');
  } else if (mode === 'read') {
    await db.pull();
    const stmt = await db.prepare('SELECT name, hex(data) AS h FROM t WHERE id = 777');
    const row = await stmt.get();
    console.log(row ? `${row.name} ${row.h.toLowerCase()}` : 'missing');
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  await db.close();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
