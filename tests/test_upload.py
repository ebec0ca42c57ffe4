"""``MultipartOpening``: a multipart body goes on to CouchDB only once it opens with its
boundary (pure; the handler's use of it is in tests/test_http_bad_input.py)."""

from __future__ import annotations

import pytest

from service.couch.errors import BadRequest
from service.handlers.upload import MultipartOpening


def test_only_a_multipart_type_with_a_boundary_is_checked():
    assert MultipartOpening.of("multipart/related; boundary=x") is not None
    assert MultipartOpening.of('multipart/related; boundary="a b"') is not None
    assert MultipartOpening.of("multipart/related") is None
    assert MultipartOpening.of("application/json; boundary=x") is None


def test_the_opening_is_held_until_whole_then_everything_goes_on():
    opening = MultipartOpening("abc")
    assert opening.feed(b"-") == b""
    assert opening.feed(b"-a") == b""
    assert opening.feed(b"bc\r\nContent-Type") == b"--abc\r\nContent-Type"
    assert opening.feed(b": x") == b": x"
    assert opening.end() == b""


@pytest.mark.parametrize(
    "chunks",
    [[b"{"], [b"--ab", b"d"], [b"preamble\r\n--abc"], [b"\r\n--abc"], [b"x" * 100]],
    ids=["json", "another boundary", "preamble", "leading newline", "no boundary"],
)
def test_a_body_that_does_not_open_with_its_boundary_is_400(chunks):
    opening = MultipartOpening("abc")
    with pytest.raises(BadRequest) as refused:
        for chunk in chunks:
            opening.feed(chunk)
    assert refused.value.status == 400


@pytest.mark.parametrize("chunks", [[], [b"--a"]], ids=["empty", "cut short"])
def test_a_body_that_ends_before_its_opening_is_400(chunks):
    opening = MultipartOpening("abc")
    for chunk in chunks:
        opening.feed(chunk)
    with pytest.raises(BadRequest):
        opening.end()
