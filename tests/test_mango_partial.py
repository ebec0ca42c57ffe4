"""Mango's partial indexes, ``use_index``/``allow_fallback``, the normal form of selectors
``_explain`` shows, and its options, as CouchDB 3.4.3 answers them, on every backend."""

from __future__ import annotations

import pytest

from service.store import selectors
from service.store.jsonindex import JsonIndex
from service.store.normalize import normalized
from tests.conftest import answer
from tests.test_mango import PEOPLE, SELECTORS

NO_INDEX = "No matching index found, create an index to optimize query time."
PART_UNUSED = "_design/part was not used because it does not contain a valid index for this query."
POUCH_PARTIAL = "pouchdb-server keeps no partial_filter_selector in the index's design document"
POUCH_FALLBACK = (
    "pouchdb-server: 400 unknown_error 'Could not find that index or could not use that index "
    "for the query', or answers without CouchDB's use_index warning"
)
POUCH_NORMAL = "pouchdb-server's _explain shows the selector with implicit $eq made explicit only"
POUCH_OPTS = "pouchdb-server's _explain opts: r [49], sort a list, no partition/stale/update/..."
POUCH_INDEX = "pouchdb-server checks no key, type or partial_filter_selector: 200 created"
POUCH_USE_INDEX = "pouchdb-server: 400 bad_request/no_usable_index, not invalid_index_name"
POUCH_OPTIONS = "pouchdb-server ignores unknown keys and non-boolean flags: 200"
POUCH_SELECTOR = "pouchdb-server checks operator arguments otherwise: 200, or 400 in its own words"
DOCS = [{"_id": f"d{i}", "n": i, "kind": "ab"[i % 2], "m": i % 3} for i in range(10)]


async def post(settee, path: str, body: dict) -> tuple[int, dict]:
    response = await settee.fetch("POST", path, body)
    return response.code, answer(response)


@pytest.fixture
def indexed(bdb, settee, io_loop):
    """Ten documents, the partial index ``part`` (``n``, of ``kind`` "a") and ``mdoc``'s
    index ``mi`` (``m``)."""
    bdb.save([dict(doc) for doc in DOCS])
    for body in (
        {
            "index": {"fields": ["n"], "partial_filter_selector": {"kind": "a"}},
            "name": "part",
            "ddoc": "part",
        },
        {"index": {"fields": ["m"]}, "name": "mi", "ddoc": "mdoc"},
    ):
        code, _ = io_loop.run_sync(lambda body=body: post(settee, f"/{bdb.name}/_index", body))
        assert code == 200
    return bdb.name


async def found(settee, db: str, query: dict) -> tuple[list[str], str | None]:
    code, got = await post(settee, f"/{db}/_find", {"fields": ["_id"], **query})
    assert code == 200, got
    return [doc["_id"] for doc in got["docs"]], got.get("warning")


@pytest.mark.xfail_on("pouchdb", reason=POUCH_PARTIAL)
@pytest.mark.gen_test
async def test_a_partial_index_holds_only_what_its_selector_matches(settee, indexed):
    ddoc = answer(await settee.fetch("GET", f"/{indexed}/_design/part"))
    view = ddoc["views"]["part"]
    assert view["map"]["partial_filter_selector"] == {"kind": {"$eq": "a"}}
    assert view["options"]["def"] == {"fields": ["n"], "partial_filter_selector": {"kind": "a"}}
    listed = answer(await settee.fetch("GET", f"/{indexed}/_index"))["indexes"]
    assert listed[-1]["def"] == {
        "fields": [{"n": "asc"}],
        "partial_filter_selector": {"kind": {"$eq": "a"}},
    }
    above_2 = {"selector": {"n": {"$gt": 2}}}
    for named in ("part", "_design/part", ["part"], ["part", "part"]):
        assert await found(settee, indexed, {**above_2, "use_index": named}) == (
            ["d4", "d6", "d8"],
            None,
        )
    # never picked unless named: the whole database answers
    assert await found(settee, indexed, above_2) == (
        ["d3", "d4", "d5", "d6", "d7", "d8", "d9"],
        NO_INDEX,
    )
    sorted_query = {**above_2, "sort": [{"n": "desc"}]}
    code, refused = await post(settee, f"/{indexed}/_find", sorted_query)
    assert (code, refused["error"]) == (400, "no_usable_index")
    with_part = {**sorted_query, "use_index": "part", "allow_fallback": False}
    assert await found(settee, indexed, with_part) == (["d8", "d6", "d4"], None)


