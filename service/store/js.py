"""Design documents' JavaScript, run as CouchDB's query server runs it, in V8 (``mini-racer``).

``Functions`` holds one design document's map and reduce functions (or a ``_changes`` filter
function) in a V8 context of its own. Documents go in batches (one call into V8 per batch,
JSON both ways), each one deep-frozen as couchjs seals it, with couchjs's helpers: ``emit``,
``log``, ``sum``, ``isArray``, ``toJSON``, and CommonJS ``require`` of the modules of a root
object (for map functions, the design document's ``views.lib``, as ``views/lib/…``). A
function that throws for a document skips that document, as CouchDB does; one that runs past
``TIMEOUT`` or beyond ``MEMORY`` fails the call with ``os_process_error`` and its context is
thrown away: a bad function costs its view an error, never the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from py_mini_racer import (
    JSEvalException,
    JSOOMException,
    JSTimeoutException,
    MiniRacer,
    mini_racer,
)

from ..couch.errors import HTTPError
from ..couch.protocol import decode_json, encode_json

log = logging.getLogger("settee.store")

TIMEOUT = 5.0  # seconds for one call into V8 (CouchDB's os_process_timeout)
MEMORY = 256 * 2**20  # bytes of V8 heap for one design document's context

RUNTIME = r"""
var __rows = null;
function emit(key, value) {
  __rows.push([key === undefined ? null : key, value === undefined ? null : value]);
}
function log(message) {}
function isArray(value) { return Array.isArray(value); }
function toJSON(value) { return JSON.stringify(value); }
function sum(values) {
  var total = 0;
  for (var i = 0; i < values.length; i++) total += values[i];
  return total;
}
function __seal(value) {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (var name in value) __seal(value[name]);
  }
  return value;
}
var __maps = [], __reduces = [], __filters = [], __root = {}, __modules = {};
function __resolve(names, from) {
  // A module path, relative (".", "..") to the requiring module's folder or from the root.
  var path = names[0] === "." || names[0] === ".." ? from.slice() : [];
  for (var i = 0; i < names.length; i++) {
    if (names[i] === "..") {
      if (!path.length) throw ["error", "invalid_require_path", "Object has no parent"];
      path.pop();
    } else if (names[i] !== "." && names[i] !== "") {
      path.push(names[i]);
    }
  }
  var current = __root;
  for (var j = 0; j < path.length; j++) {
    if (current === null || typeof current !== "object" || !(path[j] in current)) {
      throw ["error", "invalid_require_path", "Object has no property \"" + path[j] + "\"."];
    }
    current = current[path[j]];
  }
  if (typeof current !== "string") {
    var kind = typeof current;
    throw ["error", "invalid_require_path", "Must require a JavaScript string, not: " + kind];
  }
  return [path, current];
}
function __requirer(folder) {
  // CommonJS require() for a module in ``folder``: each module runs once, then is cached.
  return function (name) {
    var found = __resolve(String(name).split("/"), folder), id = found[0].join("/");
    if (!(id in __modules)) {
      var module = {id: id, exports: {}};
      __modules[id] = module;
      var body = (0, eval)("(function (module, exports, require) { " + found[1] + "\n})");
      body(module, module.exports, __requirer(found[0].slice(0, -1)));
    }
    return __modules[id].exports;
  };
}
var require = __requirer([]);
function __compile(source) {
  var fn = (0, eval)("(" + source.trim().replace(/;+$/, "") + ")");
  if (typeof fn !== "function") throw new TypeError("not a function: " + source.slice(0, 60));
  return fn;
}
function __define(maps, reduces, filters, root) {
  __root = root;
  __maps = maps.map(__compile);
  __reduces = reduces.map(function (s) { return s === null ? null : __compile(s); });
  __filters = filters.map(__compile);
  return true;
}
function __map(docs) {
  var out = [], errors = [];
  for (var d = 0; d < docs.length; d++) {
    var doc = __seal(docs[d]), each = [];
    for (var m = 0; m < __maps.length; m++) {
      __rows = [];
      try { __maps[m](doc); } catch (e) { __rows = []; errors.push([doc._id, m, String(e)]); }
      each.push(__rows);
    }
    out.push(each);
  }
  __rows = null;
  return JSON.stringify([out, errors]);
}
function __filter(index, docs, req) {
  var out = [];
  for (var d = 0; d < docs.length; d++) {
    out.push(!!__filters[index](__seal(docs[d]), req));
  }
  return JSON.stringify(out);
}
function __validate(index, newDoc, oldDoc, userCtx, secObj) {
  try {
    __filters[index](__seal(newDoc), __seal(oldDoc), __seal(userCtx), __seal(secObj));
    return "null";
  } catch (e) {
    if (e !== null && typeof e === "object" && !(e instanceof Error)) {
      if ("forbidden" in e) return JSON.stringify(["forbidden", e.forbidden]);
      if ("unauthorized" in e) return JSON.stringify(["unauthorized", e.unauthorized]);
      var keys = Object.keys(e);
      return JSON.stringify(["unknown_error", keys.length ? e[keys[0]] : null]);
    }
    if (e instanceof Error) return JSON.stringify([e.name, e.message]);
    return JSON.stringify(["unknown_error", e]);
  }
}
function __reduce(index, keys, values, rereduce) {
  var value = __reduces[index](keys, values, rereduce);
  return JSON.stringify(value === undefined ? null : value);
}
"""


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _js_loop() -> asyncio.AbstractEventLoop:
    """The event loop every context's calls are scheduled on, in a thread of its own.

    mini-racer binds a context to the loop running where it is made, if any: made in a
    thread that runs an event loop (a test's, or settee's in-process), its calls would wait
    on that loop, which waits on them. So every context gets this one instead."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="settee-js", daemon=True).start()
        return _loop


