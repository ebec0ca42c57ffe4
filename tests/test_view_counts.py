"""``offset`` and a range's ``_count`` as CouchDB counts them, over views big enough that the
embedded store counts in blocks (``service.store.blocks``): repeated keys, doc id bounds,
both directions, both end inclusions, and after documents change and go."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.conftest import answer

DOCS = 3000
MAP = "function (doc) { if (doc.k !== undefined) { emit(doc.k, null); } }"


def key_of(i: int) -> int:
    return (i * 7) % 50  # 60 rows a key, their ids scattered


def q(value) -> str:
    return quote(json.dumps(value))


def expected(rows: list[tuple[int, str]], query: dict) -> tuple[int, int]:
    """(offset, rows in range) of ``query`` over ``rows`` sorted as the view: by key, doc id."""
    descending = query.get("descending", False)
    ordered = sorted(rows, reverse=descending)
    inclusive = query.get("inclusive_end", True)

    def not_before_start(row):
        if "startkey" not in query:
            return True
        start = (query["startkey"], query.get("startkey_docid", "" if not descending else "\uffff"))
        if "startkey_docid" not in query:
            return row[0] >= query["startkey"] if not descending else row[0] <= query["startkey"]
        return row >= start if not descending else row <= start

    def not_past_end(row):
        if "endkey" not in query:
            return True
        if "endkey_docid" in query:
            end, at = (query["endkey"], query["endkey_docid"]), row
        else:
            end, at = query["endkey"], row[0]
        if descending:
            return at >= end if inclusive else at > end
        return at <= end if inclusive else at < end

    offset = next((i for i, row in enumerate(ordered) if not_before_start(row)), len(ordered))
    inside = [row for row in ordered[offset:] if not_past_end(row)]
    return offset, len(inside)


QUERIES = [
    {"startkey": 17},
    {"startkey": 17, "startkey_docid": "d01500"},
    {"startkey": 17, "descending": True},
    {"startkey": 17, "startkey_docid": "d01500", "descending": True},
    {"startkey": 3, "endkey": 40},
    {"startkey": 3, "endkey": 40, "inclusive_end": False},
    {"startkey": 40, "endkey": 3, "descending": True},
    {"startkey": 40, "endkey": 3, "descending": True, "inclusive_end": False},
    {"startkey": 5, "endkey": 5, "endkey_docid": "d01000"},
    {"startkey": 49, "endkey": 49, "endkey_docid": "d02000", "inclusive_end": False},
    {"startkey": 10, "startkey_docid": "d00200", "endkey": 10, "endkey_docid": "d02900"},
    {"endkey": 0},
    {"startkey": 99},
    {"startkey": -1, "descending": True},
]


def options(query: dict) -> str:
    parts = []
    for name, value in query.items():
        parts.append(f"{name}={q(value) if name.endswith('key') else value}")
        if name.endswith("docid"):
            parts[-1] = f"{name}={quote(value)}"
        if isinstance(value, bool):
            parts[-1] = f"{name}={'true' if value else 'false'}"
    return "&".join(parts)


async def check(settee, db_name: str, rows: list[tuple[int, str]]) -> None:
    path = f"/{db_name}/_design/c/_view/by_k"
    for query in QUERIES:
        offset, count = expected(rows, query)
        mapped = answer(await settee.fetch("GET", f"{path}?reduce=false&limit=1&{options(query)}"))
        assert (mapped["offset"], mapped["total_rows"]) == (offset, len(rows)), query
        reduced = answer(await settee.fetch("GET", f"{path}?{options(query)}"))
        assert reduced["rows"] == ([{"key": None, "value": count}] if count else []), query


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server answers offset 0 after a startkey")
@pytest.mark.gen_test(timeout=120)
async def test_offsets_and_range_counts_as_couchdb(settee, bdb, db_name):
    bdb.save({"_id": "_design/c", "views": {"by_k": {"map": MAP, "reduce": "_count"}}})
    for first in range(0, DOCS, 1000):
        bdb.save([{"_id": f"d{i:05}", "k": key_of(i)} for i in range(first, first + 1000)])
    rows = [(key_of(i), f"d{i:05}") for i in range(DOCS)]
    await check(settee, db_name, rows)
    # Documents move to other keys, and a third of them go: the counts follow.
    moved = {f"d{i:05}": 60 + i % 3 for i in range(0, DOCS, 5)}
    gone = {f"d{i:05}" for i in range(1, DOCS, 3)} - set(moved)
    current = {row["id"]: row["value"]["rev"] for row in bdb.view("_all_docs")}
    changes = [{"_id": i, "_rev": current[i], "k": k} for i, k in moved.items()]
    changes += [{"_id": i, "_rev": current[i], "_deleted": True} for i in gone]
    bdb.save(changes)
    rows = [(moved.get(doc, key), doc) for key, doc in rows if doc not in gone]
    await check(settee, db_name, rows)