FALLBACKS = [
    ({"selector": {"m": 1}, "use_index": "part"}, ["d1", "d4", "d7"], PART_UNUSED),
    (
        {"selector": {"m": 1}, "use_index": ["part", "part"]},
        ["d1", "d4", "d7"],
        "_design/part, part was not used because it is not a valid index for this query.",
    ),
    (
        {"selector": {"n": {"$gt": 7}}, "use_index": ["part", "nope"]},
        ["d8", "d9"],
        "_design/part, nope was not used because it is not a valid index for this query.\n"
        + NO_INDEX,
    ),
    (
        {"selector": {"n": {"$gt": 7}}, "use_index": "nope"},
        ["d8", "d9"],
        "_design/nope was not used because it does not contain a valid index for this query.\n"
        + NO_INDEX,
    ),
    # a sort's fields count as required: mi answers a sort on m, whatever the selector
    (
        {"selector": {"n": {"$gt": 6}}, "sort": ["m"], "use_index": "part"},
        ["d9", "d7", "d8"],
        PART_UNUSED,
    ),
    ({"selector": {"m": 2}, "use_index": ["mdoc", "mi"]}, ["d2", "d5", "d8"], None),
]
FALLBACKS[:-1] = [
    pytest.param(*case, marks=pytest.mark.xfail_on("pouchdb", reason=POUCH_FALLBACK))
    for case in FALLBACKS[:-1]
]


@pytest.mark.parametrize(("query", "ids", "warning"), FALLBACKS)
@pytest.mark.gen_test
async def test_an_index_that_cannot_answer_falls_back_with_a_warning(
    settee, indexed, query, ids, warning
):
    assert await found(settee, indexed, query) == (ids, warning)


@pytest.mark.xfail_on("pouchdb", reason=POUCH_FALLBACK)
@pytest.mark.gen_test
async def test_allow_fallback_false_refuses_what_would_fall_back(settee, indexed):
    refusals = [
        ({"use_index": "nope"}, "_design/nope"),
        ({"use_index": ["part", "nope"]}, "_design/part, nope"),
    ]
    for named, label in refusals:
        query = {"selector": {"n": 1}, "allow_fallback": False, **named}
        code, got = await post(settee, f"/{indexed}/_find", query)
        reason = f"{label} specified by `use_index` could not be found or it is not suitable."
        assert (code, got) == (400, {"error": "invalid_index", "reason": reason})
    code, got = await post(
        settee, f"/{indexed}/_find", {"selector": {"n": 1}, "allow_fallback": False}
    )
    reason = "You must specify an index with the `use_index` parameter."
    assert (code, got) == (400, {"error": "invalid_index", "reason": reason})
    query = {"selector": {"m": 1}, "allow_fallback": False}
    assert await found(settee, indexed, query) == (["d1", "d4", "d7"], None)


