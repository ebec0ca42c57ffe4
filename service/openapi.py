"""The OpenAPI 3.1 document of settee's own routes, served at ``GET /_settee/openapi.json``.

Written by hand, as data: the routes settee handles itself (``service.app.routes``), each with
the methods its handler implements, their options as ``service.options`` parses them, and
their bodies as the handlers check them. Everything else is relayed to the backend, and is
described once, generically, as ``/{path}`` (marked ``x-settee-passthrough``).

``tests/test_openapi.py`` holds it to the route table both ways and to the OpenAPI schema;
``tests/test_fuzz.py`` generates bad requests from it.
"""

from __future__ import annotations

import functools
from importlib.metadata import version
from typing import Any

JSON = "application/json"

Spec = dict[str, Any]


def _ref(kind: str, name: str) -> Spec:
    return {"$ref": f"#/components/{kind}/{name}"}


def _path(name: str, example: str, schema: Spec | None = None, description: str = "") -> Spec:
    parameter = {"name": name, "in": "path", "required": True, "example": example}
    parameter["schema"] = schema or {"type": "string"}
    if description:
        parameter["description"] = description
    return parameter


def _query(name: str, schema: Spec, description: str = "") -> Spec:
    parameter = {"name": name, "in": "query", "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _json_query(name: str, schema: Spec) -> Spec:
    """An option whose value is JSON (``key=%22a%22``), as OpenAPI describes one."""
    return {"name": name, "in": "query", "content": {JSON: {"schema": schema}}}


def _header(name: str, schema: Spec, description: str = "") -> Spec:
    parameter = {"name": name, "in": "header", "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def _json_body(schema: Spec) -> Spec:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _answers(ok: dict[str, str], *errors: int) -> Spec:
    """Responses: each success status with its component, each error status as CouchDB's."""
    responses: Spec = {status: _ref("responses", name) for status, name in ok.items()}
    responses.update({str(status): _ref("responses", "Error") for status in errors})
    return responses


def _headers_only(**statuses: str) -> Spec:
    return {status.removeprefix("s"): {"description": text} for status, text in statuses.items()}


BOOLEAN: Spec = {"type": "boolean"}
COUNT: Spec = {"type": "integer", "minimum": 0}
TEXT: Spec = {"type": "string"}
ANY_JSON: Spec = {}

DB = _path(
    "db",
    "db",
    {"type": "string", "pattern": "^[a-z][a-z0-9_$()+/-]*$", "maxLength": 238},
    "a database: lowercase letters, digits and `_$()+-/`, starting with a letter; or one of "
    "`_users`, `_replicator`, `_global_changes`",
)
REV = _query("rev", _ref("schemas", "Rev"))
BATCH = _query("batch", {"const": "ok"})
IF_MATCH = _header("If-Match", TEXT, "the quoted rev")
IF_NONE_MATCH = _header("If-None-Match", TEXT, "quoted revs, or `*`")

VIEW_OPTIONS: list[Spec] = [
    *(_json_query(name, ANY_JSON) for name in ("key", "startkey", "start_key", "endkey")),
    _json_query("end_key", ANY_JSON),
    _json_query("keys", {"type": "array"}),
    *(
        _query(name, TEXT)
        for name in ("startkey_docid", "start_key_doc_id", "endkey_docid", "end_key_doc_id")
    ),
    *(
        _query(name, BOOLEAN)
        for name in (
            "inclusive_end",
            "descending",
            "include_docs",
            "conflicts",
            "attachments",
            "att_encoding_info",
            "reduce",
            "group",
            "update_seq",
            "sorted",
            "stable",
        )
    ),
    *(_query(name, COUNT) for name in ("limit", "skip", "group_level")),
    _query("stale", {"enum": ["ok", "update_after"]}),
    _query("update", {"enum": ["true", "false", "lazy"]}),
]

DOCUMENT_OPTIONS: list[Spec] = [
    REV,
    *(
        _query(name, BOOLEAN)
        for name in (
            "revs",
            "revs_info",
            "conflicts",
            "deleted_conflicts",
            "attachments",
            "att_encoding_info",
            "local_seq",
            "latest",
            "meta",
        )
    ),
    _json_query("atts_since", {"type": "array"}),
]

CHANGES_OPTIONS: list[Spec] = [
    _query(
        "feed",
        {"enum": ["normal", "longpoll", "continuous", "live", "eventsource", "websocket"]},
        "`websocket` is settee's own feed, over a WebSocket upgrade",
    ),
    _query("since", TEXT, "a seq the backend issued (opaque), or `now`"),
    _query("limit", COUNT),
    *(_query(name, BOOLEAN) for name in ("descending", "include_docs", "conflicts", "attachments")),
    _query("style", {"enum": ["main_only", "all_docs"]}),
    _query("filter", TEXT),
    _json_query("doc_ids", {"type": "array"}),
    _json_query("selector", {"type": "object"}),
    _query("view", TEXT),
    _query(
        "heartbeat",
        {"anyOf": [COUNT, {"const": "true"}]},
        "milliseconds, or `true` for 60 s",
    ),
    _query("timeout", COUNT, "milliseconds"),
    _query("latency", COUNT, "milliseconds a WebSocket subscriber's rows are coalesced for"),
    _query("token", TEXT, "a one-time token from `POST /_settee/token`"),
]

KEYS_BODY = _json_body({"type": "object", "properties": {"keys": {"type": "array"}}})


def _rows(summary: str, *, keys: bool) -> Spec:
    """A view-like query: the view options, rows streamed; a POST takes ``keys`` too."""
    operation: Spec = {
        "summary": summary,
        "parameters": VIEW_OPTIONS,
        "responses": _answers({"200": "Rows"}, 400, 404),
    }
    if keys:
        operation["requestBody"] = KEYS_BODY
    return operation


def _document_item(id_name: str, example: str, description: str) -> Spec:
    """A document's routes: ``/{db}/{docid}``, and the design and local documents'."""
    return {
        "parameters": [DB, _path(id_name, example, _ref("schemas", "DocId"), description)],
        "get": {
            "summary": "A document; `ETag` is its quoted rev, and `If-None-Match` gives 304",
            "parameters": [*DOCUMENT_OPTIONS, IF_NONE_MATCH],
            "responses": {
                **_answers({"200": "Object"}, 400, 404),
                "304": {"description": "not modified"},
            },
        },
        "head": {
            "summary": "200 with the `ETag`, or 404",
            "parameters": [IF_NONE_MATCH],
            "responses": _headers_only(s200="it exists", s304="not modified", s404="missing"),
        },
        "put": {
            "summary": "Create or update. The rev comes from `_rev`, `?rev=` or `If-Match` (400 "
            "when they differ); `If-None-Match: *` only creates",
            "parameters": [REV, BATCH, IF_MATCH, _header("If-None-Match", {"const": "*"})],
            "requestBody": _json_body(_ref("schemas", "Document")),
            "responses": _answers({"201": "Saved", "202": "Saved"}, 400, 404, 409, 412, 413),
        },
        "delete": {
            "summary": "Delete; the rev comes from `?rev=` or `If-Match` (409 without one)",
            "parameters": [REV, BATCH, IF_MATCH],
            "responses": _answers({"200": "Saved"}, 400, 404, 409),
        },
    }


PATHS: Spec = {
    "/": {
        "get": {
            "summary": "CouchDB's welcome, with the versions of settee and of the backend",
            "responses": {
                "200": {
                    "description": "welcome",
                    "content": {JSON: {"schema": _ref("schemas", "Welcome")}},
                },
                "503": _ref("responses", "Error"),
            },
        }
    },
    "/_up": {
        "get": {
            "summary": "Liveness: 200 while the process serves",
            "responses": _answers({"200": "Status"}),
        },
        "head": {"summary": "Liveness, headers only", "responses": _headers_only(s200="serving")},
    },
    "/_ready": {
        "get": {
            "summary": "Readiness: 200 when the backend answers, 503 with the reason when not",
            "responses": _answers({"200": "Status", "503": "Status"}),
        },
        "head": {
            "summary": "Readiness, headers only",
            "responses": _headers_only(s200="ready", s503="not ready"),
        },
    },
    "/_metrics": {
        "get": {
            "summary": "Prometheus text: requests by route, method and status; latency; in flight; "
            "backend errors",
            "responses": {
                "200": {"description": "metrics", "content": {"text/plain": {"schema": TEXT}}}
            },
        },
        "head": {"summary": "The metrics' headers", "responses": _headers_only(s200="metrics")},
    },
    "/_all_dbs": {
        "get": {
            "summary": "The databases' names (the exposed ones only, when the policy narrows them)",
            "responses": {
                "200": {
                    "description": "names",
                    "content": {JSON: {"schema": {"type": "array", "items": TEXT}}},
                },
                "401": _ref("responses", "Error"),
            },
        }
    },
    "/_settee/token": {
        "post": {
            "summary": "A one-time token standing for the request's credentials, for a feed that "
            "cannot send headers (a browser's WebSocket or EventSource)",
            "responses": {
                "200": {
                    "description": "the token",
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "required": ["ok", "token", "expires_in"],
                                "properties": {
                                    "ok": {"const": True},
                                    "token": TEXT,
                                    "expires_in": {"type": "number"},
                                },
                            }
                        }
                    },
                },
                "401": _ref("responses", "Error"),
            },
        }
    },
    "/_settee/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "this document",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        },
        "head": {"summary": "This document's headers", "responses": _headers_only(s200="found")},
    },
    "/{db}": {
        "parameters": [DB],
        "get": {
            "summary": "A database's information",
            "responses": _answers({"200": "Object"}, 400, 404),
        },
        "head": {
            "summary": "200 if the database exists, else 404",
            "responses": _headers_only(s200="it exists", s404="missing"),
        },
        "put": {"summary": "Create a database", "responses": _answers({"201": "Ok"}, 400, 412)},
        "delete": {"summary": "Delete a database", "responses": _answers({"200": "Ok"}, 400, 404)},
        "post": {
            "summary": "Create a document with a generated id (or its `_id`): 201 with `Location`",
            "parameters": [BATCH],
            "requestBody": _json_body(_ref("schemas", "Document")),
            "responses": _answers({"201": "Saved", "202": "Saved"}, 400, 404, 409, 413),
        },
    },
    "/{db}/_all_docs": {
        "parameters": [DB],
        "get": _rows(
            "Every document's id and rev, with the view options; rows streamed", keys=False
        ),
        "post": _rows("`_all_docs` for the body's `keys`", keys=True),
    },
    "/{db}/_bulk_docs": {
        "parameters": [DB],
        "post": {
            "summary": "Write many documents: one result per document",
            "requestBody": _json_body(
                {
                    "type": "object",
                    "required": ["docs"],
                    "properties": {
                        "docs": {"type": "array", "items": _ref("schemas", "Document")},
                        "new_edits": BOOLEAN,
                        "all_or_nothing": BOOLEAN,
                    },
                }
            ),
            "responses": {
                "201": {
                    "description": "one result per document",
                    "content": {JSON: {"schema": {"type": "array", "items": {"type": "object"}}}},
                },
                **_answers({}, 400, 404, 413),
            },
        },
    },
    "/{db}/_bulk_get": {
        "parameters": [DB],
        "post": {
            "summary": "Read many documents by id (and rev): one result per request",
            "parameters": [_query(name, BOOLEAN) for name in ("revs", "attachments", "latest")],
            "requestBody": _json_body(
                {
                    "type": "object",
                    "required": ["docs"],
                    "properties": {
                        "docs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id"],
                                "properties": {
                                    "id": _ref("schemas", "DocId"),
                                    "rev": _ref("schemas", "Rev"),
                                },
                            },
                        }
                    },
                }
            ),
            "responses": _answers({"200": "Object"}, 400, 404),
        },
    },
    "/{db}/_changes": {
        "parameters": [DB],
        "get": {
            "summary": "Every feed, from settee's hub: normal, longpoll, continuous (live), "
            "eventsource, and settee's own WebSocket feed",
            "parameters": CHANGES_OPTIONS,
            "responses": {
                "101": {"description": "the WebSocket feed (`feed=websocket`)"},
                "200": {"description": "the feed"},
                **_answers({}, 400, 401, 403, 404, 503),
            },
        },
    },
    "/{db}/_security": {
        "parameters": [DB],
        "put": {
            "summary": "Relayed to the backend; once it has changed, every subscriber of the "
            "database is authorized again",
            "requestBody": _json_body({"type": "object"}),
            "responses": _answers({"200": "Ok"}, 400, 401, 403, 404),
        },
    },
    "/{db}/_design/{ddoc}/_view/{view}": {
        "parameters": [DB, _path("ddoc", "app"), _path("view", "by_name")],
        "get": _rows("A view's rows, with every CouchDB view option; rows streamed", keys=False),
        "post": _rows("A view's rows for the body's `keys`", keys=True),
    },
    "/{db}/{docid}": _document_item(
        "docid", "doc", "a document id: only `_design/` and `_local/` ids start with `_`"
    ),
    "/{db}/_design/{ddoc}": _document_item("ddoc", "app", "a design document's name"),
    "/{db}/_local/{localid}": _document_item("localid", "checkpoint", "a local document's name"),
    "/{db}/{docid}/{attachment}": {
        "parameters": [
            DB,
            _path("docid", "doc", _ref("schemas", "DocId")),
            _path(
                "attachment",
                "notes.txt",
                {"type": "string", "pattern": "^[^_]"},
                "an attachment's name: it may contain `/`, and may not start with `_`",
            ),
        ],
        "get": {
            "summary": "An attachment, streamed, with its content type; of the revision `rev` "
            "names, else of the current one",
            "parameters": [REV],
            "responses": {
                "200": {
                    "description": "its bytes",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                **_answers({}, 400, 404),
            },
        },
        "head": {
            "summary": "An attachment's headers",
            "parameters": [REV],
            "responses": _headers_only(s200="it exists", s404="missing"),
        },
        "put": {
            "summary": "Add or replace an attachment, streamed; the rev from `?rev=` or `If-Match`",
            "parameters": [REV, IF_MATCH],
            "requestBody": {
                "required": True,
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": _answers({"201": "Saved"}, 400, 404, 409, 413),
        },
        "delete": {
            "summary": "Remove an attachment; the rev from `?rev=` or `If-Match` (409 without one)",
            "parameters": [REV, IF_MATCH],
            "responses": _answers({"200": "Saved"}, 400, 404, 409),
        },
    },
    "/{path}": {
        "x-settee-passthrough": True,
        "summary": "Everything else is CouchDB's, relayed to the backend as it is",
        "description": "Method, path, query, headers (minus hop-by-hop ones) and body are relayed "
        "and streamed both ways; the backend's status and headers come back, with `Location` "
        "pointed at settee. So are the methods a route above does not list (`COPY` too).",
        "parameters": [_path("path", "_uuids", TEXT, "any other path; it may span segments")],
        **{
            method: {"responses": {"default": {"description": "the backend's answer"}}}
            for method in ("get", "head", "post", "put", "delete")
        },
    },
}

COMPONENTS: Spec = {
    "responses": {
        "Error": {
            "description": "CouchDB's error; a 503 carries `Retry-After`",
            "content": {JSON: {"schema": _ref("schemas", "Error")}},
        },
        "Ok": {
            "description": "done",
            "content": {
                JSON: {
                    "schema": {
                        "type": "object",
                        "required": ["ok"],
                        "properties": {"ok": {"const": True}},
                    }
                }
            },
        },
        "Object": {
            "description": "a JSON object",
            "content": {JSON: {"schema": {"type": "object"}}},
        },
        "Status": {
            "description": "the status",
            "content": {
                JSON: {
                    "schema": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {"enum": ["ok", "unavailable"]},
                            "reason": TEXT,
                            "backend": {"type": "object"},
                            "nodes": {
                                "description": "in front of a cluster: each node's state",
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "properties": {
                                        "up": {"type": "boolean"},
                                        "since": {"type": "number"},
                                        "failures": {"type": "integer"},
                                    },
                                },
                            },
                        },
                    }
                }
            },
        },
        "Saved": {
            "description": "the id and its new rev (no rev when batched); `ETag` is the quoted rev",
            "content": {
                JSON: {
                    "schema": {
                        "type": "object",
                        "required": ["ok", "id"],
                        "properties": {"ok": {"const": True}, "id": TEXT, "rev": TEXT},
                    }
                }
            },
        },
        "Rows": {
            "description": "rows, streamed as they come",
            "content": {
                JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "total_rows": {"type": "integer"},
                            "offset": {"type": "integer"},
                            "rows": {"type": "array"},
                            "update_seq": {},
                        },
                    }
                }
            },
        },
    },
    "schemas": {
        "Error": {
            "type": "object",
            "required": ["error", "reason"],
            "properties": {"error": TEXT, "reason": TEXT},
        },
        "Welcome": {
            "type": "object",
            "required": ["couchdb", "settee", "version", "backend"],
            "properties": {
                "couchdb": {"const": "Welcome"},
                "settee": TEXT,
                "version": TEXT,
                "backend": {"type": "object", "properties": {"kind": TEXT, "version": TEXT}},
            },
        },
        "DocId": {"type": "string", "minLength": 1, "pattern": "^(?:[^_]|_design/|_local/)"},
        "Rev": {"type": "string", "pattern": "^[0-9]+-"},
        "Document": {
            "type": "object",
            "properties": {
                "_id": _ref("schemas", "DocId"),
                "_rev": _ref("schemas", "Rev"),
                "_deleted": BOOLEAN,
                "_attachments": {"type": "object"},
            },
        },
    },
}


@functools.cache
def document() -> Spec:
    """The whole document, with settee's version; built once."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "settee",
            "version": version("settee"),
            "summary": "An asynchronous gateway for Apache CouchDB: the routes it handles itself",
            "description": "settee serves the whole of CouchDB's API. The routes below it "
            "handles itself: it checks their input, adds CouchDB 3.4's preconditions, streams "
            "rows and fans out feeds. Every other path, and every method a route below does "
            "not list, is relayed to the backend as it is (`/{path}`). Errors are CouchDB's "
            'JSON `{"error", "reason"}`. Every route answers `OPTIONS` (a CORS preflight).',
        },
        "paths": PATHS,
        "components": COMPONENTS,
    }
