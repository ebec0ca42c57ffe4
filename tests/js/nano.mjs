// nano, CouchDB's official Node client, used through settee as an application would: CRUD, a
// view, attachments, bulk and list. The Python test (tests/test_real_clients.py) runs this
// with node and checks what it prints.
//
//   node nano.mjs SERVER_URL DB [SKIP]
//
// SERVER_URL is settee's root URL (credentials, if any, in it); DB exists and is empty. SKIP
// names steps to leave out, separated by commas (a backend may lack what one needs).
// Prints one JSON object: each call's answer (a failed call's statusCode, error and reason),
// with attachments' bytes as base64.
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import Nano from "nano";

const [serverUrl, dbName, skip = ""] = process.argv.slice(2);
const nano = Nano({ url: serverUrl });
const db = nano.use(dbName);

async function failure(promise) {
  try {
    return { unexpected: await promise };
  } catch (error) {
    return { statusCode: error.statusCode, error: error.error, reason: error.reason };
  }
}

const base64 = (bytes) => Buffer.from(bytes).toString("base64");

async function crud() {
  const inserted = await db.insert({ _id: "kind-of-blue", artist: "Miles Davis", year: 1959 });
  const generated = await db.insert({ artist: "nobody in particular" });
  const got = await db.get("kind-of-blue");
  const updated = await db.insert({ ...got, label: "Columbia" });
  return {
    inserted,
    generated,
    generatedDoc: await db.get(generated.id),
    got,
    updated,
    stale: await failure(db.insert({ ...got, label: "stale" })),
    head: (await db.head("kind-of-blue")).etag,
    old: await db.get("kind-of-blue", { rev: inserted.rev }),
    revsInfo: (await db.get("kind-of-blue", { revs_info: true }))._revs_info,
    destroyed: await db.destroy("kind-of-blue", updated.rev),
    afterDestroy: await failure(db.get("kind-of-blue")),
    missing: await failure(db.get("no-such-doc")),
  };
}

const ALBUMS = [
  ["a1", "Kind of Blue", 1959],
  ["a2", "Giant Steps", 1960],
  ["a3", "Mingus Ah Um", 1959],
  ["a4", "A Love Supreme", 1965],
  ["a5", "Head Hunters", 1973],
  ["a6", "Time Out", 1959],
  ["a7", "Maiden Voyage", 1965],
  ["a8", "Bitches Brew", 1970],
].map(([_id, title, year]) => ({ _id, title, year }));

async function views() {
  const design = await db.insert({
    _id: "_design/albums",
    views: {
      by_year: {
        map: "function (doc) { if (doc.year) { emit(doc.year, doc.title); } }",
        reduce: "_count",
      },
    },
  });
  await db.bulk({ docs: ALBUMS });
  const rows = (result) => result.rows.map((row) => [row.key, row.id ?? null, row.value]);
  return {
    design,
    keys: rows(await db.view("albums", "by_year", { keys: [1965, 1959], reduce: false })),
    key: rows(await db.view("albums", "by_year", { key: 1960, reduce: false })),
    range: rows(await db.view("albums", "by_year", { startkey: 1960, limit: 3, reduce: false })),
    descending: rows(
      await db.view("albums", "by_year", { startkey: 1970, endkey: 1959, descending: true, reduce: false, skip: 1 }),
    ),
    grouped: rows(await db.view("albums", "by_year", { group: true })),
    total: rows(await db.view("albums", "by_year")),
    docs: (await db.view("albums", "by_year", { key: 1973, reduce: false, include_docs: true })).rows.map(
      (row) => row.doc.title,
    ),
    missingView: await failure(db.view("albums", "no_such_view")),
  };
}

async function attachments() {
  const bytes = Buffer.concat([Buffer.from([...Array(256).keys()]), randomBytes(100 * 1024)]);
  const text = Buffer.from("sleeve notes ✓\n");
  const first = await db.attachment.insert("cover", "cover.bin", bytes, "application/octet-stream");
  const second = await db.attachment.insert("cover", "notes.txt", text, "text/plain", { rev: first.rev });
  const downloaded = await db.attachment.get("cover", "cover.bin");
  const notes = await db.attachment.get("cover", "notes.txt");
  const doc = await db.get("cover");
  const destroyed = await db.attachment.destroy("cover", "notes.txt", { rev: second.rev });
  return {
    sent: base64(bytes),
    first,
    second,
    downloaded: base64(downloaded),
    notes: base64(notes),
    stubs: doc._attachments,
    destroyed,
    gone: await failure(db.attachment.get("cover", "notes.txt")),
    stale: await failure(db.attachment.insert("cover", "x.bin", bytes, "application/x", { rev: first.rev })),
    withDoc: await db.get("cover", { attachments: true }),
  };
}

async function multipart() {
  const bytes = randomBytes(2000);
  const inserted = await db.multipart.insert(
    { title: "with attachments in one request" },
    [{ name: "a.bin", data: bytes, content_type: "application/octet-stream" }],
    "multipart",
  );
  const read = await db.multipart.get("multipart");
  return { sent: base64(bytes), inserted, read: base64(read) };
}

async function bulk() {
  const created = await db.bulk({ docs: [{ _id: "b1", n: 1 }, { _id: "b2", n: 2 }, { _id: "b3", n: 3 }] });
  const [b1, b2] = created;
  const changed = await db.bulk({
    docs: [
      { _id: "b1", _rev: b1.rev, n: 10 },
      { _id: "b2", _rev: b2.rev, _deleted: true },
      { _id: "b3", _rev: "1-" + "0".repeat(32), n: 30 }, // stale: a conflict for b3 alone
    ],
  });
  const replicated = await db.bulk(
    { docs: [{ _id: "b4", _rev: "7-" + "f".repeat(32), n: 4 }], new_edits: false },
  );
  return {
    created,
    changed,
    replicated,
    fetched: (await db.fetch({ keys: ["b1", "b2", "b4", "b5"] })).rows.map((row) => ({
      key: row.key,
      rev: row.value?.rev ?? null,
      deleted: row.value?.deleted ?? false,
      n: row.doc?.n ?? null,
      error: row.error ?? null,
    })),
    fetchedRevs: (await db.fetchRevs({ keys: ["b1", "b3"] })).rows.map((row) => [row.id, row.value.rev]),
  };
}

async function list() {
  const page = await db.list({ include_docs: true, startkey: "a2", limit: 3 });
  const keys = await db.list({ keys: ["a1", "a8", "nope"] });
  const info = await nano.db.get(dbName);
  const changes = await db.changes({ since: 0 });
  return {
    page: { total_rows: page.total_rows, offset: page.offset, rows: page.rows.map((row) => [row.id, row.doc.title]) },
    keys: keys.rows.map((row) => [row.key, row.error ?? null]),
    allDbs: (await nano.db.list()).includes(dbName),
    info: { db_name: info.db_name, doc_count: info.doc_count },
    changes: changes.results.length,
    missingDb: await failure(nano.db.get(`${dbName}-missing`)),
  };
}

const result = {};
for (const [name, step] of Object.entries({ crud, views, attachments, multipart, bulk, list })) {
  if (skip.split(",").includes(name)) continue;
  try {
    result[name] = await step();
  } catch (error) {
    result[name] = { failed: { statusCode: error.statusCode, error: error.error, reason: error.reason, message: error.message } };
  }
}
process.stdout.write(JSON.stringify(result));