NORMAL_FORMS = [
    ({"a": 1, "b": {"c": 2}}, {"$and": [{"a": {"$eq": 1}}, {"b.c": {"$eq": 2}}]}),
    ({"a": {"$gt": 1, "$lt": 5}}, {"$and": [{"a": {"$gt": 1}}, {"a": {"$lt": 5}}]}),
    (
        {"a": {"b": {"$gt": 1}, "c": 3}},
        {"$and": [{"a.b": {"$gt": 1}}, {"a.c": {"$eq": 3}}]},
    ),
    ({"a": {"$not": {"b": 1}}}, {"a.b": {"$ne": 1}}),
    ({"a": [1, 2]}, {"a": {"$eq": [1, 2]}}),
    ({"a": {}}, {"a": {"$eq": {}}}),
    ({"a": {"$eq": {"$gt": 1}}}, {"a": {"$eq": {"$gt": 1}}}),
    (
        {"$or": [{"a": 1}, {"b": {"c": 2, "d": 3}}]},
        {"$or": [{"a": {"$eq": 1}}, {"$and": [{"b.c": {"$eq": 2}}, {"b.d": {"$eq": 3}}]}]},
    ),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"$and": [{"a": {"$ne": 1}}, {"b": {"$ne": 2}}]}),
    (
        {"$not": {"$and": [{"a": {"$gt": 1}}, {"b": {"$lt": 2}}]}},
        {"$or": [{"a": {"$lte": 1}}, {"b": {"$gte": 2}}]},
    ),
    ({"$not": {"$nor": [{"a": 1}, {"b": 2}]}}, {"$or": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}),
    ({"$not": {"$not": {"a": 1}}}, {"a": {"$eq": 1}}),
    ({"a": {"$not": {"$in": [1, 2]}}}, {"a": {"$nin": [1, 2]}}),
    ({"a": {"$not": {"$exists": True}}}, {"a": {"$exists": False}}),
    ({"a": {"$not": {"$size": 2}}}, {"a": {"$not": {"$size": 2}}}),
    (
        {"a": {"$not": {"$gt": 1, "$lt": 3}}},
        {"$or": [{"a": {"$lte": 1}}, {"a": {"$gte": 3}}]},
    ),
    (
        {"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}},
        {"a": {"$elemMatch": {"$and": [{"": {"$gt": 1}}, {"": {"$lt": 3}}]}}},
    ),
    ({"a": {"$allMatch": {"b": {"c": 1}}}}, {"a": {"$allMatch": {"b.c": {"$eq": 1}}}}),
    ({"a": {"$keyMapMatch": {"$eq": "x"}}}, {"a": {"$keyMapMatch": {"": {"$eq": "x"}}}}),
    ({"a\\.b": 1, "c": {"d\\.e": 2}}, {"$and": [{"a\\.b": {"$eq": 1}}, {"c.d\\.e": {"$eq": 2}}]}),
    ({"a": {"$or": [{"b": 1}, {"c": 2}]}}, {"$or": [{"a.b": {"$eq": 1}}, {"a.c": {"$eq": 2}}]}),
    ({"a": {"$not": {"$nor": [{"b": 1}]}}}, {"$or": [{"a.b": {"$eq": 1}}]}),
    ({"$and": []}, {"$and": []}),
]
POUCHDB_AGREES = ({"a": {"$eq": {"$gt": 1}}}, {"a": {"$not": {"$size": 2}}})
NORMAL_FORMS = [
    case
    if case[0] in POUCHDB_AGREES
    else pytest.param(*case, marks=pytest.mark.xfail_on("pouchdb", reason=POUCH_NORMAL))
    for case in NORMAL_FORMS
]


@pytest.mark.parametrize(("selector", "normal"), NORMAL_FORMS)
@pytest.mark.gen_test
async def test_explain_shows_couchdbs_normal_form(settee, bdb, selector, normal):
    code, got = await post(settee, f"/{bdb.name}/_explain", {"selector": selector})
    assert (code, got["selector"]) == (200, normal)


@pytest.mark.parametrize(("selector", "expected"), [getattr(s, "values", s) for s in SELECTORS])
def test_the_normal_form_matches_what_the_selector_matches(selector, expected):
    """Equivalence, on the embedded store's matcher: a partial index matches documents with
    its normal form, as CouchDB does."""
    normal = normalized(selector)
    both = [
        (p["_id"], selectors.matches(selector, p), selectors.matches(normal, p)) for p in PEOPLE
    ]
    assert [(i, m) for i, m, _ in both] == [(i, n) for i, _, n in both]
    assert sorted(i for i, m, _ in both if m) == expected


@pytest.mark.xfail_on("pouchdb", reason=POUCH_OPTS)
@pytest.mark.gen_test
async def test_explain_gives_couchdbs_opts(settee, indexed):
    query = {"selector": {"m": 1}, "use_index": "_design/mdoc", "fields": ["n"], "sort": ["m"]}
    code, got = await post(settee, f"/{indexed}/_explain", query)
    assert code == 200
    assert got["index"]["name"] == "mi"
    assert got["fields"] == ["n"]
    assert got["opts"] == {
        "use_index": ["mdoc"],
        "bookmark": "nil",
        "limit": 25,
        "skip": 0,
        "sort": {"m": "asc"},
        "fields": ["n"],
        "partition": "",
        "r": 1,
        "conflicts": False,
        "stale": False,
        "update": True,
        "stable": False,
        "execution_stats": False,
        "allow_fallback": True,
    }
    code, got = await post(settee, f"/{indexed}/_explain", {"selector": {"n": 1}})
    assert (got["fields"], got["opts"]["fields"], got["opts"]["use_index"]) == ([], [], [])


