"""Querying a view: ``GET|POST /db/_design/ddoc/_view/name`` with CouchDB 3.4's options and
its 400s, its rows read from the design document's index (``views.Index``).

A map query's rows are read in pages (``ViewPages``), as a range ``_all_docs`` is, so that a
view of a million rows is sent in one page's memory. A reduce query reads its range once and
folds it into groups.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..couch.errors import BadRequest, HTTPError
from ..couch.protocol import JSON_TYPE, decode_json, encode_json
from . import blocks, collation, queries, reads
from .call import Call, MethodNotAllowed
from .params import Query, body_json, doc_options, flag, integer, json_value
from .reduce import BUILT_IN, FUNCTIONS
from .reply import SERVER, Reply, json_reply
from .views import Design, Index, total_rows
from .wakeup import Signal

if TYPE_CHECKING:
    from .js import Functions

UNBOUNDED: Any = object()
PAGE = 500  # rows read per step of a map query
REDUCE_CHUNK = 200  # rows given to a JavaScript reduce at once; more are rereduced
UPDATES = ("true", "false", "lazy")
SQL_REDUCES = ("_count", "_sum", "_stats")
DOC, KEY, VALUE = 1, 4, 5  # columns of an index row as read: sort, doc, vsort, n, key, value


@dataclass(frozen=True, slots=True)
class ViewQuery:
    """The options of one view query."""

    keys: list[Any] | None = None
    start: Any = UNBOUNDED
    start_docid: str | None = None
    end: Any = UNBOUNDED
    end_docid: str | None = None
    inclusive_end: bool = True
    descending: bool = False
    skip: int = 0
    limit: int | None = None
    include_docs: bool = False
    reduce: bool = False
    group_level: int | None = None  # None: no grouping; -1: group=true (exact keys)
    update: str = "true"
    update_seq: bool = False
    doc: reads.DocOptions = field(default_factory=reads.DocOptions)


def parse(query: Query, body: dict[str, Any], has_reduce: bool) -> ViewQuery:
    """The options of a query string and a POST body, with CouchDB's 400s."""
    merged: dict[str, str] = dict(query)
    for name, value in body.items():
        if name != "keys":
            merged[name] = value if isinstance(value, str) else encode_json(value).decode()
    keys = json_value(merged, "keys") if "keys" in merged else body.get("keys")
    if keys is not None and not isinstance(keys, list):
        raise BadRequest("query_parse_error", "`keys` member must be an array.")

    def bound(*names: str) -> Any:
        for name in names:
            if name in merged:
                return json_value(merged, name)
        return UNBOUNDED

    start, end = bound("startkey", "start_key"), bound("endkey", "end_key")
    if "key" in merged:
        start = end = json_value(merged, "key")
    reduce = flag(merged, "reduce", has_reduce)
    if reduce and not has_reduce:
        raise BadRequest("query_parse_error", "Reduce is invalid for map-only views.")
    group_level = None
    if flag(merged, "group"):
        group_level = -1
    if "group_level" in merged:
        group_level = integer(merged, "group_level")
    if group_level is not None and not reduce:
        raise BadRequest("query_parse_error", "Invalid use of grouping on a map view.")
    include_docs = flag(merged, "include_docs")
    if include_docs and reduce:
        raise BadRequest("query_parse_error", "`include_docs` is invalid for reduce")
    if keys is not None and len(keys) > 1 and reduce and group_level is None:
        raise BadRequest(
            "query_parse_error", "Multi-key fetches for reduce views must use `group=true`"
        )
    update = merged.get("update", "true")
    stale = merged.get("stale")
    if stale in ("ok", "update_after"):
        update = "false" if stale == "ok" else "lazy"
    elif stale is not None:
        raise BadRequest("query_parse_error", "Invalid value for `stale`.")
    if update not in UPDATES:
        raise BadRequest("query_parse_error", "Invalid value for `update`.")
    descending = flag(merged, "descending")
    options = ViewQuery(
        keys=keys,
        start=start,
        start_docid=_docid(merged, "startkey_docid", "start_key_doc_id"),
        end=end,
        end_docid=_docid(merged, "endkey_docid", "end_key_doc_id"),
        inclusive_end=flag(merged, "inclusive_end", True),
        descending=descending,
        skip=integer(merged, "skip", 0) or 0,
        limit=integer(merged, "limit"),
        include_docs=include_docs,
        reduce=reduce,
        group_level=group_level,
        update=update,
        update_seq=flag(merged, "update_seq"),
        doc=doc_options(merged),
    )
    _check_range(options)
    return options


