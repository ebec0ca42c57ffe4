"""Reading documents as CouchDB shows them: one revision or several, with the metadata asked for.

Everything here takes a connection inside a read transaction, so that the several queries of
one answer see one snapshot of the database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..couch.errors import NotFound
from ..couch.protocol import decode_json
from . import attachments, revs, tree
from .revs import Rev


@dataclass(frozen=True, slots=True)
class DocOptions:
    """What a read adds to a document (CouchDB's query options of the same names)."""

    revs: bool = False
    revs_info: bool = False
    conflicts: bool = False
    deleted_conflicts: bool = False
    local_seq: bool = False
    attachments: bool = False
    latest: bool = False


def document(
    conn: sqlite3.Connection, doc_id: str, rev: str | None, options: DocOptions
) -> dict[str, Any]:
    """One revision of a document (the winner when ``rev`` is None); NotFound with CouchDB's
    reason (``missing``, ``deleted``) when there is none to show."""
    if rev is None:
        won = conn.execute("SELECT rev, deleted FROM docs WHERE id = ?", (doc_id,)).fetchone()
        if won is None:
            raise NotFound("not_found", "missing")
        if won[1]:
            raise NotFound("not_found", "deleted")
        rev = won[0]
    else:
        revs.parse(rev)
    found = tree.one(conn, doc_id, rev)
    if found is None:
        raise NotFound("not_found", "missing")
    chosen, known = found, None
    if options.latest and not chosen.leaf:
        known = tree.load(conn, doc_id)
        chosen = revs.winner(_leaves_below(known, rev))
    shown = show(conn, doc_id, known, chosen, options)
    if shown is None:
        raise NotFound("not_found", "missing")
    return shown


def open_revs(
    conn: sqlite3.Connection, doc_id: str, wanted: list[str] | None, options: DocOptions
) -> list[dict[str, Any]]:
    """``open_revs``: ``{"ok": doc}`` per leaf (``wanted`` None: all of them), or per rev
    asked for, ``{"missing": rev}`` for a rev the database does not have."""
    known = tree.load(conn, doc_id)
    if wanted is None:
        if not known:
            raise NotFound("not_found", "missing")
        chosen: Iterable[Rev | str] = revs.ranked(tree.leaves(known))
    else:
        chosen = []
        for rev in wanted:
            if rev not in known:
                chosen.append(rev)
            elif options.latest and not known[rev].leaf:
                chosen.extend(_leaves_below(known, rev))
            else:
                chosen.append(known[rev])
    results = []
    for asked in chosen:
        shown = None if isinstance(asked, str) else show(conn, doc_id, known, asked, options)
        name = asked if isinstance(asked, str) else asked.rev
        results.append({"ok": shown} if shown is not None else {"missing": name})
    return results


def _leaves_below(known: tree.Tree, rev: str) -> list[Rev]:
    return [leaf for leaf in tree.leaves(known) if rev in revs.path_of(known, leaf.rev)]


def show(
    conn: sqlite3.Connection,
    doc_id: str,
    known: tree.Tree | None,
    rev: Rev,
    options: DocOptions,
) -> dict[str, Any] | None:
    """Revision ``rev`` as a document, with what ``options`` ask for; None if its body is
    not kept. ``known`` is the document's whole tree, if the caller has read it already."""
    body = tree.body(conn, doc_id, rev.rev)
    if body is None:
        return None
    doc: dict[str, Any] = {"_id": doc_id, "_rev": rev.rev}
    if rev.deleted:
        doc["_deleted"] = True
    stored_atts = body.pop("_attachments", None)
    doc.update(body)
    if stored_atts:
        doc["_attachments"] = attachments.for_reply(conn, stored_atts, inline=options.attachments)
    if options.conflicts or options.deleted_conflicts:
        leaves = tree.leaves(known) if known is not None else tree.leaves_of(conn, doc_id)
        winner = revs.winner(leaves)
        others = [leaf for leaf in revs.ranked(leaves) if leaf.rev != winner.rev]
        if options.conflicts and (live := [r.rev for r in others if not r.deleted]):
            doc["_conflicts"] = live
        if options.deleted_conflicts and (dead := [r.rev for r in others if r.deleted]):
            doc["_deleted_conflicts"] = dead
    if options.local_seq:
        doc["_local_seq"] = seq_of(conn, doc_id, rev.rev)
    if not (options.revs_info or options.revs):
        return doc
    if known is None:
        known = tree.load(conn, doc_id)
    path = revs.path_of(known, rev.rev)
    if options.revs_info:
        doc["_revs_info"] = [{"rev": r, "status": _status(known[r])} for r in path]
    if options.revs:
        doc["_revisions"] = {
            "start": rev.generation,
            "ids": [r.partition("-")[2] for r in path],
        }
    return doc


def _status(rev: Rev) -> str:
    if not rev.available:
        return "missing"
    return "deleted" if rev.deleted else "available"


def seq_of(conn: sqlite3.Connection, doc_id: str, rev: str) -> int:
    row = conn.execute("SELECT seq FROM revs WHERE doc = ? AND rev = ?", (doc_id, rev)).fetchone()
    return row[0] if row else 0


def local(conn: sqlite3.Connection, doc_id: str) -> dict[str, Any]:
    """A ``_local`` document; NotFound ``missing`` if there is none."""
    row = conn.execute("SELECT rev, body FROM local WHERE id = ?", (doc_id,)).fetchone()
    if row is None:
        raise NotFound("not_found", "missing")
    return {"_id": doc_id, "_rev": f"0-{row[0]}", **decode_json(row[1])}


def revs_diff(conn: sqlite3.Connection, asked: dict[str, list[str]]) -> dict[str, Any]:
    """``_revs_diff``: per document, the revs asked about that the database lacks, and the
    ones it has that could be their ancestors."""
    result = {}
    for doc_id, wanted in asked.items():
        known = tree.load(conn, doc_id)
        missing = [rev for rev in wanted if rev not in known or not known[rev].available]
        if not missing:
            continue
        entry: dict[str, Any] = {"missing": missing}
        lowest = min(revs.parse(rev)[0] for rev in missing)
        ancestors = [
            leaf.rev for leaf in revs.ranked(tree.leaves(known)) if leaf.generation < lowest
        ]
        if ancestors:
            entry["possible_ancestors"] = ancestors
        result[doc_id] = entry
    return result
