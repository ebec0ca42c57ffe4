"""Nobody gets rights through settee that CouchDB would not give them.

settee serves here with the test server's admin credentials; the clients are anonymous, a
user with a wrong password, a member of one database, and a non-member. Each case asks
CouchDB directly with the same credentials and expects settee's answer to have the same
status: settee's own credentials never answer a client's request.

On the embedded store settee is the server: the same clients get the statuses CouchDB
3.4.3 gives them (``COUCHDB_ANSWERS``, which the CouchDB run checks against CouchDB itself).
pouchdb-server in memory has no users (everyone is admin): these do not run on it.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClosedError, websocket_connect

from service.couch.transport import Endpoint
from service.tokens import SubscriberTokens
from tests.conftest import answer

PASSWORD = "member-" + uuid.uuid4().hex[:8]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def couchdb_only(backend):
    if backend == "pouchdb":
        pytest.skip("pouchdb-server in memory has no users or _security: everyone is admin")


@pytest.fixture
def users(couchdb_only, bcouch, bdb):
    """A member of the test database and a user who is not one."""
    names = {"member": "m-" + uuid.uuid4().hex[:8], "stranger": "s-" + uuid.uuid4().hex[:8]}
    for name in names.values():
        bcouch.users.save(
            {
                "_id": f"org.couchdb.user:{name}",
                "name": name,
                "type": "user",
                "roles": [],
                "password": PASSWORD,
            }
        )
    bdb.security(
        {"admins": {"names": [], "roles": []}, "members": {"names": [names["member"]], "roles": []}}
    )
    bdb.save({"_id": "secret", "text": "members only"})
    yield names
    for name in names.values():
        doc = bcouch.users.get(f"org.couchdb.user:{name}")
        bcouch.users.delete(doc)


def who(users: dict[str, str], client: str) -> dict[str, str]:
    if client == "anonymous":
        return {}
    if client == "wrong-password":  # a user nobody has: CouchDB locks out a real one
        return basic("nobody-" + uuid.uuid4().hex[:8], PASSWORD)
    return basic(users[client], PASSWORD)


# (method, path with DB, body): every kind of route, settee's own and passed through.
REQUESTS = [
    ("GET", "/_all_dbs", None),
    ("GET", "/DB", None),
    ("GET", "/DB/secret", None),
    ("HEAD", "/DB/secret", None),
    ("PUT", "/DB/NEW", {"x": 1}),
    ("POST", "/DB", {"x": 1}),
    ("DELETE", "/DB/secret?rev=1-x", None),
    ("GET", "/DB/_all_docs?include_docs=true", None),
    ("POST", "/DB/_all_docs", {"keys": ["secret"]}),
    ("POST", "/DB/_bulk_docs", {"docs": [{"x": 1}]}),
    ("POST", "/DB/_bulk_get", {"docs": [{"id": "secret"}]}),
    ("POST", "/DB/_find", {"selector": {}}),
    ("GET", "/DB/_changes?include_docs=true", None),
    ("GET", "/DB/_changes?feed=longpoll&timeout=100", None),
    ("GET", "/DB/_changes?feed=continuous&timeout=100", None),
    ("GET", "/DB/_changes?feed=eventsource&timeout=100", None),
    ("GET", "/DB/_security", None),
    ("PUT", "/DB/_security", {"admins": {}, "members": {}}),
    ("DELETE", "/DB", None),
    ("GET", "/_node/_local/_config", None),
    ("GET", "/_users/org.couchdb.user:MEMBER", None),
    ("GET", "/_users/_all_docs", None),
    ("GET", "/_users/_changes?include_docs=true", None),
    ("GET", "/_users/_changes?feed=longpoll&include_docs=true&timeout=100", None),
    ("GET", "/_users/_changes?feed=continuous&include_docs=true&timeout=100", None),
    ("POST", "/_replicate", {"source": "a", "target": "b"}),
    ("GET", "/DB/..%2F_users/_all_docs", None),
    ("GET", "//DB/secret", None),
]


# What CouchDB 3.4.3 answers each client, per request of REQUESTS: anonymous, wrong
# password, stranger, member (the member may read and write documents, nothing more).
COUCHDB_ANSWERS = [
    (401, 401, 401, 401),  # GET /_all_dbs: server admins only
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 201),
    (401, 401, 403, 201),
    (401, 401, 403, 409),
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 201),
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 200),
    (401, 401, 403, 500),  # PUT _security by a member: CouchDB fails (no_majority)
    (401, 401, 401, 401),  # DELETE /DB: server admins only
    (401, 401, 401, 401),
    (401, 401, 403, 403),  # a user document: _users is admin-only, as CouchDB 3 makes it
    (401, 401, 401, 401),
    (401, 401, 401, 401),
    (401, 401, 401, 401),
    (401, 401, 401, 401),
    (401, 401, 500, 500),  # _replicate of missing databases: db_not_found, after the rights
    (401, 401, 403, 404),
    (401, 401, 403, 200),
]
# Where the embedded store answers otherwise, and why.
EMBEDDED_ANSWERS = {
    # A member is refused _security as not a database admin, not with an internal error.
    ("PUT", "/DB/_security", "member"): 403,
}
CLIENTS = ["anonymous", "wrong-password", "stranger", "member"]


async def fetch(url: str, method: str, body: Any, headers: dict[str, str]) -> HTTPResponse:
    data = json.dumps(body) if body is not None else (b"" if method in ("POST", "PUT") else None)
    return await AsyncHTTPClient().fetch(
        url,
        method=method,
        body=data,
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
        raise_error=False,
        allow_nonstandard_methods=True,
        request_timeout=10,
    )


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("client", CLIENTS)
async def test_every_route_answers_as_couchdb_answers_the_client(
    settee, server_url, backend, users, bdb, client
):
    for (method, path, body), answers in zip(REQUESTS, COUCHDB_ANSWERS, strict=True):
        expected = answers[CLIENTS.index(client)]
        url_path = path.replace("DB", bdb.name).replace("MEMBER", users["member"])
        headers = who(users, client)
        if backend == "embedded":
            expected = EMBEDDED_ANSWERS.get((method, path, client), expected)
        else:
            # A new document's id differs each way: the first write must not make the
            # second's answer differ.
            couchdb = Endpoint.parse(server_url).url
            direct = await fetch(couchdb + url_path.replace("NEW", "a"), method, body, headers)
            assert direct.code == expected, (client, method, path, direct.body)
            for secret in (b"members only", b"password_scheme"):
                assert secret not in direct.body or client == "member", (client, path)
        through = await fetch(settee.url + url_path.replace("NEW", "b"), method, body, headers)
        assert through.code == expected, (client, method, path, through.body)
        if through.code >= 400 or client != "member":
            for secret in (b"members only", b"password_scheme"):
                assert secret not in through.body, (client, path)


@pytest.mark.gen_test
async def test_nothing_was_written_by_those_refused(settee, users, bdb):
    for client in ("anonymous", "wrong-password", "stranger"):
        headers = who(users, client)
        put = await settee.fetch(
            "PUT", f"/{bdb.name}/intruder", {"x": 1}, headers=headers, anonymous=True
        )
        delete = await settee.fetch("DELETE", f"/{bdb.name}", headers=headers, anonymous=True)
        assert put.code in (401, 403) and delete.code in (401, 403), (put.body, delete.body)
    assert bdb.get(["intruder"]) == [None]
    assert bdb.exists()


@pytest.mark.gen_test
async def test_a_websocket_subscriber_is_refused_before_the_upgrade(settee, users, bdb):
    for client, status in (("anonymous", 401), ("stranger", 403), ("wrong-password", 401)):
        request = HTTPRequest(settee.ws_url(bdb.name, anonymous=True), headers=who(users, client))
        with pytest.raises(Exception) as refused:
            await websocket_connect(request)
        assert getattr(refused.value, "code", None) == status, (client, refused.value)
    member = HTTPRequest(settee.ws_url(bdb.name, "&since=0", anonymous=True))
    member.headers.update(who(users, "member"))
    socket = await websocket_connect(member)
    frames = []
    while not (frames and "last_seq" in frames[-1]):
        frame = await socket.read_message()
        if frame is None:
            raise WebSocketClosedError()
        frames.append(json.loads(frame))
    assert any(row.get("id") == "secret" for row in frames)
    socket.close()


@pytest.mark.gen_test
async def test_cookie_login_works_through_settee(settee, users, bdb):
    login = await settee.fetch(
        "POST",
        "/_session",
        {"name": users["member"], "password": PASSWORD},
        anonymous=True,
    )
    assert login.code == 200, login.body
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith("AuthSession=") and "Path=/" in cookie
    session = cookie.split(";")[0]
    read = await settee.fetch(
        "GET", f"/{bdb.name}/secret", anonymous=True, headers={"Cookie": session}
    )
    assert read.code == 200 and answer(read)["text"] == "members only"
    me = answer(await settee.fetch("GET", "/_session", anonymous=True, headers={"Cookie": session}))
    assert me["userCtx"]["name"] == users["member"]
    other = {"Cookie": "theme=dark; " + session + "; tracking=1"}
    assert (
        await settee.fetch("GET", f"/{bdb.name}/secret", anonymous=True, headers=other)
    ).code == 200
    logout = await settee.fetch("DELETE", "/_session", anonymous=True, headers={"Cookie": session})
    assert logout.code == 200


@pytest.mark.gen_test
async def test_ready_and_welcome_do_not_need_the_clients_rights(settee, couchdb_only):
    assert (await settee.fetch("GET", "/_ready", anonymous=True)).code == 200
    assert (await settee.fetch("GET", "/_up", anonymous=True)).code == 200


async def read_until_caught_up(socket: Any) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not (frames and "last_seq" in frames[-1]):
        frame = await socket.read_message()
        if frame is None:
            raise WebSocketClosedError()
        frames.append(json.loads(frame))
    return frames


async def member_socket(settee: Any, users: dict[str, str], db: str) -> Any:
    request = HTTPRequest(settee.ws_url(db, "&since=0", anonymous=True))
    request.headers.update(who(users, "member"))
    socket = await websocket_connect(request)
    await read_until_caught_up(socket)
    return socket


NOBODY = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": ["_admin"]}}


@pytest.mark.gen_test(timeout=30)
async def test_a_revoked_subscriber_is_closed_with_4003_and_gets_nothing_more(
    start_settee, server_url, users, bdb
):
    """Revoked directly on CouchDB, not through settee: found by the periodic check."""
    settee = start_settee(reauthorize_interval=0.5)
    socket = await member_socket(settee, users, bdb.name)
    bdb.save({"_id": "before"})
    assert json.loads(await socket.read_message())["id"] == "before"
    bdb.security(NOBODY)
    bdb.save({"_id": "after"})
    frames = []
    while (frame := await socket.read_message()) is not None:
        frames.append(json.loads(frame))
    assert socket.close_code == 4003
    assert all(row.get("id") != "after" for row in frames[1:]), frames
    assert len(frames) <= 1  # at most "after", had it come before the check


@pytest.mark.gen_test(timeout=30)
async def test_security_written_through_settee_closes_revoked_subscribers_at_once(
    start_settee, users, bdb
):
    settee = start_settee(reauthorize_interval=3600)
    socket = await member_socket(settee, users, bdb.name)
    written = await settee.fetch("PUT", f"/{bdb.name}/_security", NOBODY)
    assert written.code == 200, written.body
    assert await socket.read_message() is None
    assert socket.close_code == 4003


async def login(settee: Any, users: dict[str, str]) -> str:
    response = await settee.fetch(
        "POST", "/_session", {"name": users["member"], "password": PASSWORD}, anonymous=True
    )
    return response.headers["Set-Cookie"].split(";")[0]


@pytest.mark.gen_test(timeout=30)
async def test_a_websocket_from_another_page_does_not_use_the_visitors_cookie(
    start_settee, users, bdb
):
    """Browsers send a site's cookies with any page's WebSocket: with ``cors_origins = *``
    a page of an origin not listed by name subscribes as anonymous, not as its visitor."""
    settee = start_settee(cors_origins=("*",))
    cookie = await login(settee, users)
    host = settee.url.removeprefix("http://")
    own_page = HTTPRequest(
        settee.ws_url(bdb.name, anonymous=True),
        headers={"Cookie": cookie, "Origin": f"http://{host}"},
    )
    (await websocket_connect(own_page)).close()
    other_page = HTTPRequest(
        settee.ws_url(bdb.name, anonymous=True),
        headers={"Cookie": cookie, "Origin": "https://evil.example"},
    )
    with pytest.raises(Exception) as refused:
        await websocket_connect(other_page)
    assert getattr(refused.value, "code", None) == 401


@pytest.mark.gen_test(timeout=60)
async def test_no_password_or_cookie_reaches_a_log_line(start_settee, users, bdb, caplog):
    settee = start_settee()
    caplog.set_level(logging.DEBUG)
    cookie = await login(settee, users)
    for client in ("member", "wrong-password", "stranger"):
        for method, path, body in REQUESTS:
            path = path.replace("DB", bdb.name).replace("MEMBER", users["member"])
            headers = who(users, client)
            await fetch(settee.url + path.replace("NEW", "c"), method, body, headers)
    await settee.fetch("GET", f"/{bdb.name}/secret", anonymous=True, headers={"Cookie": cookie})
    await settee.fetch("POST", "/_session", {"name": "x", "password": PASSWORD}, anonymous=True)
    tokens = [*basic(users["member"], PASSWORD).values(), *settee.credentials.values()]
    secrets = [PASSWORD, cookie.split("=", 1)[1], *(token.split()[-1] for token in tokens)]
    logged = caplog.text + "".join(str(record.args) for record in caplog.records if record.args)
    assert len(caplog.records) > 50
    for secret in secrets:
        assert secret not in logged


@pytest.mark.gen_test(timeout=30)
async def test_a_page_of_another_origin_subscribes_with_a_one_time_token(
    start_settee, users, bdb, caplog
):
    """A browser can set no header on a WebSocket: the page asks for a token with its
    user's credentials (an XHR may send them), then opens the socket with ``?token=``."""
    settee = start_settee(cors_origins=("https://app.example",))
    page = {"Origin": "https://app.example"}
    refused = await settee.fetch("POST", "/_settee/token", anonymous=True, headers=page)
    assert refused.code == 401
    wrong = await settee.fetch(
        "POST", "/_settee/token", anonymous=True, headers={**page, **who(users, "wrong-password")}
    )
    assert wrong.code == 401
    issued = await settee.fetch(
        "POST", "/_settee/token", anonymous=True, headers={**page, **who(users, "member")}
    )
    assert issued.code == 200, issued.body
    assert issued.headers["Access-Control-Allow-Origin"] == "https://app.example"
    token = answer(issued)["token"]
    url = settee.ws_url(bdb.name, f"&since=0&token={token}", anonymous=True)
    socket = await websocket_connect(HTTPRequest(url, headers=page))
    assert any(row.get("id") == "secret" for row in await read_until_caught_up(socket))
    socket.close()
    with pytest.raises(Exception) as used:  # once only
        await websocket_connect(HTTPRequest(url, headers=page))
    assert getattr(used.value, "code", None) == 401
    assert token not in caplog.text


