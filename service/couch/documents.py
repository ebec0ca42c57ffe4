"""The shapes CouchDB's answers come in: Document, Row and View."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class Document(dict):
    """A JSON object from CouchDB: a dict (key order kept) whose keys are also attributes.

    ``doc.title`` reads ``doc["title"]``; a nested object read as an attribute comes back as a
    Document too, so ``doc.author.name`` works. Setting or deleting an attribute sets or deletes
    the key.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        if type(value) is dict:
            value = self[name] = Document(value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Document({dict.__repr__(self)})"


def as_document(value: Any) -> Document | None:
    """A Document for a JSON object, None for null."""
    if value is None or isinstance(value, Document):
        return value
    return Document(value)


class Row(dict):
    """One row of a view: ``key``, ``value``, ``id`` (None for reduced rows), ``doc``, ``error``.

    A dict of what CouchDB sent, as corduroy's rows were: ``row["key"]``, ``"%(key)s" % row``
    and ``json.dumps(view.rows)`` work too.
    """

    __slots__ = ()

    @property
    def key(self) -> Any:
        return self.get("key")

    @property
    def value(self) -> Any:
        return self.get("value")

    @property
    def id(self) -> str | None:
        return self.get("id")

    @property
    def doc(self) -> Document | None:
        """The row's document, present only when the view was read with include_docs."""
        return as_document(self.get("doc"))

    @property
    def error(self) -> str | None:
        return self.get("error")

    def __repr__(self) -> str:
        if self.error:
            return f"<Row key={self.key!r} error={self.error!r}>"
        return f"<Row id={self.id!r} key={self.key!r} value={self.value!r}>"


class Headers(dict):
    """Response headers: names kept lower case, and read in any case
    (``headers["Content-Type"]``)."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)


class View:
    """The answer to a view query: iterate it for its rows.

    ``total_rows`` counts the rows that matched (more than ``len(view)`` under ``limit``),
    ``offset`` the rows before the first one returned, ``options`` the query that produced it.
    """

    def __init__(self, payload: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        self.options = dict(options)
        self.rows = [Row(row) for row in payload.get("rows", ())]
        self.total_rows: int | None = payload.get("total_rows")
        self.offset: int | None = payload.get("offset")
        self.update_seq = payload.get("update_seq")

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Row:
        return self.rows[index]

    def __repr__(self) -> str:
        return f"<View rows={len(self.rows)} total_rows={self.total_rows} offset={self.offset}>"