def _docid(query: dict[str, str], *names: str) -> str | None:
    for name in names:
        if name in query:
            return query[name]
    return None


def _check_range(query: ViewQuery) -> None:
    if query.start is UNBOUNDED or query.end is UNBOUNDED:
        return
    first, last = collation.sort_key(query.start), collation.sort_key(query.end)
    if (first > last) if not query.descending else (first < last):
        raise BadRequest(
            "query_parse_error",
            "No rows can match your key range, reverse your start_key and end_key or set "
            "descending=true"
            if not query.descending
            else "No rows can match your key range, reverse your start_key and end_key or set "
            "descending=false",
        )


def range_sql(query: ViewQuery) -> tuple[list[str], list[Any]]:
    """The WHERE conditions (beyond the view's) and parameters of the query's key range."""
    where: list[str] = []
    params: list[Any] = []
    low, high = (">", "<") if not query.descending else ("<", ">")
    if query.start is not UNBOUNDED:
        start = collation.sort_key(query.start)
        if query.start_docid is None:
            where.append(f"sort {low}= ?")
            params.append(start)
        else:
            where.append(f"(sort, doc) {low}= (?, ?)")
            params += [start, query.start_docid]
    if query.end is not UNBOUNDED:
        end = collation.sort_key(query.end)
        op = f"{high}=" if query.inclusive_end else high
        if query.end_docid is None:
            where.append(f"sort {op} ?")
            params.append(end)
        else:
            where.append(f"(sort, doc) {op} (?, ?)")
            params += [end, query.end_docid]
    return where, params


def _rows_of_range(
    conn: sqlite3.Connection, view: int, query: ViewQuery, after: tuple | None, count: int
) -> list[tuple]:
    """At most ``count`` index rows of the range, those past ``after`` (a (sort, doc, vsort, n)
    cursor; None: from the start, ``skip`` applied)."""
    where, params = range_sql(query)
    skip = query.skip
    if after is not None:
        where.append(f"(sort, doc, vsort, n) {'<' if query.descending else '>'} (?, ?, ?, ?)")
        params += list(after)
        skip = 0
    order = "DESC" if query.descending else "ASC"
    sql = "SELECT sort, doc, vsort, n, key, value FROM rows WHERE view = ?"
    if where:
        sql += " AND " + " AND ".join(where)
    sql += f" ORDER BY sort {order}, doc {order}, vsort {order}, n {order} LIMIT ? OFFSET ?"
    return conn.execute(sql, (view, *params, count, skip)).fetchall()


def _rows_of_key(conn: sqlite3.Connection, view: int, key: Any, query: ViewQuery) -> list[tuple]:
    order = "DESC" if query.descending else "ASC"
    return conn.execute(
        "SELECT sort, doc, vsort, n, key, value FROM rows WHERE view = ? AND sort = ? "
        f"ORDER BY doc {order}, vsort {order}, n {order}",
        (view, collation.sort_key(key)),
    ).fetchall()


def _rows_before(conn: sqlite3.Connection, view: int, row: tuple, descending: bool) -> int:
    """The rows of the view before ``row`` in the query's order (CouchDB's ``offset`` of a
    ``keys`` query, whose first row it is)."""
    below = blocks.rows_before(conn, view, row[:4])
    return total_rows(conn, view) - below - 1 if descending else below


