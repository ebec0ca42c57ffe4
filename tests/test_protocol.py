"""Unit tests for the pure pieces of the client: no server, no I/O."""

from __future__ import annotations

import json

import pytest

import service.couch
from service.couch import (
    BadRequest,
    Conflict,
    ConflictResolution,
    Couch,
    Database,
    Document,
    NotFound,
    Row,
    ServerError,
    Status,
    View,
)
from service.couch.changes import Backoff, FeedState
from service.couch.config import server_url
from service.couch.documents import Headers
from service.couch.errors import HTTPError, exception_for
from service.couch.protocol import (
    Request,
    Response,
    RowParser,
    db_path,
    doc_path,
    encode_json,
    encode_options,
    error_from,
    revisions_of,
    split_lines,
    validate_db_name,
    validate_doc_id,
    view_path,
)
from service.couch.transport import Endpoint, redact


def test_public_api_is_pinned():
    assert sorted(service.couch.__all__) == sorted(
        [
            "BadRequest", "ChangesFeed", "Conflict", "ConflictResolution", "Couch",
            "CouchError", "Database", "Document", "Forbidden", "FunctionResult", "HTTPError",
            "NotFound", "PreconditionFailed", "RequestTooLarge", "Row", "ServerError",
            "ServerUnavailable", "Status", "ThreadedChangesFeed", "Unauthorized", "View",
            "defaults", "install_as_corduroy", "relax",
        ]
    )  # fmt: skip
    for name in service.couch.__all__:
        assert hasattr(service.couch, name)


@pytest.mark.parametrize("name", ["a", "abc-1", "a_b$c(d)e+f/g", "_users", "_replicator"])
def test_legal_database_names(name):
    assert validate_db_name(name) == name


@pytest.mark.parametrize("name", ["", "Bad Name", "1abc", "_private", "ABC", "a b", "a.b", None])
def test_illegal_database_names_are_refused_with_couchdbs_words(name):
    with pytest.raises(BadRequest) as caught:
        validate_db_name(name)
    assert caught.value.error == "illegal_database_name"
    assert caught.value.status == 400
    assert "Must begin with a letter." in caught.value.reason


@pytest.mark.parametrize("doc_id", ["a", "_design/x", "_local/y", "with space", "ünï"])
def test_legal_document_ids(doc_id):
    assert validate_doc_id(doc_id) == doc_id


@pytest.mark.parametrize("doc_id", ["", "_foo", "_design/", "_local/", 12, None])
def test_illegal_document_ids(doc_id):
    with pytest.raises(BadRequest) as caught:
        validate_doc_id(doc_id)
    assert caught.value.error == "illegal_docid"


def test_paths_quote_ids_but_keep_reserved_prefixes():
    assert db_path("a/b") == "/a%2Fb"
    assert doc_path("db", "x y/z") == "/db/x%20y%2Fz"
    assert doc_path("db", "_design/d d") == "/db/_design/d%20d"
    assert doc_path("db", "doc", "file name.txt") == "/db/doc/file%20name.txt"
    assert doc_path("db", "plain-id_1.2~") == "/db/plain-id_1.2~"
    assert doc_path("db", "café?#%&+") == "/db/caf%C3%A9%3F%23%25%26%2B"


@pytest.mark.parametrize("parts", [("\udc80",), ("doc", "\ud800.txt"), ("_design/\udfff",)])
def test_paths_refuse_text_that_utf8_cannot_hold(parts):
    with pytest.raises(BadRequest) as caught:
        doc_path("db", *parts)
    assert caught.value.error == "bad_request"
    assert doc_path("db", "_local/ü") == "/db/_local/%C3%BC"
    assert view_path("db", "_all_docs") == "/db/_all_docs"
    assert view_path("db", "dd/v") == "/db/_design/dd/_view/v"
    assert view_path("db", "_design/dd/_view/v") == "/db/_design/dd/_view/v"
    with pytest.raises(BadRequest):
        view_path("db", "no-slash")


def test_view_options_are_encoded_as_couchdb_expects():
    query = encode_options(
        {
            "key": "k",
            "startkey": ["a", 1],
            "keys": [1, 2],
            "descending": True,
            "reduce": False,
            "limit": 10,
            "stale": "ok",
            "skip": None,
        }
    )
    assert query == {
        "key": '"k"',
        "startkey": '["a",1]',
        "keys": "[1,2]",
        "descending": "true",
        "reduce": "false",
        "limit": "10",
        "stale": "ok",
    }