BAD_INPUT = [
    (
        "_index",
        {"index": {"fields": ["m"], "partial_filter_selector": "x"}},
        400,
        {
            "error": "invalid_selector_json",
            "reason": "Selector must be a JSON object, not: <<120>>",
        },
    ),
    (
        "_index",
        {"index": {"fields": ["m"], "partial_filter_selector": [1]}},
        400,
        {"error": "invalid_selector_json", "reason": "Selector must be a JSON object, not: [1]"},
    ),
    (
        "_index",
        {"index": {"fields": ["m"], "partial_filter_selector": {"a": {"$bogus": 1}}}},
        400,
        {"error": "invalid_operator", "reason": "Invalid operator: $bogus"},
    ),
    (
        "_index",
        {"index": {"fields": ["m"]}, "partial_filter_selector": {"kind": "b"}},
        400,
        {"error": "invalid_key", "reason": "Invalid key partial_filter_selector for this request."},
    ),
    (
        "_index",
        {"index": {"fields": ["m"]}, "selector": {}},
        400,
        {"error": "invalid_key", "reason": "Invalid key selector for this request."},
    ),
    (
        "_index",
        {"index": {"fields": ["m"], "foo": 1}},
        400,
        {"error": "invalid_key", "reason": "Invalid key foo for this request."},
    ),
    (
        "_index",
        {"index": {"fields": ["m"]}, "type": "text"},
        503,
        {"error": "required index service unavailable", "reason": "text"},
    ),
    (
        "_index",
        {"index": {}, "type": "nouveau"},
        503,
        {"error": "required index service unavailable", "reason": "nouveau"},
    ),
    (
        "_index",
        {"index": {"fields": ["m"]}, "type": "bogus"},
        400,
        {"error": "invalid_index", "reason": "Invalid type for index: bogus"},
    ),
    (
        "_index",
        {"index": {"fields": ["m"]}, "type": 5},
        400,
        {"error": "invalid_string", "reason": "Invalid string: 5"},
    ),
    (
        "_find",
        {"selector": {"n": 1}, "use_index": 5},
        400,
        {"error": "invalid_index_name", "reason": "Invalid index name: 5"},
    ),
    (
        "_find",
        {"selector": {"n": 1}, "use_index": ["a", "b", "c"]},
        400,
        {"error": "invalid_index_name", "reason": "Invalid index name: [<<97>>,<<98>>,<<99>>]"},
    ),
    (
        "_find",
        {"selector": {"n": 1}, "use_index": {"a": 1}},
        400,
        {"error": "invalid_index_name", "reason": "Invalid index name: {[{<<97>>,1}]}"},
    ),
    (
        "_explain",
        {"selector": {"n": 1}, "use_index": ["a", 5]},
        400,
        {"error": "invalid_index_name", "reason": "Invalid index name: [<<97>>,5]"},
    ),
    (
        "_find",
        {"selector": {"n": 1}, "allow_fallback": "x"},
        400,
        {"error": "invalid_boolean", "reason": "Invalid boolean value: <<120>>"},
    ),
    (
        "_find",
        {"selector": {"n": 1}, "execution_stats": 1},
        400,
        {"error": "invalid_boolean", "reason": "Invalid boolean value: 1"},
    ),
    (
        "_find",
        {"selector": {"n": 1}, "partial_filter_selector": {}},
        400,
        {"error": "invalid_key", "reason": "Invalid key partial_filter_selector for this request."},
    ),
    (
        "_find",
        {"selector": {}, "bookmark": "nil"},
        400,
        {"error": "invalid_bookmark", "reason": 'Invalid bookmark value: "nil"'},
    ),
]
BAD_SELECTORS = [
    ({"a": {"$in": 5}}, "bad_arg", "Bad argument for operator $in: 5"),
    ({"$or": {}}, "bad_arg", "Bad argument for operator $or: {[]}"),
    ({"a": {"$size": True}}, "bad_arg", "Bad argument for operator $size: true"),
    ({"a": {"$mod": [2.5, 1]}}, "bad_arg", "Bad argument for operator $mod: [2.5,1]"),
    ({"a": {"$regex": "("}}, "bad_arg", "Bad argument for operator $regex: <<40>>"),
    ({"a": {"$elemMatch": 5}}, "bad_arg", "Bad argument for operator $elemMatch: 5"),
    ({"a": {"$regex": 5}}, "invalid_operator", "Invalid operator: $regex"),
    ({"a": {"$where": 1}}, "not_supported", "Unsupported operator: $where"),
    ({"$gt": 1}, "invalid_selector", "One or more conditions is missing a field name."),
]
BAD_INPUT += [
    ("_find", {"selector": selector}, 400, {"error": error, "reason": reason})
    for selector, error, reason in BAD_SELECTORS
]
BAD_INPUT.append(
    (
        "_index",
        {"index": {"fields": ["m"], "partial_filter_selector": {"a": {"$in": 5}}}},
        400,
        {"error": "bad_arg", "reason": "Bad argument for operator $in: 5"},
    )
)