def _offset(conn: sqlite3.Connection, view: int, query: ViewQuery) -> int:
    """CouchDB's ``offset``: the rows of the view before the first one answered."""
    if query.start is UNBOUNDED:
        return query.skip
    return _rows_outside_start(conn, view, query) + query.skip


def _rows_outside_start(conn: sqlite3.Connection, view: int, query: ViewQuery) -> int:
    """The rows before the range's start in the query's order."""
    start = collation.sort_key(query.start)
    if not query.descending:
        return blocks.rows_before(conn, view, blocks.before_key(start, query.start_docid or ""))
    if query.start_docid is None:
        through = blocks.rows_before(conn, view, blocks.after_key(start))
    else:
        through = blocks.rows_before(conn, view, blocks.after_doc(start, query.start_docid))
    return total_rows(conn, view) - through


def _rows_in_range(conn: sqlite3.Connection, view: int, query: ViewQuery) -> int:
    """The rows of the query's key range (``skip`` and ``limit`` aside)."""
    total = total_rows(conn, view)
    outside_start = _rows_outside_start(conn, view, query) if query.start is not UNBOUNDED else 0
    if query.end is UNBOUNDED:
        return total - outside_start
    end = collation.sort_key(query.end)
    doc = query.end_docid
    if query.descending == query.inclusive_end:  # the range stops before the end's rows
        position = blocks.before_key(end, doc or "")
    else:
        position = blocks.after_key(end) if doc is None else blocks.after_doc(end, doc)
    below = blocks.rows_before(conn, view, position)
    past_end = below if query.descending else total - below
    return max(0, total - outside_start - past_end)


class ViewPages:
    """The steps of one map query's answer, laid out as CouchDB's: a page of rows a step."""

    def __init__(self, index: Index, view: int, query: ViewQuery, call: Call, seq: int) -> None:
        self.signal: Signal = call.store.database(call.db).signal
        self._index, self._view, self._query, self._call, self._seq = (
            index,
            view,
            query,
            call,
            seq,
        )
        self._after: tuple | None = None
        self._sent = 0
        self._started = False
        self._ended = False

    def step(self, now: float) -> tuple[bytes | None, float | None]:
        if self._ended:
            return None, None
        query = self._query
        chunk = b""
        limit = query.limit
        count = PAGE if limit is None else min(PAGE, limit - self._sent)
        found: list[tuple] = []
        with self._index.reading() as conn:  # the head and the first page: one snapshot
            if not self._started:
                self._started = True
                total, offset = total_rows(conn, self._view), _offset(conn, self._view, query)
                chunk = b'{"total_rows":%d,"offset":%d,' % (total, offset)
                if query.update_seq:
                    chunk += b'"update_seq":%d,' % self._seq
                chunk += b'"rows":[\r\n'
            if count > 0:
                found = _rows_of_range(conn, self._view, query, self._after, count)
        if found:
            chunk += b",\r\n" if self._sent else b""
            chunk += b",\r\n".join(encode_json(row) for row in _shown(self._call, query, found))
            self._after = found[-1][:4]
            self._sent += len(found)
            if len(found) == count and (limit is None or self._sent < limit):
                return chunk, 0
        self._ended = True
        return chunk + b"\r\n]}\n", 0


def _shown(call: Call, query: ViewQuery, found: list[tuple]) -> list[dict[str, Any]]:
    """Index rows as CouchDB shows them, with their documents if asked for."""
    rows = [
        {"id": doc, "key": decode_json(key), "value": decode_json(value)}
        for _sort, doc, _vsort, _n, key, value in found
    ]
    if query.include_docs:

        def include_all(conn: sqlite3.Connection) -> None:
            for row in rows:
                _include(conn, row, query)

        call.store.read(call.db, include_all)
    return rows