def test_list_and_dict_options_are_json_whatever_their_name():
    assert encode_options(
        {"atts_since": ["1-a", "2-b"], "open_revs": ("1-a",), "filter_args": {"k": 1}}
    ) == {"atts_since": '["1-a","2-b"]', "open_revs": '["1-a"]', "filter_args": '{"k":1}'}
    assert encode_options({"open_revs": "all", "rev": "1-a"}) == {"open_revs": "all", "rev": "1-a"}
    plain = encode_options({"key": "k", "n": 2, "flag": False}, json_options=frozenset())
    assert plain == {"key": "k", "n": "2", "flag": "false"}


def test_query_strings_quote_spaces_as_percent_20():
    assert Request("GET", "/db/_all_docs", {"key": '"a b"'}).target == (
        "/db/_all_docs?key=%22a%20b%22"
    )


@pytest.mark.parametrize("value", [{1, 2}, object(), float("nan"), b"bytes", {"a": float("inf")}])
def test_values_json_cannot_hold_are_refused_before_sending(value):
    with pytest.raises(BadRequest, match="not JSON-serialisable"):
        encode_json(value)


def test_json_keeps_unicode_and_slashes_readable():
    assert encode_json({"a/b": "ü"}) == '{"a/b":"ü"}'.encode()


def test_error_responses_map_to_one_table():
    assert exception_for(404) is NotFound
    assert exception_for(409) is Conflict
    assert exception_for(503) is ServerError
    assert exception_for(418) is HTTPError
    exc = error_from(
        Response(404, {}, b'{"error":"not_found","reason":"missing"}'), "GET http://h/db/x"
    )
    assert isinstance(exc, NotFound) and isinstance(exc, KeyError)
    assert (exc.status, exc.error, exc.reason) == (404, "not_found", "missing")
    assert str(exc) == "404 not_found: missing (GET http://h/db/x)"
    assert exc.response == {"error": "not_found", "reason": "missing"}


def test_a_per_document_error_answer_is_kept_and_summed_up_by_its_first_document():
    body = b'[{"id":"a","error":"not_implemented","reason":"no"},{"id":"b","error":"x"}]'
    exc = error_from(Response(417, {}, body), "POST http://h/db/_bulk_docs")
    assert (exc.status, exc.error, exc.reason) == (417, "not_implemented", "no")
    assert [row.id for row in exc.response] == ["a", "b"]
    assert error_from(Response(502, {}, b"<html>"), "GET http://h/").response is None
    garbled = error_from(Response(500, {}, b"<html>oops"), "GET /")
    assert isinstance(garbled, ServerError) and garbled.reason == "<html>oops"


def test_revisions_are_rebuilt_newest_first():
    doc = {"_revisions": {"start": 3, "ids": ["c", "b", "a"]}}
    assert revisions_of(doc) == ["3-c", "2-b", "1-a"]


def test_lines_are_split_across_chunks_and_blank_heartbeats_dropped():
    buffer = bytearray()
    assert split_lines(buffer, b'{"a":1}\n\n{"b"') == [b'{"a":1}']
    assert split_lines(buffer, b":2}\n") == [b'{"b":2}']
    assert buffer == b""


def test_row_parser_yields_rows_as_chunks_complete_them():
    body = (
        b'{"total_rows":3,"offset":0,"rows":[{"id":"a","key":1},{"id":"b","key":2.5},{"id":"c"}]}'
    )
    parser = RowParser()
    rows = []
    for i in range(0, len(body), 7):
        rows += parser.feed(body[i : i + 7])
    parser.close()
    assert rows == [{"id": "a", "key": 1}, {"id": "b", "key": 2.5}, {"id": "c"}]


def test_document_is_an_ordered_dict_with_attribute_access():
    doc = Document({"_id": "x", "b": 1, "a": {"nested": True}})
    assert list(doc) == ["_id", "b", "a"]
    assert doc._id == "x" and doc.a.nested is True
    doc.c = 3
    assert doc["c"] == 3
    del doc.c
    with pytest.raises(AttributeError):
        doc.c  # noqa: B018
    assert isinstance(doc, dict)


def test_view_and_rows():
    view = View(
        {
            "total_rows": 5,
            "offset": 1,
            "rows": [{"id": "a", "key": "a", "value": 1, "doc": {"_id": "a"}}],
        },
        {"limit": 1},
    )
    assert (len(view), view.total_rows, view.offset, view.options) == (1, 5, 1, {"limit": 1})
    (row,) = view
    assert (row.id, row.key, row.value, row.error) == ("a", "a", 1, None)
    assert isinstance(row.doc, Document) and row.doc._id == "a"
    reduced = Row({"key": None, "value": 7})
    assert reduced.id is None and reduced.doc is None
    assert Row({"key": "z", "error": "not_found"}).error == "not_found"


