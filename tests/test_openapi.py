"""The OpenAPI document (``service.openapi``): valid, served, and exactly the route table."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from tornado import httputil, web
from tornado.routing import PathMatches

from service.app import routes
from service.handlers.base import PassThroughHandler, pass_through
from service.openapi import document
from tests.conftest import answer

METHODS = ("get", "head", "post", "put", "delete", "patch")


def example_path(template: str, item: dict) -> str:
    """``template`` with each path parameter replaced by its example."""
    path = template
    for parameter in item.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", parameter["example"])
    return path


def route_of(path: str) -> int:
    """The index in the route table of the route that serves ``path``: the first that matches,
    as Tornado tries them."""
    start = httputil.RequestStartLine("GET", path, "HTTP/1.1")
    headers = httputil.HTTPHeaders({"Host": "settee"})
    request = httputil.HTTPServerRequest(start_line=start, headers=headers)
    for index, (pattern, _) in enumerate(routes()):
        if PathMatches(pattern).match(request) is not None:
            return index
    raise AssertionError(f"no route serves {path}")


def own_methods(handler: type[web.RequestHandler]) -> set[str]:
    """The methods a handler implements itself: neither Tornado's 405 nor relayed as is."""
    return {
        method
        for method in METHODS
        if getattr(handler, method) not in (pass_through, getattr(web.RequestHandler, method))
    }


def test_the_document_is_valid_openapi():
    validate(document())


def test_every_route_is_documented_with_its_methods_and_nothing_else():
    table = routes()
    reached = set()
    for template, item in document()["paths"].items():
        index = route_of(example_path(template, item))
        reached.add(index)
        handler = table[index][1]
        if item.get("x-settee-passthrough"):
            assert handler is PassThroughHandler, template
        else:
            assert {method for method in METHODS if method in item} == own_methods(handler), (
                template
            )
    assert reached == set(range(len(table)))


@pytest.mark.gen_test
async def test_the_document_is_served(settee):
    response = await settee.fetch("GET", "/_settee/openapi.json")
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert answer(response) == document()
    head = await settee.fetch("HEAD", "/_settee/openapi.json")
    assert head.code == 200
    assert head.body == b""