def _include(conn: sqlite3.Connection, row: dict[str, Any], query: ViewQuery) -> None:
    """CouchDB's ``include_docs``: the row's document, or the one its value's ``_id`` names
    (a linked document); null if there is none."""
    value, doc_id, rev = row["value"], row["id"], None
    if isinstance(value, dict) and isinstance(value.get("_id"), str):
        doc_id = value["_id"]
        rev = value.get("_rev") if isinstance(value.get("_rev"), str) else None
    try:
        row["doc"] = reads.document(conn, doc_id, rev, query.doc)
    except HTTPError:  # missing or deleted: CouchDB shows null
        row["doc"] = None


def _group_key(key: Any, level: int | None) -> Any:
    """The key a row is grouped under: its own (group=true), its first ``level`` elements
    (group_level, for array keys), or null (no grouping)."""
    if level is None or level == 0:
        return None
    if level >= 0 and isinstance(key, list):
        return key[:level]
    return key


def reduced(
    conn: sqlite3.Connection, design: Design, functions: Functions, view: int, query: ViewQuery
) -> list[dict[str, Any]]:
    """The rows of a reduce query: one per group, in key order (with ``keys``, in the keys'
    order, never merged across keys), ``skip`` and ``limit`` applied to the groups."""
    name = design.reduces[view] or ""
    if name in SQL_REDUCES and query.keys is None and query.group_level in (None, -1):
        in_sql = _reduced_in_sql(conn, view, query, name)
        if in_sql is not None:
            return in_sql
    if query.keys is not None:
        runs = [_rows_of_key(conn, view, key, query) for key in query.keys]
    else:
        runs = [_rows_of_range(conn, view, replace(query, skip=0, limit=None), None, -1)]
    level = query.group_level
    groups: list[tuple[Any, list[tuple]]] = []
    for run in runs:
        first, last = len(groups), None
        for row in run:
            group = _group_key(decode_json(row[KEY]), level)
            sort = collation.sort_key(group) if level is not None else b""
            if len(groups) == first or sort != last:
                groups.append((group, []))
                last = sort
            groups[-1][1].append(row)
    groups = groups[query.skip :]
    if query.limit is not None:
        groups = groups[: query.limit]
    return [{"key": group, "value": _reduce(name, functions, view, rows)} for group, rows in groups]


def _reduced_in_sql(
    conn: sqlite3.Connection, view: int, query: ViewQuery, name: str
) -> list[dict[str, Any]] | None:
    """``_count``, ``_sum`` and ``_stats`` of numbers, whole or by exact key, computed by
    SQLite over the range: no row read into Python. None when a value is not a number
    (``_sum`` of arrays or objects, or an error to report): the rows are then reduced one by
    one."""
    where, params = range_sql(query)
    grouped = query.group_level == -1
    if name == "_count" and not grouped:  # counted as they change, in blocks
        total = _rows_in_range(conn, view, query)
        rows = [{"key": None, "value": total}] if total else []
        rows = rows[query.skip :]
        return rows if query.limit is None else rows[: query.limit]
    order = "DESC" if query.descending else "ASC"
    sql = (
        "SELECT MIN(key), COUNT(*), SUM(v), MIN(v), MAX(v), SUM(v * v), "
        "SUM(t NOT IN ('integer', 'real')) FROM (SELECT sort, key, json_extract(value, '$') "
        "AS v, json_type(value) AS t FROM rows WHERE view = ?"
        + "".join(" AND " + condition for condition in where)
        + ")"
    )
    if grouped:
        sql += f" GROUP BY sort ORDER BY sort {order} LIMIT ? OFFSET ?"
        params = [*params, -1 if query.limit is None else query.limit, query.skip]
    found = conn.execute(sql, (view, *params)).fetchall()
    if not grouped:
        found = [row for row in found if row[1]][query.skip :]
        found = found if query.limit is None else found[: query.limit]
    if name != "_count" and any(row[6] for row in found):
        return None
    rows = []
    for key, count, total, low, high, squares, _ in found:
        value: Any = count
        if name == "_sum":
            value = total
        elif name == "_stats":
            value = {"sum": total, "count": count, "min": low, "max": high, "sumsqr": squares}
        rows.append({"key": decode_json(key) if grouped else None, "value": value})
    return rows


