"""``Bucket``: the Couchbase SDK's key-value API over a CouchDB database.

Every operation is a client flow (``@operation``, see ``service.couch.client``), written once
and run by the runner of the database it acts on: a blocking Database answers with results,
an async one with awaitables. A URL or a local path serves both faces, chosen per call: inside
a running event loop, an awaitable; elsewhere, the result.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from service.couch import blocking, client
from service.couch.client import operation
from service.couch.conflicts import Flow
from service.couch.targets import async_database, blocking_database, database_url

from . import engine, expiry, ops, views
from .errors import ArgumentError, NotFoundError, with_results
from .formats import FMT_AUTO, FMT_BYTES, FMT_JSON, FMT_PICKLE, FMT_UTF8, Transcoder
from .results import MultiResult, Result, ViewRow

FORMATS = (FMT_JSON, FMT_PICKLE, FMT_BYTES, FMT_UTF8, FMT_AUTO)


class Bucket:
    """Key-value operations on the documents of one database.

    ``target`` is a Database (either face), a database URL or a local path (an embedded
    store's database). ``quiet=True`` makes ``get`` and ``delete`` (and their ``_multi``)
    answer a missing key with a failed Result instead of NotFoundError; each call may say
    otherwise. ``default_format`` is the format of values stored without ``format=``;
    ``transcoder`` (a ``Transcoder``) replaces the built-in formats.
    """

    def __init__(
        self,
        target: client.Database | str | os.PathLike[str],
        quiet: bool = False,
        default_format: int = FMT_JSON,
        *,
        transcoder: Transcoder | None = None,
    ) -> None:
        self.quiet = quiet
        self.transcoder = transcoder
        self.default_format = default_format
        self._fixed: client.Database | None = None
        self._url: str | None = None
        if isinstance(target, client.Database):
            self._fixed = target
        else:
            self._url = database_url(target)
        self._blocking: blocking.Database | None = None
        self._async: client.Database | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._indexed = False
        self.name = self._database().name

    @property
    def default_format(self) -> int:
        return self._default_format

    @default_format.setter
    def default_format(self, fmt: int) -> None:
        self._default_format = self._format(fmt)

    def __repr__(self) -> str:
        return f"<Bucket {self.name!r}>"

    # -- faces

    def _database(self) -> client.Database:
        """The database this call acts on: the one given, or for a URL, the face the caller
        is in (an async handle per event loop, as a connection pool belongs to its loop)."""
        if self._fixed is not None:
            return self._fixed
        assert self._url is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._blocking is None:
                self._blocking = blocking_database(self._url)
            return self._blocking
        if self._async is None or self._async_loop is not loop:
            self._async, self._async_loop = async_database(self._url), loop
        return self._async

    @property
    def _runner(self) -> Any:  # what @operation runs this bucket's flows with
        return self._database()._runner

    def close(self) -> Any:
        """Close the connections this Bucket opened (a Database given to it stays open);
        awaitable when it opened async ones."""
        if self._blocking is not None:
            self._blocking.close()
            self._blocking = None
        handle, self._async = self._async, None
        return handle.close() if handle is not None else None

    def __enter__(self) -> Bucket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Bucket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        closing = self.close()
        if closing is not None:
            await closing

    # -- running plans

    def _format(self, fmt: int | None) -> int:
        if fmt is None:
            return self._default_format
        if isinstance(fmt, bool) or not isinstance(fmt, int):
            raise ArgumentError(f"a format is an int, not {fmt!r}")
        if self.transcoder is None and fmt not in FORMATS:
            raise ArgumentError(f"format must be one of the FMT_ constants, not {fmt!r}")
        return fmt

    def _quiet(self, quiet: bool | None) -> bool:
        return self.quiet if quiet is None else bool(quiet)

    def _index(self, ttl: Any) -> Flow[None]:
        """Install the expiry index before this Bucket's first write with a ttl."""
        if not self._indexed and ops.expiry(ttl) is not None:
            self._indexed = True
            yield from expiry.install(self._database())

    def _one(self, key: Any, plan: ops.Plan, quiet: bool = False) -> Flow[Result]:
        key = ops.check_key(key)
        outcome = (yield from engine.run(self._database(), {key: plan}))[key]
        if isinstance(outcome, Exception):
            if quiet and isinstance(outcome, NotFoundError):
                return outcome.result
            raise outcome
        return outcome

    def _many(self, plans: Mapping[str, ops.Plan], quiet: bool = False) -> Flow[MultiResult]:
        outcomes = yield from engine.run(self._database(), plans)
        results = MultiResult()
        error: Exception | None = None
        for key in plans:
            outcome = outcomes[key]
            if isinstance(outcome, Exception):
                results[key] = engine.failed(key, outcome)
                if error is None and not (quiet and isinstance(outcome, NotFoundError)):
                    error = outcome
            else:
                results[key] = outcome
        if error is not None:
            raise with_results(error, results)
        return results

    @staticmethod
    def _keys(keys: Iterable[Any]) -> list[str]:
        if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
            raise ArgumentError(f"expected an iterable of keys, not {keys!r}")
        return [ops.check_key(key) for key in dict.fromkeys(keys)]

    @staticmethod
    def _items(items: Any) -> dict[str, Any]:
        if not isinstance(items, Mapping):
            raise ArgumentError(f"expected a dict of keys to values, not {type(items).__name__}")
        return {ops.check_key(key): value for key, value in items.items()}

    # -- one key

    @operation
    def get(self, key: str, quiet: bool | None = None) -> Flow[Result]:
        """The key's value, flags and cas; NotFoundError (or, quiet, a failed Result)."""
        return (yield from self._one(key, ops.read(self.transcoder), self._quiet(quiet)))

    def _store(self, mode: str, key: Any, value: Any, cas: Any, ttl: Any, fmt: Any) -> Flow:
        plan = ops.store(mode, value, self._format(fmt), ttl, cas, self.transcoder)
        yield from self._index(ttl)
        return (yield from self._one(key, plan))

    @operation
    def set(
        self,
        key: str,
        value: Any,
        cas: str | None = None,
        ttl: float = 0,
        format: int | None = None,
    ) -> Flow[Result]:
        """Store ``value``; with ``cas``, only over that revision (else KeyExistsError)."""
        return (yield from self._store("set", key, value, cas, ttl, format))

    @operation
    def add(self, key: str, value: Any, ttl: float = 0, format: int | None = None) -> Flow[Result]:
        """Store ``value`` if the key is absent, else KeyExistsError."""
        return (yield from self._store("add", key, value, None, ttl, format))

    @operation
    def replace(
        self,
        key: str,
        value: Any,
        cas: str | None = None,
        ttl: float = 0,
        format: int | None = None,
    ) -> Flow[Result]:
        """Store ``value`` if the key is present, else NotFoundError."""
        return (yield from self._store("replace", key, value, cas, ttl, format))

    @operation
    def delete(self, key: str, cas: str | None = None, quiet: bool | None = None) -> Flow[Result]:
        return (yield from self._one(key, ops.delete(cas), self._quiet(quiet)))

    @operation
    def touch(self, key: str, ttl: float = 0) -> Flow[Result]:
        """Give the key a new expiry (0: none)."""
        plan = ops.touch(ttl)
        yield from self._index(ttl)
        return (yield from self._one(key, plan))

    @operation
    def incr(
        self, key: str, amount: int = 1, initial: int | None = None, ttl: float = 0
    ) -> Flow[Result]:
        """Add ``amount`` to a counter (``initial`` if absent); the new value in ``.value``."""
        plan = ops.counter(_amount(amount), initial, ttl)
        yield from self._index(ttl)
        return (yield from self._one(key, plan))

    @operation
    def decr(
        self, key: str, amount: int = 1, initial: int | None = None, ttl: float = 0
    ) -> Flow[Result]:
        """Subtract ``amount`` from a counter, stopping at 0."""
        plan = ops.counter(-_amount(amount), initial, ttl)
        yield from self._index(ttl)
        return (yield from self._one(key, plan))

    @operation
    def append(self, key: str, value: str | bytes, cas: str | None = None) -> Flow[Result]:
        return (yield from self._one(key, ops.concat(value, False, cas)))

    @operation
    def prepend(self, key: str, value: str | bytes, cas: str | None = None) -> Flow[Result]:
        return (yield from self._one(key, ops.concat(value, True, cas)))

    @operation
    def lock(self, key: str, ttl: float = 0) -> Flow[Result]:
        """The value, the key locked for ``ttl`` seconds (default 15, at most 30)."""
        return (yield from self._one(key, ops.lock(ttl, self.transcoder)))

    @operation
    def unlock(self, key: str, cas: str) -> Flow[Result]:
        return (yield from self._one(key, ops.unlock(cas)))

    # -- many keys, in one round of requests

    @operation
    def get_multi(self, keys: Iterable[str], quiet: bool | None = None) -> Flow[MultiResult]:
        plan = ops.read(self.transcoder)
        return (yield from self._many(dict.fromkeys(self._keys(keys), plan), self._quiet(quiet)))

    def _store_multi(self, mode: str, items: Any, ttl: Any, fmt: Any) -> Flow[MultiResult]:
        fmt = self._format(fmt)
        plans = {
            key: ops.store(mode, value, fmt, ttl, None, self.transcoder)
            for key, value in self._items(items).items()
        }
        yield from self._index(ttl)
        return (yield from self._many(plans))

    @operation
    def set_multi(
        self, items: Mapping[str, Any], ttl: float = 0, format: int | None = None
    ) -> Flow:
        return (yield from self._store_multi("set", items, ttl, format))

    @operation
    def add_multi(
        self, items: Mapping[str, Any], ttl: float = 0, format: int | None = None
    ) -> Flow:
        return (yield from self._store_multi("add", items, ttl, format))

    @operation
    def replace_multi(
        self, items: Mapping[str, Any], ttl: float = 0, format: int | None = None
    ) -> Flow:
        return (yield from self._store_multi("replace", items, ttl, format))

    @operation
    def delete_multi(self, keys: Iterable[str], quiet: bool | None = None) -> Flow[MultiResult]:
        plan = ops.delete(None)
        return (yield from self._many(dict.fromkeys(self._keys(keys), plan), self._quiet(quiet)))

    @operation
    def touch_multi(self, keys: Iterable[str], ttl: float = 0) -> Flow[MultiResult]:
        plan = ops.touch(ttl)
        yield from self._index(ttl)
        return (yield from self._many(dict.fromkeys(self._keys(keys), plan)))

    def _counter_multi(self, keys: Any, delta: int, initial: Any, ttl: Any) -> Flow[MultiResult]:
        plan = ops.counter(delta, initial, ttl)
        yield from self._index(ttl)
        return (yield from self._many(dict.fromkeys(self._keys(keys), plan)))

    @operation
    def incr_multi(
        self, keys: Iterable[str], amount: int = 1, initial: int | None = None, ttl: float = 0
    ) -> Flow[MultiResult]:
        return (yield from self._counter_multi(keys, _amount(amount), initial, ttl))

    @operation
    def decr_multi(
        self, keys: Iterable[str], amount: int = 1, initial: int | None = None, ttl: float = 0
    ) -> Flow[MultiResult]:
        return (yield from self._counter_multi(keys, -_amount(amount), initial, ttl))

    @operation
    def append_multi(self, items: Mapping[str, str | bytes]) -> Flow[MultiResult]:
        plans = {k: ops.concat(v, False, None) for k, v in self._items(items).items()}
        return (yield from self._many(plans))

    @operation
    def prepend_multi(self, items: Mapping[str, str | bytes]) -> Flow[MultiResult]:
        plans = {k: ops.concat(v, True, None) for k, v in self._items(items).items()}
        return (yield from self._many(plans))

    @operation
    def lock_multi(self, keys: Iterable[str], ttl: float = 0) -> Flow[MultiResult]:
        plan = ops.lock(ttl, self.transcoder)
        return (yield from self._many(dict.fromkeys(self._keys(keys), plan)))

    @operation
    def unlock_multi(self, items: Mapping[str, Any]) -> Flow[MultiResult]:
        """Unlock each key with its cas (or the Result of its lock)."""
        plans = {
            key: ops.unlock(cas.cas if isinstance(cas, Result) else cas)
            for key, cas in self._items(items).items()
        }
        return (yield from self._many(plans))

    # -- views and design documents

    def query(
        self,
        design: str,
        view: str,
        streaming: bool = False,
        page_size: int | None = None,
        **view_options: Any,
    ) -> Iterator[ViewRow] | AsyncIterator[ViewRow]:
        """The rows of view ``design/view``: an iterator, or in the async face an async one.

        Without ``streaming`` or ``page_size``, one request. With them, pages of
        ``page_size`` rows (1,000 when only streaming) that follow each other by position
        (see ``views``), holding one page at a time. ``view_options`` are CouchDB's
        (``include_docs=True`` makes each row's ``doc`` a Result of its value).
        """
        if streaming and page_size is None:
            page_size = views.DEFAULT_PAGE
        database = self._database()
        pager = views.Pager(database, design, view, page_size, dict(view_options), self.transcoder)
        if isinstance(database, blocking.Database):
            return self._rows(pager)
        return self._async_rows(pager)

    @operation
    def _page(self, pager: views.Pager) -> Flow[list[ViewRow]]:
        return (yield from pager.page())

    def _rows(self, pager: views.Pager) -> Iterator[ViewRow]:
        while not pager.done:
            yield from self._page(pager)

    async def _async_rows(self, pager: views.Pager) -> AsyncIterator[ViewRow]:
        while not pager.done:
            for row in await self._page(pager):
                yield row

    @operation
    def design_create(self, name: str, ddoc: Any, use_devmode: bool = True) -> Flow[Result]:
        """Write design document ``name`` (``dev_name`` in development mode)."""
        return (yield from views.design_create(self._database(), name, ddoc, use_devmode))

    @operation
    def design_get(self, name: str, use_devmode: bool = True) -> Flow[Result]:
        return (yield from views.design_get(self._database(), name, use_devmode))

    @operation
    def design_delete(self, name: str, use_devmode: bool = True) -> Flow[Result]:
        return (yield from views.design_delete(self._database(), name, use_devmode))

    @operation
    def design_publish(self, name: str) -> Flow[Result]:
        """Make development design ``dev_name`` the production ``name``; dev is removed."""
        return (yield from views.design_publish(self._database(), name))

    # -- expiry

    @operation
    def reap(self, now: float | None = None) -> Flow[int]:
        """Delete the documents of keys expired by ``now`` through the expiry index; how
        many. It does not install the index: this Bucket's first write with a ttl does, when
        its credentials may write design documents (a database admin's)."""
        return (yield from expiry.reap(self._database(), now))


def _amount(amount: Any) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ArgumentError(f"amount must be an int >= 0, not {amount!r}")
    return amount
