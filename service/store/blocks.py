"""A view index's rows counted in blocks, so that counting the rows before a key costs a few
hundred rows read, not every row before it.

CouchDB keeps counts in its b-tree's inner nodes: ``offset`` (the rows before a query's
first one) and a range's ``_count`` are cheap there. SQLite's b-tree keeps none, so an
index file keeps its own, one level deep: the rows of each view are cut into consecutive
blocks of about ``SIZE`` rows, each known by its last row's position and holding its count.
The rows before a position are then the counts of the blocks before it (a thousand numbers
for a million rows) plus the rows of its own block up to it. A block that grows past twice
``SIZE`` is split; one left empty is dropped. A position is a row's primary key in the
index (sort key, doc id, value sort key, n).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable

SIZE = 1024
TOP = (b"\xff", "", b"", 0)  # above every row (sort keys begin with a tag byte under 8)
SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    view INTEGER NOT NULL,
    sort BLOB NOT NULL,
    doc TEXT NOT NULL,
    vsort BLOB NOT NULL,
    n INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY (view, sort, doc, vsort, n)
) WITHOUT ROWID;
"""
POSITION = "(sort, doc, vsort, n)"

Position = tuple[bytes, str, bytes, int]


def after_key(sort: bytes) -> Position:
    """The position just after every row of sort key ``sort``: no encoded key has another as
    its prefix, so none lies between ``sort`` and ``sort + 0``."""
    return (sort + b"\x00", "", b"", -1)


def before_key(sort: bytes, doc: str = "") -> Position:
    """The position just before every row of sort key ``sort`` (and of ``doc``, if given)."""
    return (sort, doc, b"", -1)


def after_doc(sort: bytes, doc: str) -> Position:
    """The position just after every row of ``doc`` under sort key ``sort`` (value sort keys
    begin with a tag byte under 6)."""
    return (sort, doc, b"\x06", -1)


def changed(conn: sqlite3.Connection, removed: Iterable[tuple], added: Iterable[tuple]) -> None:
    """Count rows ``removed`` and ``added`` (each ``(view, *position)``) in their blocks,
    then split the blocks grown too big and drop the empty ones; in the caller's
    transaction."""
    deltas: Counter[tuple] = Counter()
    for rows, sign in ((removed, -1), (added, 1)):
        for view, *position in rows:
            deltas[(view, *_block_of(conn, view, tuple(position)))] += sign
    conn.executemany(
        f"UPDATE blocks SET rows = rows + ? WHERE view = ? AND {POSITION} = (?, ?, ?, ?)",
        [(delta, *block) for block, delta in deltas.items() if delta],
    )
    for view in {block[0] for block in deltas}:
        _split(conn, view)
    conn.execute("DELETE FROM blocks WHERE rows = 0 AND sort != ?", (TOP[0],))


def _block_of(conn: sqlite3.Connection, view: int, position: tuple) -> Position:
    """The block a row at ``position`` counts in (the view's top block, made if the view has
    none yet)."""
    found = _bound_at(conn, view, position)
    if found is None:
        conn.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, 0)", (view, *TOP))
        return TOP
    return found


def _bound_at(conn: sqlite3.Connection, view: int, position: tuple) -> Position | None:
    """The last position of the first block whose last position is not below ``position``."""
    found = conn.execute(
        f"SELECT sort, doc, vsort, n FROM blocks WHERE view = ? AND {POSITION} >= (?, ?, ?, ?) "
        "ORDER BY sort, doc, vsort, n LIMIT 1",
        (view, *position),
    ).fetchone()
    return None if found is None else tuple(found)


def _split(conn: sqlite3.Connection, view: int) -> None:
    """Cut each block of ``view`` holding more than twice ``SIZE`` rows: its first ``SIZE``
    rows become a block of their own."""
    while True:
        big = conn.execute(
            "SELECT sort, doc, vsort, n FROM blocks WHERE view = ? AND rows > ? LIMIT 1",
            (view, 2 * SIZE),
        ).fetchone()
        if big is None:
            return
        low = _previous(conn, view, tuple(big))
        where, args = _inside(low, tuple(big))
        cut = conn.execute(
            f"SELECT sort, doc, vsort, n FROM rows WHERE view = ? AND {where} "
            "ORDER BY sort, doc, vsort, n LIMIT 1 OFFSET ?",
            (view, *args, SIZE - 1),
        ).fetchone()
        conn.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)", (view, *cut, SIZE))
        conn.execute(
            f"UPDATE blocks SET rows = rows - ? WHERE view = ? AND {POSITION} = (?, ?, ?, ?)",
            (SIZE, view, *big),
        )


def _previous(conn: sqlite3.Connection, view: int, bound: tuple) -> tuple | None:
    """The last position of the block before the one ending at ``bound`` (None: the first)."""
    return conn.execute(
        f"SELECT sort, doc, vsort, n FROM blocks WHERE view = ? AND {POSITION} < (?, ?, ?, ?) "
        "ORDER BY sort DESC, doc DESC, vsort DESC, n DESC LIMIT 1",
        (view, *bound),
    ).fetchone()


def _inside(low: tuple | None, high: tuple) -> tuple[str, list]:
    """The SQL condition (and its arguments) of the rows in ``(low, high]``."""
    if low is None:
        return f"{POSITION} <= (?, ?, ?, ?)", list(high)
    return f"{POSITION} > (?, ?, ?, ?) AND {POSITION} <= (?, ?, ?, ?)", [*low, *high]


def rows_before(conn: sqlite3.Connection, view: int, position: Position) -> int:
    """The rows of ``view`` whose position is below ``position``."""
    block = _bound_at(conn, view, position)
    if block is None:  # no rows yet, or none counted: count them
        (count,) = conn.execute(
            f"SELECT COUNT(*) FROM rows WHERE view = ? AND {POSITION} < (?, ?, ?, ?)",
            (view, *position),
        ).fetchone()
        return count
    low = _previous(conn, view, block)
    where, args = f"{POSITION} < (?, ?, ?, ?)", list(position)
    whole = 0  # the rows of the blocks before this one: none before the first
    if low is not None:
        where += f" AND {POSITION} > (?, ?, ?, ?)"
        args += list(low)
        (whole,) = conn.execute(
            f"SELECT SUM(rows) FROM blocks WHERE view = ? AND {POSITION} <= (?, ?, ?, ?)",
            (view, *low),
        ).fetchone()
    (part,) = conn.execute(
        f"SELECT COUNT(*) FROM rows WHERE view = ? AND {where}", (view, *args)
    ).fetchone()
    return whole + part
