// PouchDB replicating through settee, as an offline-first app would: the Python test
// (tests/test_real_clients.py) runs this with node and checks what it prints against what the
// backend itself holds.
//
//   node replicate.mjs oneshot REMOTE_DB_URL
//   node replicate.mjs live REMOTE_DB_URL BACKEND_DB_URL
//
// REMOTE_DB_URL is a database through settee, BACKEND_DB_URL the same database on the backend
// itself; credentials, if any, are in the URLs. Both databases exist and are empty. Prints one
// JSON object on stdout: the replications' results and the state of each local database
// (`state` below), which the test compares with the backend's.
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import PouchDB from "pouchdb";
import memory from "pouchdb-adapter-memory";

PouchDB.plugin(memory);

const DEADLINE_MS = 60_000; // for any one wait below; the Python test bounds the whole run too

const [mode, remoteUrl, backendUrl] = process.argv.slice(2);

function local(name) {
  return new PouchDB(`${name}-${randomBytes(6).toString("hex")}`, { adapter: "memory" });
}

function remote(url) {
  return new PouchDB(url, { skip_setup: true });
}

function attachment(contentType, bytes) {
  return { content_type: contentType, data: Buffer.from(bytes).toString("base64") };
}

// Every byte value, then incompressible noise: 200 KiB that no layer may alter.
const BINARY = Buffer.concat([Buffer.from([...Array(256).keys()]), randomBytes(200 * 1024)]);
const TEXT = Buffer.from("liner notes: ünïcødé ✓\r\nsecond line\n");

// Ids a URL must escape: each is one path segment once encoded.
const AWKWARD_IDS = ["a/b", "space id", "plus+sign", "question?mark", "hash#tag", "ünïcødé ✓"];

// Revisions written as a replicator would (new_edits: false), with their histories: the
// branches below make conflicts, a deleted conflict, and branches that hold attachments.
function branch(id, revs, fields = {}) {
  const [latest] = revs;
  const start = Number(latest.split("-")[0]);
  const ids = revs.map((rev) => rev.split("-")[1]);
  return { _id: id, _rev: latest, _revisions: { start, ids }, ...fields };
}
const h = (c) => c.repeat(32); // a 32-character revision hash
const CONFLICTED = [
  branch("conflicted", [`1-${h("a")}`], { side: "root" }),
  branch("conflicted", [`2-${h("b")}`, `1-${h("a")}`], { side: "b" }),
  branch("conflicted", [`3-${h("d")}`, `2-${h("c")}`, `1-${h("a")}`], { side: "d" }),
  branch("conflicted", [`3-${h("f")}`, `2-${h("e")}`, `1-${h("a")}`], { _deleted: true }),
  branch("conflicted-atts", [`1-${h("1")}`], {
    _attachments: { "left.bin": attachment("application/octet-stream", randomBytes(5000)) },
  }),
  branch("conflicted-atts", [`1-${h("2")}`], {
    _attachments: { "right.txt": attachment("text/plain", TEXT) },
  }),
];

// A local database holding every kind of thing replication must carry.
async function fill(db) {
  const docs = [];
  for (let i = 0; i < 20; i++) {
    docs.push({ _id: `plain-${String(i).padStart(2, "0")}`, n: i, text: `ünïcødé ✓ ${i}` });
  }
  for (const id of AWKWARD_IDS) docs.push({ _id: id, awkward: true });
  docs.push({
    _id: "_design/app",
    views: { by_n: { map: "function (doc) { if (doc.n !== undefined) emit(doc.n); }" } },
  });
  docs.push({ _id: "nested", value: { list: [1, 2.5, null, true, "x"], empty: {}, deep: [[[]]] } });
  for (const result of await db.bulkDocs(docs)) if (!result.ok) throw new Error(JSON.stringify(result));

  let { rev } = await db.put({
    _id: "with-attachments",
    _attachments: {
      "bytes.bin": { content_type: "application/octet-stream", data: BINARY },
      "notes.txt": { content_type: "text/plain", data: TEXT },
    },
  });
  ({ rev } = await db.putAttachment("with-attachments", "later.bin", rev, randomBytes(1000), "application/x-later"));
  ({ rev } = await db.removeAttachment("with-attachments", "notes.txt", rev));

  let updated = await db.put({ _id: "updated", version: 1 });
  for (let version = 2; version <= 4; version++) {
    updated = await db.put({ _id: "updated", _rev: updated.rev, version });
  }
  for (let i = 0; i < 5; i++) {
    const doc = await db.put({ _id: `deleted-${i}`, doomed: true });
    await db.remove(`deleted-${i}`, doc.rev);
  }
  const withAtts = await db.put({
    _id: "deleted-with-attachment",
    _attachments: { "gone.bin": { content_type: "application/octet-stream", data: randomBytes(100) } },
  });
  await db.remove("deleted-with-attachment", withAtts.rev);

  const conflicts = await db.bulkDocs(CONFLICTED, { new_edits: false });
  if (conflicts.some((result) => result.error)) throw new Error(JSON.stringify(conflicts));
  await db.put({ _id: "_local/not-replicated", here: true });
}

