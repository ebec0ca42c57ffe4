"""Bad requests for settee's own routes, generated (hypothesis) from its OpenAPI document.

Each request carries at least one fault that CouchDB refuses, so that it may change nothing
however the rest of it is drawn: an option that does not parse, an illegal database name or
document id, a database that does not exist, a body that is not JSON, not an object or not
of its schema, a body over the limit, a stale rev, a delete without one, or a method no route
takes (PATCH); a request that writes nothing may carry odd input only (unknown options, odd
credentials). The rest of the request is drawn too, valid or odd (options, headers, content
types, credentials, bodies), and so reaches deeper than the fault alone would.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import ujson
from hypothesis import strategies as st

from service.openapi import document

STALE_REV = "1-" + "0" * 32
MISSING_DB = "fuzz-missing-db"


@dataclass(frozen=True)
class Target:
    """What the fuzzed requests may name: a database holding ``docs`` (with an attachment
    ``attachment`` on the first one), a design document with ``view``, and its limit."""

    db: str
    docs: tuple[str, ...]
    attachment: str
    ddoc: str
    view: str
    local: str
    max_body_size: int


@dataclass(frozen=True)
class Operation:
    """One method of one path of the document, with its parameters and body schema."""

    template: str
    method: str
    parameters: tuple[dict[str, Any], ...]
    body: dict[str, Any] | None
    body_type: str | None

    @property
    def writes(self) -> bool:
        return self.method in ("put", "post", "delete")

    def path_parameter(self, name: str) -> bool:
        return any(p["in"] == "path" and p["name"] == name for p in self.parameters)


@dataclass
class BadRequest:
    """A generated request, and the faults it was drawn with (to read a failure by)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    anonymous: bool = False
    faults: tuple[str, ...] = ()


