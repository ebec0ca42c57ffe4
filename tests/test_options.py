"""Pure pieces of the service: query option parsing, preconditions, error replies."""

from __future__ import annotations

import pytest
from tornado import web

from service import options, preconditions
from service.couch.errors import BadRequest, NotFound, ServerUnavailable
from service.handlers.base import error_reply


def args(**values: str) -> dict[str, list[bytes]]:
    return {name: [value.encode()] for name, value in values.items()}


def test_view_options_parse_to_python_values():
    parsed = options.parse(
        args(key='["a", 1]', limit="10", descending="true", stale="ok", startkey_docid="d"),
        options.VIEW,
    )
    assert parsed == {
        "key": ["a", 1],
        "limit": 10,
        "descending": True,
        "stale": "ok",
        "startkey_docid": "d",
    }


def test_unknown_options_are_ignored_and_the_last_value_wins():
    parsed = options.parse({"limit": [b"1", b"2"], "whatever": [b"x"]}, options.VIEW)
    assert parsed == {"limit": 2}


@pytest.mark.parametrize(
    ("name", "value"),
    [("limit", "abc"), ("skip", "-1"), ("keys", "{}"), ("reduce", "yes")],
)
def test_bad_values_name_the_option(name, value):
    with pytest.raises(BadRequest) as raised:
        options.parse(args(**{name: value}), options.VIEW)
    assert raised.value.error == "query_parse_error"
    assert f"`{name}`" in raised.value.reason


def test_json_that_does_not_parse_is_couchdbs_bad_request():
    with pytest.raises(BadRequest) as raised:
        options.parse(args(key="not-json"), options.VIEW)
    assert (raised.value.error, raised.value.reason) == ("bad_request", "invalid UTF-8 JSON")


def test_changes_times_are_milliseconds_in_and_seconds_out():
    assert options.parse(args(heartbeat="5000"), options.CHANGES) == {"heartbeat": 5.0}


def test_etags_are_quoted_revs():
    assert preconditions.etag("1-abc") == '"1-abc"'
    assert preconditions.unquote_etag('W/"1-abc"') == "1-abc"
    assert preconditions.matches('"2-x", "1-abc"', "1-abc")
    assert preconditions.matches("*", "1-abc")
    assert not preconditions.matches('"2-x"', "1-abc")
    assert not preconditions.matches(None, "1-abc")


def test_the_rev_of_a_write_comes_from_any_one_source():
    assert preconditions.requested_rev(body=None, query=None, if_match='"1-a"') == "1-a"
    assert preconditions.requested_rev(body="1-a", query="1-a", if_match=None) == "1-a"
    assert preconditions.requested_rev(body=None, query=None, if_match=None) is None
    with pytest.raises(BadRequest):
        preconditions.requested_rev(body="1-a", query="1-b", if_match=None)


def test_error_replies():
    missing = error_reply(NotFound("not_found", "missing"), 500)
    assert (missing.status, missing.error, missing.reason) == (404, "not_found", "missing")
    unavailable = error_reply(ServerUnavailable("http://db", "refused"), 500)
    assert unavailable.status == 503
    assert "http://db" not in unavailable.reason
    assert dict(unavailable.headers)["Retry-After"]
    assert error_reply(web.HTTPError(405), 405).error == "method_not_allowed"
    crash = error_reply(RuntimeError("secret detail"), 500)
    assert (crash.status, crash.error) == (500, "unknown_error")
    assert "secret" not in crash.reason