def _pouchdb_differs(endpoint: str, body: dict, status: int, error: dict) -> object:
    if endpoint == "_index":
        reason = POUCH_INDEX if "fields" in body["index"] else "pouchdb-server: 400 bad_request"
    else:
        reason = POUCH_USE_INDEX if "use_index" in body else POUCH_OPTIONS
        if "bookmark" in body:
            reason = 'pouchdb-server takes the bookmark "nil": 200'
        if len(body) == 1:
            reason = POUCH_SELECTOR

    mark = pytest.mark.xfail_on("pouchdb", reason=reason)
    return pytest.param(endpoint, body, status, error, marks=mark)


BAD_INPUT = [_pouchdb_differs(*case) for case in BAD_INPUT]


@pytest.mark.parametrize(("endpoint", "body", "status", "error"), BAD_INPUT)
@pytest.mark.gen_test
async def test_bad_input_is_refused_as_couchdb_refuses_it(
    settee, bdb, endpoint, body, status, error
):
    assert await post(settee, f"/{bdb.name}/{endpoint}", body) == (status, error)


@pytest.mark.xfail_on("pouchdb", reason=POUCH_FALLBACK)
@pytest.mark.gen_test
async def test_text_search_without_a_search_service(settee, indexed):
    """CouchDB 3.4 without a search service: a text index cannot be made, ``use_index`` of
    one falls back, and ``$text`` filters nothing out."""
    query = {"selector": {"n": {"$gt": 7}}, "use_index": "text"}
    warning = "_design/text was not used because it does not contain a valid index for this query."
    assert await found(settee, indexed, query) == (["d8", "d9"], f"{warning}\n{NO_INDEX}")
    ids, warned = await found(settee, indexed, {"selector": {"$text": "a"}})
    assert (len(ids), warned) == (10, NO_INDEX)


MRARGS = [
    ({"selector": {"n": 1}}, "ni", [1], [1, "<MAX>"], False),
    ({"selector": {"n": {"$gt": 1, "$lt": 5}}}, "ni", [1], [5, "<MAX>"], False),
    ({"selector": {"n": {"$lt": 1}}}, "ni", [], [1, "<MAX>"], False),
    ({"selector": {"n": {"$gt": 5, "$lt": 1}}}, "ni", None, None, False),
    ({"selector": {"n": {"$in": [1, 2]}}}, "ni", [], ["<MAX>"], False),
    ({"selector": {"n": {"$gt": 1}, "s": "a"}}, "sn", ["a", 1], ["a", "<MAX>"], False),
    (
        {"selector": {"n": 1, "s": "a"}, "fields": ["s", "_id"]},
        "sn",
        ["a", 1],
        ["a", 1, "<MAX>"],
        True,
    ),
    (
        {"selector": {"s": {"$beginsWith": "a"}, "n": 1}},
        "sn",
        ["a", 1],
        ["a\uffff", 1, "<MAX>"],
        False,
    ),
    ({"selector": {"n": {"$gt": 1}}, "sort": [{"n": "desc"}]}, "ni", ["<MAX>"], [1], False),
    ({"selector": {"$or": [{"n": 1}, {"n": 2}]}}, "ni", [], ["<MAX>"], False),
    ({"selector": {"_id": {"$gt": "a", "$lt": "c"}}}, "_all_docs", "a", "c", False),
    ({"selector": {"_id": {"$lt": "c"}}, "sort": [{"_id": "desc"}]}, "_all_docs", "c", "", False),
    ({"selector": {"x": 1}}, "_all_docs", None, "<MAX>", False),
    ({"selector": {"s": "a"}, "sort": ["n"]}, "sn", ["a"], ["a", "<MAX>"], False),
]