def _reduce(name: str, functions: Functions, view: int, rows: list[tuple]) -> Any:
    sorts = [row[0] for row in rows]
    values = [decode_json(row[VALUE]) for row in rows]
    if name in BUILT_IN:
        return FUNCTIONS[name](sorts, values)
    partials = []
    for i in range(0, len(rows), REDUCE_CHUNK):
        chunk = rows[i : i + REDUCE_CHUNK]
        keys = [[decode_json(row[KEY]), row[DOC]] for row in chunk]
        partials.append(functions.reduce(view, keys, values[i : i + REDUCE_CHUNK], False))
    if len(partials) == 1:
        return partials[0]
    return functions.reduce(view, None, partials, True)


def query_view(call: Call, design: Design, index: Index, view: int) -> Reply:
    """Answer a view query from ``index``, brought up to date as ``update`` asks."""
    if call.method not in ("GET", "POST"):
        raise MethodNotAllowed("GET,POST,HEAD")
    body = body_json(call.body) if call.method == "POST" else {}
    answer = _answer(call, design, index, view, parse(call.query, body, _has_reduce(design, view)))
    if isinstance(answer, ViewPages):
        headers = {"content-type": JSON_TYPE, "cache-control": "must-revalidate", "server": SERVER}
        return Reply(200, headers, stream=answer)
    return json_reply(200, answer)


def query_views(call: Call, design: Design, index: Index, view: int) -> Reply:
    """``POST …/_view/name/queries``: several queries of one view, answered together."""
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    asked = body_json(call.body).get("queries")
    if not isinstance(asked, list) or not all(isinstance(each, dict) for each in asked):
        raise BadRequest("bad_request", "`queries` member must be an array of objects")
    parsed = [parse(call.query, each, _has_reduce(design, view)) for each in asked]
    results = []
    for query in parsed:
        answer = _answer(call, design, index, view, query)
        if isinstance(answer, ViewPages):
            answer = decode_json(b"".join(_steps(answer)))
        results.append(answer)
    return json_reply(200, {"results": results})


def _has_reduce(design: Design, view: int) -> bool:
    return design.reduces[view] is not None


def _steps(pages: ViewPages) -> list[bytes]:
    chunks = []
    while (chunk := pages.step(0.0)[0]) is not None:
        chunks.append(chunk)
    return chunks


def _answer(
    call: Call, design: Design, index: Index, view: int, query: ViewQuery
) -> dict[str, Any] | ViewPages:
    """One query's answer: whole, or (a map query over a range) the pages to send."""
    read_db = lambda work: call.store.read(call.db, work)  # noqa: E731
    if query.update == "true":
        seq = index.update(read_db, until=read_db(queries.update_seq))
    else:
        seq = index.seq()
        if query.update == "lazy":
            threading.Thread(target=index.update, args=(read_db,), daemon=True).start()
    answer: dict[str, Any]
    if query.reduce:
        with index.reading() as conn:
            rows = reduced(conn, design, index.functions, view, query)
        answer = {"rows": rows}
        if query.update_seq:
            answer = {"update_seq": seq, **answer}
        return answer
    if query.keys is None:
        return ViewPages(index, view, query, call, seq)
    with index.reading() as conn:
        found = [row for key in query.keys for row in _rows_of_key(conn, view, key, query)]
        found = found[query.skip :]
        if query.limit is not None:
            found = found[: query.limit]
        total = total_rows(conn, view)
        offset = _rows_before(conn, view, found[0], query.descending) if found else 0
    answer = {"total_rows": total, "offset": offset}
    if query.update_seq:
        answer["update_seq"] = seq
    answer["rows"] = _shown(call, query, found)
    return answer