@pytest.mark.gen_test
async def test_a_token_gives_its_users_rights_once(start_settee, users, bdb):
    settee = start_settee()
    issued = await settee.fetch(
        "POST", "/_settee/token", anonymous=True, headers=who(users, "stranger")
    )
    token = answer(issued)["token"]
    eventsource = f"/{bdb.name}/_changes?feed=eventsource&timeout=100&token={token}"
    response = await settee.fetch("GET", eventsource, anonymous=True)
    assert response.code == 403  # the stranger's own rights, not more
    again = await settee.fetch("GET", eventsource, anonymous=True)
    assert again.code == 401


def test_a_token_is_good_once_and_not_past_its_time():
    tokens = SubscriberTokens(ttl=60)
    token = tokens.issue({"Authorization": "Basic x"})
    assert tokens.redeem(token) == {"Authorization": "Basic x"}
    assert tokens.redeem(token) is None
    stale = SubscriberTokens(ttl=0)
    assert stale.redeem(stale.issue({"Authorization": "Basic x"})) is None


MINE = "function(doc, req) { return doc.owner === req.userCtx.name; }"


@pytest.mark.gen_test(timeout=60)
async def test_a_filter_function_sees_the_subscriber_not_settee(
    settee, server_url, backend, users, bdb
):
    """A design filter may decide by ``req.userCtx``: it runs as the subscriber, as it would
    on CouchDB, never as settee (an admin), in the backlog and live."""
    member, admin = users["member"], settee.auth[0]
    bdb.save({"_id": "_design/app", "filters": {"mine": MINE}})
    bdb.save([{"_id": "m1", "owner": member}, {"_id": "a1", "owner": admin}])
    if backend != "embedded":
        couchdb = Endpoint.parse(server_url).url
        direct = await fetch(
            f"{couchdb}/{bdb.name}/_changes?filter=app/mine", "GET", None, who(users, "member")
        )
        assert [row["id"] for row in answer(direct)["results"]] == ["m1"]
    request = HTTPRequest(settee.ws_url(bdb.name, "&since=0&filter=app/mine", anonymous=True))
    request.headers.update(who(users, "member"))
    socket = await websocket_connect(request)
    backlog = await read_until_caught_up(socket)
    assert [row["id"] for row in backlog if "id" in row] == ["m1"]
    bdb.save([{"_id": "a2", "owner": admin}, {"_id": "m2", "owner": member}])
    assert json.loads(await socket.read_message())["id"] == "m2"
    socket.close()