// What a database holds: per document id, its winning revision (with its _conflicts) and
// every leaf revision with its history and attachments' bytes. Deleted documents included.
async function state(db) {
  const changes = await db.changes({ style: "all_docs", include_docs: true, conflicts: true });
  const docs = {};
  for (const row of changes.results) {
    const leaves = await db.get(row.id, { open_revs: "all", revs: true, attachments: true });
    docs[row.id] = { winner: row.doc, leaves };
  }
  return docs;
}

async function replicate(from, to) {
  const result = await PouchDB.replicate(from, to);
  const { ok, status, docs_read, docs_written, doc_write_failures, errors } = result;
  return { ok, status, docs_read, docs_written, doc_write_failures, errors };
}

async function oneshot() {
  const source = local("source");
  await fill(source);
  const settee = remote(remoteUrl);
  const push = await replicate(source, settee);
  // An incremental push: only what changed since the checkpoint (a _local doc on settee).
  await source.put({ _id: "after-first-push", late: true });
  const update = await source.get("plain-00");
  await source.put({ ...update, n: 100 });
  const again = await replicate(source, settee);
  const target = local("target");
  const pull = await replicate(settee, target);
  return { push, again, pull, source: await state(source), target: await state(target) };
}

// Wait for two databases to agree, and `condition` to hold; say how they differ if they never do.
async function waitFor(what, a, b, condition) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const [here, there] = [await winners(a), await winners(b)];
    if (JSON.stringify(sortKeys(here)) === JSON.stringify(sortKeys(there)) && (await condition(here))) {
      return;
    }
    if (Date.now() > deadline) {
      const differ = [...new Set([...Object.keys(here), ...Object.keys(there)])]
        .filter((id) => here[id] !== there[id])
        .map((id) => `${id}: ${here[id]} | ${there[id]}`);
      throw new Error(`timed out waiting for ${what}; differing: ${differ.join("; ") || "none"}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// The winning rev (or "deleted") of each document: what two converged databases agree on.
async function winners(db) {
  const changes = await db.changes({ style: "all_docs", include_docs: true });
  return Object.fromEntries(
    changes.results.map((row) => [row.id, `${row.doc._rev}${row.doc._deleted ? " deleted" : ""}`]),
  );
}

function sortKeys(object) {
  return Object.fromEntries(Object.entries(object).sort(([x], [y]) => (x < y ? -1 : 1)));
}

async function live() {
  const app = local("live");
  const settee = remote(remoteUrl);
  const backend = remote(backendUrl); // the backend itself: a write settee's feed must notice
  const events = { push: 0, pull: 0, errors: [], denied: [] };
  const sync = app.sync(settee, { live: true, retry: false, heartbeat: 5000 });
  sync.on("change", (info) => {
    events[info.direction] += info.change.docs_written;
  });
  sync.on("error", (error) => events.errors.push(String(error)));
  sync.on("denied", (error) => events.denied.push(String(error)));
  const ended = new Promise((resolve) => sync.on("complete", resolve));
  const readyToWatch = new Promise((resolve) => sync.on("paused", resolve));
  await readyToWatch;

  // Round 1: new documents on each side, written at once.
  const written = [];
  for (let i = 0; i < 10; i++) written.push(app.put({ _id: `app-${i}`, from: "app", i }));
  for (let i = 0; i < 10; i++) written.push(settee.put({ _id: `settee-${i}`, from: "settee", i }));
  for (let i = 0; i < 5; i++) written.push(backend.put({ _id: `backend-${i}`, from: "backend", i }));
  written.push(app.put({
    _id: "app-attachment",
    _attachments: { "bytes.bin": { content_type: "application/octet-stream", data: BINARY } },
  }));
  await Promise.all(written);
  await waitFor("round 1 to arrive on both sides", app, backend, (here) => Object.keys(here).length === 26);

  // Round 2: each side changes what the other wrote, and a conflict appears on the backend.
  for (const id of ["settee-0", "backend-0"]) await app.remove(await app.get(id));
  for (const id of ["app-0", "app-1"]) {
    const doc = await settee.get(id);
    await settee.put({ ...doc, edited: "through settee" });
  }
  const conflicting = branch("settee-5", [`2-${h("e")}`, `1-${h("f")}`], { from: "a conflict" });
  await backend.bulkDocs([conflicting], { new_edits: false });
  await app.putAttachment("app-2", "late.bin", (await app.get("app-2"))._rev, randomBytes(3000), "application/octet-stream");
  await waitFor("round 2 to arrive on both sides", app, backend, async (here) => {
    const doc = await app.get("settee-5", { conflicts: true });
    return here["settee-0"]?.endsWith("deleted") && here["app-0"]?.startsWith("2-")
      && (doc._conflicts || []).length === 1;
  });

  sync.cancel();
  await ended;
  return { events, app: await state(app) };
}

const watchdog = setTimeout(() => {
  console.error(`replicate.mjs ${mode}: no result after ${3 * DEADLINE_MS} ms`);
  process.exit(3);
}, 3 * DEADLINE_MS);

try {
  const result = mode === "live" ? await live() : await oneshot();
  process.stdout.write(JSON.stringify(result));
  clearTimeout(watchdog);
} catch (error) {
  console.error(error);
  process.exit(1);
}
