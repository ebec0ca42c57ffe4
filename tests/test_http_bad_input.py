"""Bad input over HTTP: a clear 4xx in CouchDB's shape, and nothing written."""

from __future__ import annotations

import pytest

from tests.conftest import answer

BAD_JSON = "{not json"

# (method, path under the test database "/DB", body, headers, status, error)
CASES = [
    ("PUT", "/DB/doc", BAD_JSON, {}, 400, "bad_request"),
    ("PUT", "/DB/doc", "", {}, 400, "bad_request"),
    ("PUT", "/DB/doc", "[1, 2]", {}, 400, "bad_request"),
    ("PUT", "/DB/doc", '"text"', {}, 400, "bad_request"),
    ("POST", "/DB", BAD_JSON, {}, 400, "bad_request"),
    ("POST", "/DB", "[]", {}, 400, "bad_request"),
    ("POST", "/DB/_bulk_docs", BAD_JSON, {}, 400, "bad_request"),
    ("POST", "/DB/_bulk_docs", "[]", {}, 400, "bad_request"),
    ("POST", "/DB/_bulk_docs", '{"docs": {}}', {}, 400, "bad_request"),
    ("POST", "/DB/_bulk_docs", '{"docs": [1]}', {}, 400, "bad_request"),
    ("POST", "/DB/_bulk_docs", '{"docs": [{"_id": "_bad"}]}', {}, 400, "illegal_docid"),
    ("POST", "/DB/_bulk_docs", '{"docs": [], "new_edits": "no"}', {}, 400, "bad_request"),
    ("POST", "/DB/_bulk_get", '{"docs": [{"rev": "1-a"}]}', {}, 400, "bad_request"),
    ("POST", "/DB/_bulk_get", '{"docs": [{"id": "_bad"}]}', {}, 400, "illegal_docid"),
    ("POST", "/DB/_all_docs", '{"keys": "a"}', {}, 400, "bad_request"),
    ("PUT", "/DB/_bad", "{}", {}, 400, "illegal_docid"),
    ("PUT", "/DB/_design", "{}", {}, 400, "illegal_docid"),
    ("DELETE", "/DB/_bad?rev=1-a", None, {}, 404, "not_found"),
    ("PUT", "/DB/_bad/att.txt", "x", {}, 400, "illegal_docid"),
    ("PUT", "/Bad%20Name", None, {}, 400, "illegal_database_name"),
    ("PUT", "/1db", None, {}, 400, "illegal_database_name"),
    ("PUT", "/UPPER/doc", "{}", {}, 400, "illegal_database_name"),
    ("GET", "/DB/_all_docs?limit=abc", None, {}, 400, "query_parse_error"),
    ("GET", "/DB/_all_docs?limit=-1", None, {}, 400, "query_parse_error"),
    ("GET", "/DB/_all_docs?key=not-json", None, {}, 400, "bad_request"),
    ("GET", "/DB/_all_docs?keys=%7B%7D", None, {}, 400, "query_parse_error"),
    ("GET", "/DB/_all_docs?descending=maybe", None, {}, 400, "query_parse_error"),
    ("GET", "/DB/_design/d/_view/v?group_level=x", None, {}, 400, "query_parse_error"),
    ("GET", "/DB/_design/d/_view/v?stale=never", None, {}, 400, "query_parse_error"),
    ("GET", "/DB/doc?revs=yes", None, {}, 400, "query_parse_error"),
    ("PUT", "/DB/doc?batch=later", "{}", {}, 400, "query_parse_error"),
    ("PUT", "/DB/doc?rev=1-a", '{"_rev": "1-b"}', {}, 400, "bad_request"),
    ("PUT", "/DB/doc", '{"_rev": [1]}', {}, 400, "bad_request"),
    ("PUT", "/DB/_security", BAD_JSON, {}, 400, "bad_request"),
    ("PUT", "/DB/_security", "[]", {}, 400, "bad_request"),
    ("PUT", "/DB/doc", '{"_rev": {"a": 1}}', {}, 400, "bad_request"),
    ("GET", "/_nothing", None, {}, 404, "not_found"),
    ("GET", "/DB/_design/d/_view", None, {}, 404, "not_found"),
    ("PATCH", "/DB/doc", "{}", {}, 405, "method_not_allowed"),
    # CouchDB's form upload of attachments: multipart only (CouchDB also wants a Referer).
    ("POST", "/DB/doc", "{}", {}, 400, "bad_request"),
    ("DELETE", "/_all_dbs", None, {}, 405, "method_not_allowed"),
    ("DELETE", "/no-such-db", None, {}, 404, "not_found"),
    # A multipart body that does not open with its boundary: CouchDB would answer 500.
    ("PUT", "/DB/doc", "{", {"Content-Type": "multipart/related; boundary=x"}, 400, "bad_request"),
    ("PUT", "/DB/doc", "", {"Content-Type": "multipart/related; boundary=x"}, 400, "bad_request"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "error"), CASES)
async def test_bad_input_is_refused_and_changes_nothing(
    settee, db_name, bdb, bcouch, method, path, body, headers, status, error
):
    dbs_before = bcouch.all_dbs()
    seq_before = bdb.info()["update_seq"]
    response = await settee.fetch(method, path.replace("DB", db_name), body, headers)
    assert response.code == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    reply = answer(response)
    assert reply["error"] == error
    assert isinstance(reply["reason"], str)
    assert "Traceback" not in response.body.decode()
    assert bcouch.all_dbs() == dbs_before
    assert bdb.info()["update_seq"] == seq_before


@pytest.mark.gen_test
async def test_query_errors_name_the_option(settee, db_name):
    response = await settee.fetch("GET", f"/{db_name}/_all_docs?skip=lots")
    assert "`skip`" in answer(response)["reason"]


@pytest.mark.gen_test
async def test_a_body_over_the_limit_is_413(start_settee, db_name, bdb):
    settee = start_settee(max_body_size=1024)
    response = await settee.fetch("PUT", f"/{db_name}/big", {"pad": "x" * 2000})
    assert response.code == 413
    assert answer(response)["error"] == "too_large"
    attachment = await settee.fetch("PUT", f"/{db_name}/big/a.bin", b"x" * 5000)
    assert attachment.code == 413
    small = await settee.fetch("PUT", f"/{db_name}/small", {"pad": "x"})
    assert small.code == 201
    assert bdb.get(["big", "small"])[0] is None