@pytest.mark.xfail_on(
    "pouchdb", reason="pouchdb-server's _explain has no mrargs (and an $or uses _all_docs)"
)
@pytest.mark.parametrize(("query", "name", "start", "end", "covering"), MRARGS)
@pytest.mark.gen_test
async def test_explain_says_which_index_and_which_keys_as_couchdb(
    settee, bdb, query, name, start, end, covering
):
    """With indexes on [n] and [s, n], CouchDB answers from the one whose leading fields
    are most of those the selector bounds, and reads the keys its bounds allow."""
    for fields, ddoc in ((["n"], "ni"), (["s", "n"], "sn")):
        index = {"index": {"fields": fields}, "ddoc": ddoc, "name": ddoc}
        assert (await post(settee, f"/{bdb.name}/_index", index))[0] == 200
    code, got = await post(settee, f"/{bdb.name}/_explain", query)
    assert (code, got["index"]["name"]) == (200, name)
    mrargs = got["mrargs"]
    assert (mrargs["start_key"], mrargs["end_key"]) == (start, end)
    direction = "rev" if "desc" in str(query.get("sort")) else "fwd"
    assert (mrargs["direction"], mrargs["include_docs"]) == (direction, not covering)
    assert got["covering"] is covering


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server sorts on _id without an _id condition")
@pytest.mark.gen_test
async def test_a_sort_on_id_needs_a_condition_on_id(settee, indexed):
    query = {"selector": {"n": {"$gt": 7}}, "sort": ["_id"]}
    code, got = await post(settee, f"/{indexed}/_find", query)
    assert (code, got["error"]) == (400, "no_usable_index")
    explained = answer(await settee.fetch("POST", f"/{indexed}/_explain", query))
    assert explained["index"] is None
    query["selector"]["_id"] = {"$gt": "d0"}
    assert await found(settee, indexed, query) == (["d8", "d9"], NO_INDEX)


def test_an_index_of_every_document_keeps_its_signature():
    """Its view index file is named by a signature made as before partial indexes were, so
    no index is rebuilt; a partial one's differs."""
    plain = JsonIndex("_design/x", "x", ("n",), ("asc",), {})
    assert plain.design.maps == ('["n"]',)
    partial = JsonIndex("_design/x", "x", ("n",), ("asc",), {"kind": {"$eq": "a"}})
    assert partial.design.signature != plain.design.signature


def _candidate(name: str, usable: bool, reason: str, ranking: int, covering: bool | None):
    return name, {
        "usable": usable,
        "reasons": [{"name": reason}],
        "ranking": ranking,
        "covering": covering,
    }


CANDIDATES = [
    (
        {"selector": {"n": {"$gt": 2}}},
        [
            _candidate("part", False, "is_partial", 2, False),
            _candidate("mi", False, "field_mismatch", 1, False),
        ],
    ),
    (
        {"selector": {"m": 1}, "use_index": "part"},
        [
            _candidate("part", False, "is_partial", 5, False),
            _candidate("_all_docs", True, "unfavored_type", 1, None),
        ],
    ),
    (
        {"selector": {"n": 1}, "use_index": ["part", "part"], "fields": ["_id"]},
        [
            _candidate("mi", False, "field_mismatch", 2, True),
            _candidate("_all_docs", True, "excluded_by_user", 1, None),
        ],
    ),
    (
        {"selector": {"m": 1}, "sort": ["n"]},
        [
            _candidate("part", False, "is_partial", 2, False),
            _candidate("mi", False, "sort_order_mismatch", 1, False),
            _candidate("_all_docs", False, "field_mismatch", 1, None),
        ],
    ),
]


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server's _explain has no index_candidates")
@pytest.mark.parametrize(("query", "expected"), CANDIDATES)
@pytest.mark.gen_test
async def test_explain_lists_the_other_indexes_as_couchdb(settee, indexed, query, expected):
    code, got = await post(settee, f"/{indexed}/_explain", query)
    listed = [(c["index"]["name"], c["analysis"]) for c in got["index_candidates"]]
    assert (code, listed) == (200, expected)


@pytest.mark.xfail_on(
    "pouchdb",
    reason='pouchdb-server: 400 bad_request \'Cannot sort on field(s) "n" when using the '
    "default index'",
)
@pytest.mark.gen_test
async def test_a_sort_skips_leading_fields_the_selector_holds_equal(settee, indexed):
    index = {"index": {"fields": ["kind", "n"]}, "ddoc": "kn", "name": "kn"}
    assert (await post(settee, f"/{indexed}/_index", index))[0] == 200
    query = {"selector": {"kind": "a"}, "sort": [{"n": "desc"}]}
    assert await found(settee, indexed, query) == (["d8", "d6", "d4", "d2", "d0"], None)


@pytest.mark.xfail_on("pouchdb", reason="pouchdb-server: 400 for an unknown $type")
@pytest.mark.gen_test
async def test_an_unknown_type_matches_nothing_and_an_empty_page_has_bookmark_nil(settee, indexed):
    query = {"selector": {"m": {"$type": "bogus"}}}
    assert await post(settee, f"/{indexed}/_find", query) == (200, {"docs": [], "bookmark": "nil"})