def _invocation(function: str, *args: Any) -> str:
    """JavaScript that calls ``function`` with ``args``: JSON is a JavaScript literal, which
    V8 reads faster than a string it must then parse."""
    return function + "(" + ",".join(encode_json(arg).decode() for arg in args) + ")"


def _new_context(stack: contextlib.ExitStack) -> MiniRacer:
    return stack.enter_context(mini_racer(_js_loop()))


class CompilationError(HTTPError):
    """A design document's function that does not compile: 400 as CouchDB answers it."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__("compilation_error", reason)


class QueryServerError(HTTPError):
    """A function that ran out of time or memory, or a reduce that threw."""

    status = 500

    def __init__(self, reason: str) -> None:
        super().__init__("os_process_error", reason)


class Functions:
    """The map and reduce functions of one design document, compiled in one V8 context."""

    def __init__(
        self,
        maps: list[str],
        reduces: list[str | None],
        names: list[str],
        filters: list[str] | None = None,
        root: dict[str, Any] | None = None,
    ) -> None:
        self._maps, self._reduces, self._names = maps, reduces, names
        self._filters = filters or []
        self._root = root or {}  # what require() finds modules in
        self._lock = threading.Lock()
        self._context: MiniRacer | None = None
        self._stack = contextlib.ExitStack()

    def _ready(self) -> MiniRacer:
        if self._context is None:
            context = _new_context(self._stack)
            context.eval(RUNTIME)
            try:
                context.eval(
                    _invocation("__define", self._maps, self._reduces, self._filters, self._root),
                    timeout_sec=TIMEOUT,
                )
            except JSTimeoutException:
                self._stack.close()
                raise QueryServerError("timeout compiling this design document") from None
            except JSEvalException as exc:
                self._stack.close()
                raise CompilationError(self._compilation_reason(exc)) from None
            self._context = context
        return self._context

    def _compilation_reason(self, exc: Exception) -> str:
        """CouchDB's reason, naming the view whose map function does not compile."""
        with contextlib.ExitStack() as stack:
            probe = _new_context(stack)
            for name, source in zip(self._names, self._maps, strict=True):
                try:
                    probe.eval("(" + source + ")", timeout_sec=TIMEOUT)
                except JSEvalException:
                    return f"Compilation of the map function in the '{name}' view failed: {exc}"
        return f"Compilation of a reduce function failed: {exc}"

    def check(self) -> None:
        """Compile the functions now: CompilationError if one does not."""
        with self._lock:
            self._ready()

    def map(self, docs: list[dict[str, Any]]) -> list[list[list[list[Any]]]]:
        """Per document, per map function, the ``[key, value]`` rows it emitted."""
        out, errors = self._call("__map", docs)
        for doc_id, index, message in errors:
            log.info("map of view %s failed for %s: %s", self._names[index], doc_id, message)
        return out

    def filter(self, index: int, docs: list[dict[str, Any]], req: dict[str, Any]) -> list[bool]:
        """Whether filter function ``index`` passes each document; one that throws fails
        the whole request, as in CouchDB (500)."""
        try:
            return self._call("__filter", index, docs, req)
        except JSEvalException as exc:
            raise QueryServerError(f"filter function failed: {exc}") from None

    def validate(
        self, index: int, new: Any, old: Any, user: dict[str, Any], security: dict[str, Any]
    ) -> tuple[str, Any] | None:
        """What validation function ``index`` (among the filters) threw at this write, as
        ``(error, reason)``, or None if it let it pass."""
        return self._call("__validate", index, new, old, user, security)

    def reduce(self, index: int, keys: list[Any] | None, values: list[Any], rereduce: bool) -> Any:
        """The reduce function of view ``index`` on ``values`` (``keys`` are ``[key, id]``
        pairs, None on a rereduce)."""
        try:
            return self._call("__reduce", index, keys, values, rereduce)
        except JSEvalException as exc:
            raise QueryServerError(f"reduce of view {self._names[index]} failed: {exc}") from None

    def _call(self, function: str, *args: Any) -> Any:
        """``function(*args)`` in V8 (``args`` are JSON values), its JSON answer decoded."""
        code = _invocation(function, *args)
        with self._lock:
            context = self._ready()
            try:
                answer = context.eval(code, timeout_sec=TIMEOUT, max_memory=MEMORY)
            except (JSTimeoutException, JSOOMException) as exc:
                self._discard()
                what = "timeout" if isinstance(exc, JSTimeoutException) else "out of memory"
                raise QueryServerError(f"{what} in a function of this design document") from None
        assert isinstance(answer, str)  # every __function returns JSON text
        return decode_json(answer)

    def _discard(self) -> None:
        self._context = None
        self._stack.close()

    def close(self) -> None:
        with self._lock:
            self._discard()
