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


class Row:
    """One row of a view: ``key``, ``value``, ``id`` (None for reduced rows), ``doc``, ``error``."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    @property
    def key(self) -> Any:
        return self._data.get("key")

    @property
    def value(self) -> Any:
        return self._data.get("value")

    @property
    def id(self) -> str | None:
        return self._data.get("id")

    @property
    def doc(self) -> Document | None:
        """The row's document, present only when the view was read with include_docs."""
        return as_document(self._data.get("doc"))

    @property
    def error(self) -> str | None:
        return self._data.get("error")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self._data == other._data

    def __repr__(self) -> str:
        if self.error:
            return f"<Row key={self.key!r} error={self.error!r}>"
        return f"<Row id={self.id!r} key={self.key!r} value={self.value!r}>"


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