def test_rows_are_dicts_as_corduroys_were():
    row = Row({"id": "a", "key": ["2007", "11"], "value": 3})
    assert isinstance(row, dict) and row["value"] == 3
    assert "%(key)s → %(value)i" % row == "['2007', '11'] → 3"  # noqa: UP031
    assert json.loads(json.dumps([row])) == [{"id": "a", "key": ["2007", "11"], "value": 3}]


def test_headers_read_in_any_case():
    headers = Headers({"content-type": "text/csv"})
    assert headers["Content-Type"] == headers.get("CONTENT-TYPE") == "text/csv"
    assert "Content-Type" in headers and headers.get("X-None") is None
    assert Status(True, 200, {"etag": '"1-a"'}).headers["ETag"] == '"1-a"'


def test_server_urls_as_corduroy_read_them():
    assert server_url(None) == "http://127.0.0.1:5984"
    assert server_url("couch.example.com") == "http://couch.example.com:5984"
    assert server_url("couch.example.com:6984/sub") == "http://couch.example.com:6984/sub"
    assert server_url("https://couch.example.com") == "https://couch.example.com"
    assert Database("albums").url == "http://127.0.0.1:5984/albums"
    assert repr(Couch()) == "<Couch 'http://127.0.0.1:5984'>"
    assert repr(Database("albums")) == "<Database 'albums'>"


def test_a_callback_that_cannot_be_called_is_refused_before_any_request():
    with pytest.raises(TypeError, match="callback must be callable"):
        Couch("http://127.0.0.1:1").info(callback="http://elsewhere/")


def test_conflict_resolution_reads_as_corduroys():
    assert repr(ConflictResolution(None, {"a": {}, "b": {}}, {})) == "<Success: 2 docs updated>"
    assert repr(ConflictResolution(None, {}, {"b": {}, "a": {}})) == "<Conflicts: a, b>"
    assert repr(ConflictResolution(None, {}, {"second": {}})) == "<Conflict: second>"


def test_credentials_are_split_out_of_urls_and_never_shown():
    endpoint = Endpoint.parse("http://admin:s%40cret@127.0.0.1:5984/")
    assert endpoint.url == "http://127.0.0.1:5984"
    assert endpoint.auth == ("admin", "s@cret")
    assert "cret" not in repr(endpoint)
    assert endpoint.headers()["Authorization"].startswith("Basic ")
    assert redact("http://admin:secret@h:1/db") == "http://admin:***@h:1/db"
    with pytest.raises(ValueError):
        Endpoint.parse("ftp://example")


def test_feed_state_resumes_from_the_last_delivered_seq_without_comparing_seqs():
    state = FeedState("/db/_changes", {"include_docs": True}, since="0", latency=0, heartbeat=5)
    query = state.request().query
    assert query == {
        "include_docs": "true",
        "feed": "continuous",
        "since": "0",
        "heartbeat": "5000",
    }
    state.receive(b'{"seq":"2-g1AA","id":"a","changes":[]}\n{"seq":"1-g1AB","id":"b"')
    assert state.due_in(now=0.0) == 0.0
    assert state.take(now=0.0) == [("2-g1AA", [{"seq": "2-g1AA", "id": "a", "changes": []}])]
    assert state.request().query["since"] == "2-g1AA"  # the partial row is dropped on reconnect


def test_feed_state_batches_by_latency():
    state = FeedState("/db/_changes", {}, since=None, latency=1.0, heartbeat=5)
    state.last_flush = 10.0
    state.receive(b'{"seq":1,"id":"a"}\n{"seq":2,"id":"b"}\n')
    assert state.due_in(now=10.25) == pytest.approx(0.75)
    assert state.take(now=11.0) == [(2, [{"seq": 1, "id": "a"}, {"seq": 2, "id": "b"}])]
    assert state.due_in(now=11.0) is None


def test_feed_state_takes_last_seq_of_a_feed_that_ended():
    state = FeedState("/db/_changes", {}, since=0, latency=0, heartbeat=5)
    state.receive(b'{"last_seq":"9-x"}\n')
    assert state.since == "9-x"


def test_backoff_doubles_to_a_limit_and_resets():
    backoff = Backoff(first=0.1, limit=0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1
