"""The demo's design documents: the views its pages query.

As in the Couchbase guide, beers and breweries are listed by name; beyond it, a beer's row
carries what the list shows (its brewery and style), so a page of the list is one view query
plus one bulk read of its breweries, and a brewery's beers are one range of ``by_brewery``.
"""

from __future__ import annotations

from typing import Any

BEER_BY_NAME = "beer/by_name"
BEER_BY_BREWERY = "beer/by_brewery"
BREWERY_BY_NAME = "brewery/by_name"

DESIGNS: dict[str, dict[str, Any]] = {
    "_design/beer": {
        "language": "javascript",
        "views": {
            "by_name": {
                "map": "function (doc) {\n"
                "  if (doc.type === 'beer' && typeof doc.name === 'string') {\n"
                "    emit(doc.name, {brewery_id: doc.brewery_id, style: doc.style,"
                " abv: doc.abv});\n"
                "  }\n"
                "}"
            },
            "by_brewery": {
                "map": "function (doc) {\n"
                "  if (doc.type === 'beer' && doc.brewery_id) {\n"
                "    emit([doc.brewery_id, doc.name], {style: doc.style, abv: doc.abv});\n"
                "  }\n"
                "}",
                "reduce": "_count",
            },
        },
    },
    "_design/brewery": {
        "language": "javascript",
        "views": {
            "by_name": {
                "map": "function (doc) {\n"
                "  if (doc.type === 'brewery' && typeof doc.name === 'string') {\n"
                "    emit(doc.name, {city: doc.city, state: doc.state, country: doc.country});\n"
                "  }\n"
                "}"
            },
        },
    },
}