def resolve(spec: Any) -> Any:
    """``spec`` with its ``$ref``s to the document's components replaced, recursively."""
    if isinstance(spec, dict):
        if "$ref" in spec:
            node: Any = document()
            for part in spec["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            return resolve(node)
        return {key: resolve(value) for key, value in spec.items()}
    if isinstance(spec, list):
        return [resolve(value) for value in spec]
    return spec


def operations() -> list[Operation]:
    """Every operation on a route settee handles itself (not the relayed rest)."""
    found = []
    for template, item in document()["paths"].items():
        if item.get("x-settee-passthrough"):
            continue
        shared = resolve(item.get("parameters", []))
        for method in ("get", "head", "post", "put", "delete"):
            if method not in item:
                continue
            operation = resolve(item[method])
            body = operation.get("requestBody", {}).get("content", {})
            body_type = next(iter(body), None)
            found.append(
                Operation(
                    template,
                    method,
                    tuple(shared + operation.get("parameters", [])),
                    body[body_type]["schema"] if body_type else None,
                    body_type,
                )
            )
    return found


# -- values

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
SHORT_TEXT = st.text(max_size=12)


def _parses(text: str) -> bool:
    try:
        ujson.loads(text)
    except ValueError:
        return False
    return True


NOT_JSON = st.sampled_from(["{", "not-json", "[1,", "{'a': 1}", "tru", ""]) | SHORT_TEXT.filter(
    lambda text: not _parses(text)
)


def _json_text(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    return values.map(lambda value: json.dumps(value))


def good_value(parameter: dict[str, Any]) -> st.SearchStrategy[str]:
    """A value of ``parameter`` that settee takes (or one it ignores, for free text)."""
    if "content" in parameter:
        schema = parameter["content"]["application/json"]["schema"]
        kind = schema.get("type")
        if kind == "array":
            return _json_text(st.lists(JSON_VALUES, max_size=3))
        if kind == "object":
            return _json_text(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3))
        return _json_text(JSON_VALUES)
    return _schema_value(parameter["schema"])


def _schema_value(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "anyOf" in schema:
        return st.one_of([_schema_value(choice) for choice in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    if schema.get("type") == "boolean":
        return st.sampled_from(["true", "false"])
    if schema.get("type") == "integer":
        return st.integers(0, 10**20).map(str)
    if "pattern" in schema:  # a rev
        return st.from_regex(r"\A[0-9]{1,3}-[0-9a-f]{0,32}\Z")
    return SHORT_TEXT


def bad_value(parameter: dict[str, Any]) -> st.SearchStrategy[str] | None:
    """A value of ``parameter`` that settee must refuse (400), or None if it takes any."""
    if "content" in parameter:
        kind = parameter["content"]["application/json"]["schema"].get("type")
        if kind == "array":
            return NOT_JSON | st.sampled_from(["{}", "1", '"a"', "null", "true"])
        if kind == "object":
            return NOT_JSON | st.sampled_from(["[]", "1", '"a"', "null"])
        return NOT_JSON
    schema = parameter["schema"]
    if "anyOf" in schema:  # a count, or "true"
        return SHORT_TEXT.filter(lambda text: not text.isdigit() and text != "true")
    if "enum" in schema or "const" in schema:
        allowed = schema.get("enum", [schema.get("const")])
        return SHORT_TEXT.filter(lambda text: text not in allowed)
    if schema.get("type") == "boolean":
        return SHORT_TEXT.filter(lambda text: text not in ("true", "false"))
    if schema.get("type") == "integer":
        return st.sampled_from(["-1", "abc", "1.5", " 1", "1e3", "0x1"]) | SHORT_TEXT.filter(
            lambda text: not text.isdigit()
        )
    if "pattern" in schema:  # a rev: its generation, a dash
        return st.sampled_from(["abc", "-1", "1", "a-1", ""]) | SHORT_TEXT.filter(
            lambda text: not text[:1].isdigit() or "-" not in text
        )
    return None


# -- names

BAD_DB_NAMES = st.sampled_from(
    ["Bad%20Name", "1db", "UPPER", "a%20b", "a" * 239, "%FF%FE", "db%00", "$db", "-db"]
) | st.text(min_size=1, max_size=10).filter(lambda name: not name[:1].islower()).map(
    lambda name: quote(name, safe="")
).filter(lambda name: not name.startswith("_"))

BAD_DOC_IDS = st.sampled_from(["_bad", "_", "_x%20y", "%FF", "_xdesign%2Fa"]) | (
    SHORT_TEXT.map(lambda suffix: "_x" + quote(suffix, safe=""))
)


def _segment(names: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return names.map(lambda name: quote(name, safe=""))


# Headers a client may send that settee must not trip over.
ODD_HEADERS = st.sampled_from(
    [
        ("Accept", "multipart/mixed"),
        ("Accept", "garbage/*;q=x"),
        ("Accept-Encoding", "gzip"),
        ("X-Forwarded-For", "not an address"),
        ("X-Forwarded-Proto", "gopher"),
        ("Origin", "http://elsewhere.example"),
        ("Cookie", "AuthSession=garbage; other=1"),
        ("X-Auth-CouchDB-UserName", "nobody"),
        ("X-Auth-CouchDB-Roles", "_admin"),
        ("Connection", "Authorization"),
        ("Range", "bytes=5-1"),
    ]
)

CREDENTIALS = st.sampled_from(
    [
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"nobody:wrong").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer",
        "Bearer not.a.jwt",
        "Digest x",
        "",
    ]
)


# -- bodies


def _document() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.text(max_size=6).filter(lambda key: not key.startswith("_"))
    return st.dictionaries(keys, JSON_VALUES, max_size=3)


WRONG_TYPES = st.sampled_from([[1], {"a": 1}, 5, 1.5, True])


def _violations(operation: Operation) -> list[st.SearchStrategy[Any]]:
    """JSON bodies that break the operation's schema in a way CouchDB refuses."""
    properties = (operation.body or {}).get("properties", {})
    found: list[st.SearchStrategy[Any]] = []
    if "_rev" in properties:  # a document
        found.append(st.builds(lambda doc, rev: {**doc, "_rev": rev}, _document(), WRONG_TYPES))
        bad_rev = st.sampled_from(["abc", "x-1", "-"])
        found.append(st.builds(lambda doc, rev: {**doc, "_rev": rev}, _document(), bad_rev))
        if operation.method == "post":
            ids = WRONG_TYPES | BAD_DOC_IDS.filter(lambda doc_id: "%" not in doc_id)
            found.append(st.builds(lambda doc, doc_id: {**doc, "_id": doc_id}, _document(), ids))
    if "new_edits" in properties:  # _bulk_docs
        docs = st.lists(_document(), max_size=3)
        found.append(docs.map(lambda docs: {"documents": docs}))
        found.append(WRONG_TYPES.map(lambda docs: {"docs": docs}))
        found.append(
            st.lists(JSON_VALUES.filter(lambda v: not isinstance(v, dict)), min_size=1).map(
                lambda docs: {"docs": docs}
            )
        )
        flag = st.sampled_from(["new_edits", "all_or_nothing"])
        not_bool = st.sampled_from(["true", 1, 0, None, [], "no"])
        found.append(
            st.builds(lambda docs, name, value: {"docs": docs, name: value}, docs, flag, not_bool)
        )
        bad_doc = st.sampled_from(
            [{"_id": "_bad"}, {"_id": 5}, {"_rev": "abc"}, {"_id": "x", "_rev": 7}]
        )
        found.append(
            st.builds(
                lambda docs, bad, at: {"docs": [*docs[:at], bad, *docs[at:]]},
                docs,
                bad_doc,
                st.integers(0, 3),
            )
        )
    if operation.template.endswith("_bulk_get"):
        found.append(st.just({}))
        found.append(WRONG_TYPES.map(lambda docs: {"docs": docs}))
        item = st.sampled_from(
            [{}, {"rev": "1-a"}, {"id": 5}, {"id": None}, {"id": ["a"]}, 5, "doc"]
        )
        found.append(st.lists(item, min_size=1, max_size=3).map(lambda docs: {"docs": docs}))
    if "keys" in properties:
        found.append(
            st.sampled_from(["a", 1, {"a": 1}, None, True]).map(lambda keys: {"keys": keys})
        )
    return found


def bad_json_body(operation: Operation) -> st.SearchStrategy[bytes]:
    """A body that is not JSON, not an object, or breaks the schema."""
    not_json = NOT_JSON.map(str.encode) | st.sampled_from([b"\xff\xfe", b'{"a": "\xff"}'])
    not_object = st.one_of(
        st.lists(JSON_VALUES, max_size=3), st.none(), st.integers(), st.text(max_size=6)
    ).map(lambda value: json.dumps(value).encode())
    broken = [v.map(lambda value: json.dumps(value).encode()) for v in _violations(operation)]
    return st.one_of(not_json, not_object, *broken)


def good_body(operation: Operation, target: Target) -> st.SearchStrategy[bytes]:
    """A body of the operation's schema (the request carries a fault elsewhere)."""
    if operation.body_type != "application/json":
        return st.binary(max_size=64)
    properties = operation.body.get("properties", {})
    if "new_edits" in properties:
        value: st.SearchStrategy[Any] = st.fixed_dictionaries(
            {"docs": st.lists(_document(), max_size=3)},
            optional={"new_edits": st.booleans(), "all_or_nothing": st.booleans()},
        )
    elif operation.template.endswith("_bulk_get"):
        ids = st.sampled_from(target.docs) | st.text(min_size=1, max_size=6).filter(
            lambda doc_id: not doc_id.startswith("_")
        )
        value = st.fixed_dictionaries(
            {"docs": st.lists(st.fixed_dictionaries({"id": ids}), max_size=3)}
        )
    elif "keys" in properties:
        value = st.fixed_dictionaries({}, optional={"keys": st.lists(JSON_VALUES, max_size=3)})
    elif operation.template.endswith("_security"):
        names = st.fixed_dictionaries({"names": st.lists(st.text(max_size=5), max_size=2)})
        value = st.fixed_dictionaries({}, optional={"admins": names, "members": names})
    else:
        value = _document()
    return value.map(lambda v: json.dumps(v).encode())


# -- requests

# The path parameters that name a document with a revision tree, and the target's document
# each names. A ``_local`` document has none: as in CouchDB 3, a stale rev is no conflict.
DOCUMENT_PARAMETERS = {"docid": "docs", "ddoc": "ddoc"}


def _names_document(operation: Operation) -> str | None:
    if operation.template.endswith("/_view/{view}"):
        return None
    return next((name for name in DOCUMENT_PARAMETERS if operation.path_parameter(name)), None)


def faults_of(operation: Operation) -> list[str]:
    """The faults this operation's requests can carry, each one CouchDB refuses."""
    faults = []
    if operation.path_parameter("db"):
        faults.append("bad_db")
        # Creating or deleting the missing database would hide what made it exist.
        if operation.template != "/{db}" or operation.method not in ("put", "delete"):
            faults.append("missing_db")
    if operation.path_parameter("docid"):
        faults.append("bad_docid")
    if any(bad_value(p) is not None for p in operation.parameters if p["in"] == "query"):
        faults.append("bad_option")
    if operation.body_type == "application/json":
        faults.append("bad_body")
    if operation.body_type is not None:
        faults.append("too_large")
    if operation.method in ("put", "delete") and _names_document(operation):
        faults.append("stale_rev")
        if operation.method == "delete":
            faults.append("no_rev")
    if operation.template == "/_settee/token":
        faults.append("odd_credentials")  # a token writes nothing
    if not faults:
        faults.append("odd_query")  # a read that takes no input: any input is bad input
    faults.append("odd_method")  # PATCH, which no route of settee's (nor CouchDB) takes
    return faults


def _path(draw: st.DrawFn, operation: Operation, target: Target, faults: set[str]) -> str:
    existing = "stale_rev" in faults or "no_rev" in faults
    names = st.text(min_size=1, max_size=8)
    doc_ids = names.filter(lambda doc_id: not doc_id.startswith("_"))
    values = {
        "db": target.db,
        "docid": _segment(st.sampled_from([*target.docs, "nope"]) | doc_ids),
        "ddoc": _segment(st.sampled_from([target.ddoc, "nope"]) | names),
        "localid": _segment(st.sampled_from([target.local, "nope"]) | names),
        "view": _segment(st.sampled_from([target.view, "nope"]) | names),
        "attachment": st.sampled_from([target.attachment, "nope.txt"])
        | _segment(names).filter(lambda name: not name.startswith("_")),
    }
    if "bad_db" in faults:
        values["db"] = BAD_DB_NAMES
    elif "missing_db" in faults:
        values["db"] = MISSING_DB
    if "bad_docid" in faults:
        values["docid"] = BAD_DOC_IDS
    elif existing:
        named = _names_document(operation) or "docid"
        held = getattr(target, DOCUMENT_PARAMETERS[named])
        values[named] = held[0] if isinstance(held, tuple) else held
    path = operation.template
    for name, value in values.items():
        if "{" + name + "}" in path:
            path = path.replace(
                "{" + name + "}", draw(value) if not isinstance(value, str) else value
            )
    return path


def _query(draw: st.DrawFn, operation: Operation, faults: set[str]) -> list[tuple[str, str]]:
    options = [p for p in operation.parameters if p["in"] == "query"]
    query: list[tuple[str, str]] = []
    if "bad_option" in faults:
        refusable = [p for p in options if bad_value(p) is not None]
        bad = draw(st.sampled_from(refusable))
        options = [p for p in options if p["name"] != bad["name"]]
        query.append((bad["name"], draw(bad_value(bad))))
    if "stale_rev" in faults or "no_rev" in faults:
        options = [p for p in options if p["name"] != "rev"]
    if options:
        chosen = draw(st.lists(st.sampled_from(options), max_size=3, unique_by=lambda p: p["name"]))
        query += [(parameter["name"], draw(good_value(parameter))) for parameter in chosen]
    if "odd_query" in faults or draw(st.booleans()):
        query += draw(st.lists(st.tuples(SHORT_TEXT, SHORT_TEXT), min_size=1, max_size=2))
    return draw(st.permutations(query))


ETAGS = st.sampled_from(['"1-abc"', "*", "garbage", '"', 'W/"2-x"', ""])


def _headers(draw: st.DrawFn, operation: Operation, faults: set[str]) -> dict[str, str]:
    headers = {
        parameter["name"]: draw(ETAGS)
        for parameter in operation.parameters
        if parameter["in"] == "header" and draw(st.booleans())
    }
    if "stale_rev" in faults or "no_rev" in faults:
        headers.pop("If-Match", None)
    if "odd_credentials" in faults:
        if draw(st.booleans()):
            headers["Authorization"] = draw(CREDENTIALS)
    elif draw(st.integers(0, 9)) == 0:
        headers["Authorization"] = draw(CREDENTIALS)
    headers.update(draw(st.lists(ODD_HEADERS, max_size=2)))
    return headers


@st.composite
def bad_requests(draw: st.DrawFn, operation: Operation, target: Target) -> BadRequest:
    """One bad request for ``operation``: one or two of its faults, the rest drawn freely."""
    faults = draw(st.sets(st.sampled_from(faults_of(operation)), min_size=1, max_size=2))
    path = _path(draw, operation, target, faults)
    query = _query(draw, operation, faults)
    headers = _headers(draw, operation, faults)
    if "stale_rev" in faults:
        if draw(st.booleans()):
            query.append(("rev", STALE_REV))
        else:
            headers["If-Match"] = f'"{STALE_REV}"'
    if query:
        path += "?" + urlencode(query)
    body = None
    if operation.body_type is not None:
        if "too_large" in faults:
            body = b"x" * (target.max_body_size + draw(st.integers(1, 1024)))
        elif "bad_body" in faults:
            body = draw(bad_json_body(operation))
        else:
            body = draw(good_body(operation, target))
        types = [
            "application/json",
            "text/plain",
            "application/octet-stream",
            "image/png",
            "multipart/related; boundary=x",
        ]
        headers["Content-Type"] = draw(st.sampled_from(types))
    anonymous = "odd_credentials" in faults and "Authorization" not in headers
    method = "PATCH" if "odd_method" in faults else operation.method.upper()
    return BadRequest(method, path, headers, body, anonymous, tuple(sorted(faults)))


def any_bad_request(target: Target) -> st.SearchStrategy[BadRequest]:
    """A bad request for any operation on a route settee handles. The operations that take
    input are drawn three times as often as those that take none (``/_up``, ``/``…)."""
    weighted = [
        operation
        for operation in operations()
        for _ in range(1 if "odd_query" in faults_of(operation) else 3)
    ]
    return st.sampled_from(weighted).flatmap(lambda operation: bad_requests(operation, target))
