"""Load the demo's database: its rights, its design documents and the beer-sample data set.

``python -m demo.beer.load`` fills ``beer-sample`` in settee's data directory (``var``), in
this process, with no server; ``--url http://admin:secret@127.0.0.1:8888/beer-sample`` loads
through a running settee (or a CouchDB) as its server admin. Every step is idempotent: the
database and the design documents are made or brought up to date, and only the documents
whose ids it has never held are written, so a second run writes nothing, and beers the demo's
visitors edited or deleted stay as they left them.

Rights: the database's ``_security`` is kept as it is, but for one name added to its members:
the demo's user (``DEMO_USER``), whose password the demo sets anew each time it starts
(``set_password``). Nobody else gains anything: on settee's embedded store, as on CouchDB 3, a
new database is its admins' alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

from service.couch import NotFound, blocking
from service.couch.targets import Target, blocking_database

from . import DATABASE, data, design

DEMO_USER = "beer-demo"
MARKER = "_local/beer-sample"  # written once every document is in: the demo then skips loading
BATCH = 500


def _batches(docs: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(docs, size)):
        yield batch


def ensure_database(db: blocking.Database) -> None:
    """Make the database if it is missing, and let the demo's user in as a member.

    A database whose members name nobody is everyone's (CouchDB's rule): the user is in
    already, and naming it would shut the others out, so such a one is left as it is.
    """
    if not db.exists():
        db.couch.create(db.name)
    security = db.security()
    members = security.setdefault("members", {})
    names, roles = members.setdefault("names", []), members.setdefault("roles", [])
    if (names or roles) and DEMO_USER not in names:
        names.append(DEMO_USER)
        security.setdefault("admins", {"names": [], "roles": []})
        db.security(security)


def ensure_designs(db: blocking.Database) -> int:
    """Write the design documents that are missing or differ; how many were written."""
    written = 0
    for ddoc_id, wanted in design.DESIGNS.items():
        try:
            current = db.get(ddoc_id)
        except NotFound:
            current = {}
        if {k: v for k, v in current.items() if not k.startswith("_")} != wanted:
            doc = {**wanted, "_id": ddoc_id}
            if "_rev" in current:
                doc["_rev"] = current["_rev"]
            db.save(doc)
            written += 1
    return written


def missing(db: blocking.Database, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents of ``batch`` whose ids the database has never held (deleted ones it has)."""
    rows = db.view("_all_docs", keys=[doc["_id"] for doc in batch])
    absent = {row.key for row in rows if row.get("error") == "not_found"}
    return [doc for doc in batch if doc["_id"] in absent]


def load_documents(
    db: blocking.Database,
    breweries: int = data.BREWERIES,
    beers: int = data.BEERS,
    seed: int = data.SEED,
    progress: bool = True,
) -> int:
    """Write the data set's documents the database lacks, a batch at a time; how many."""
    written = 0
    total = breweries + beers
    with tqdm(total=total, unit="doc", desc=db.name, disable=not progress) as bar:
        for batch in _batches(data.documents(breweries, beers, seed), BATCH):
            new = missing(db, batch)
            if new:
                result = db.save(new)
                if result.pending:  # written meanwhile by someone else: theirs stands
                    bar.write(f"{len(result.pending)} documents were written meanwhile")
                written += len(new) - len(result.pending)
            bar.update(len(batch))
    return written


def index_views(db: blocking.Database, say: Callable[[str], None]) -> None:
    """Build the views' indexes now, so that the first page is not the one to wait."""
    for name in (design.BEER_BY_NAME, design.BEER_BY_BREWERY, design.BREWERY_BY_NAME):
        say(f"indexing {name}")
        db.view(name, limit=1)


def is_loaded(db: blocking.Database) -> bool:
    """Whether a load has completed on this database (its marker is there)."""
    try:
        db.get(MARKER)
    except NotFound:
        return False
    return True


def load(
    target: Target,
    breweries: int = data.BREWERIES,
    beers: int = data.BEERS,
    seed: int = data.SEED,
    progress: bool = True,
    say: Callable[[str], None] = lambda line: None,
) -> int:
    """Make ``target`` the demo's database, complete; the number of documents written.

    ``target`` is a Database, a database URL (as its server admin) or a local path
    (``var/beer-sample``: the embedded store in ``var``, opened in this process).
    """
    db = blocking_database(target)
    try:
        ensure_database(db)
        if ensure_designs(db):
            say("design documents written")
        written = load_documents(db, breweries, beers, seed, progress)
        index_views(db, say)
        if not is_loaded(db):
            db.save({"_id": MARKER, "breweries": breweries, "beers": beers, "seed": seed})
        return written
    finally:
        db.close()


def set_password(couch: blocking.Couch, password: str) -> None:
    """Make the demo's user, or give it ``password`` (the server hashes it as it is written)."""
    user_id = f"org.couchdb.user:{DEMO_USER}"
    try:
        user = couch.users.get(user_id)
    except NotFound:
        user = {"_id": user_id, "name": DEMO_USER, "type": "user", "roles": []}
    user["password"] = password
    couch.users.save(user)


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m demo.beer.load", description=__doc__.split("\n\n")[0]
    )
    where = cli.add_mutually_exclusive_group()
    where.add_argument("--data-dir", default="var", help="settee's data directory (default: var)")
    where.add_argument("--url", help="the database's URL, with its server admin's credentials")
    cli.add_argument("--breweries", type=int, default=data.BREWERIES, metavar="N")
    cli.add_argument("--beers", type=int, default=data.BEERS, metavar="N")
    cli.add_argument("--seed", type=int, default=data.SEED)
    args = cli.parse_args(argv)
    if args.breweries < 1 or args.beers < 0:
        cli.error("--breweries must be at least 1 and --beers not negative")
    target = args.url or Path(args.data_dir) / DATABASE
    written = load(
        target, args.breweries, args.beers, args.seed, say=lambda line: print(line, file=sys.stderr)
    )
    print(f"{written} documents written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
