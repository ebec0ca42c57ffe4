"""Users, sessions, ``_security`` and validation functions, through settee, as CouchDB 3.4.3
answers them: on CouchDB itself, and on the embedded store, where settee is the server.

pouchdb-server in memory has no users (everyone is admin): these do not run on it.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from service.couch import Forbidden, Unauthorized, blocking
from tests.conftest import answer
from tests.waiting import until

PASSWORD = "pw-" + uuid.uuid4().hex[:8]


@pytest.fixture
def with_users(backend):
    if backend == "pouchdb":
        pytest.skip("pouchdb-server in memory has no users or _security: everyone is admin")


def basic(name: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


@pytest.fixture
def user(with_users, bcouch):
    """A user with one role, deleted after the test."""
    name = "u-" + uuid.uuid4().hex[:8]
    doc_id = f"org.couchdb.user:{name}"
    bcouch.users.save(
        {"_id": doc_id, "name": name, "type": "user", "roles": ["reader"]} | {"password": PASSWORD}
    )
    yield name
    bcouch.users.delete(bcouch.users.get(doc_id))


def open_to(bdb: Any, names: list[str]) -> None:
    bdb.security({"admins": {"names": [], "roles": []}, "members": {"names": names, "roles": []}})


@pytest.mark.gen_test
async def test_a_password_is_kept_hashed_as_couchdb_keeps_it(settee, user):
    doc = answer(await settee.fetch("GET", f"/_users/org.couchdb.user:{user}"))
    assert "password" not in doc
    assert doc["password_scheme"] == "pbkdf2" and doc["pbkdf2_prf"] == "sha256"
    assert doc["iterations"] == 600_000 and len(doc["derived_key"]) == 64


@pytest.mark.gen_test
async def test_session_says_who_the_client_is(settee, user):
    anonymous = answer(await settee.fetch("GET", "/_session", anonymous=True))
    assert anonymous["userCtx"] == {"name": None, "roles": []}
    assert anonymous["info"] == {"authentication_handlers": ["cookie", "default"]}
    me = answer(await settee.fetch("GET", "/_session", headers=basic(user), anonymous=True))
    assert me["userCtx"] == {"name": user, "roles": ["reader"]}
    assert me["info"]["authenticated"] == "default"
    wrong = await settee.fetch("GET", "/", headers=basic(user, "nope"), anonymous=True)
    assert wrong.code == 401 and answer(wrong)["reason"] == "Name or password is incorrect."
    garbage = await settee.fetch("GET", "/_session", headers={"Cookie": "AuthSession=x"})
    assert garbage.code == 400 and "Malformed AuthSession cookie" in answer(garbage)["reason"]
    bad_base64 = await settee.fetch(
        "GET", "/_session", headers={"Authorization": "Basic !!!"}, anonymous=True
    )
    assert bad_base64.code == 400


@pytest.mark.gen_test
async def test_cookie_login_form_or_json_and_logout(settee, user):
    form = await settee.fetch(
        "POST",
        "/_session",
        f"name={user}&password={PASSWORD}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        anonymous=True,
    )
    assert form.code == 200 and answer(form) == {"ok": True, "name": user, "roles": ["reader"]}
    cookie = form.headers["Set-Cookie"]
    assert "Max-Age=600" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
    session = {"Cookie": cookie.split(";")[0]}
    me = answer(await settee.fetch("GET", "/_session", headers=session, anonymous=True))
    assert me["userCtx"]["name"] == user and me["info"]["authenticated"] == "cookie"
    wrong = await settee.fetch(
        "POST", "/_session", {"name": user, "password": "nope"}, anonymous=True
    )
    assert wrong.code == 401 and wrong.headers["Set-Cookie"].startswith("AuthSession=;")
    plain = await settee.fetch(
        "POST", "/_session", "x", headers={"Content-Type": "text/plain"}, anonymous=True
    )
    assert plain.code == 415 and answer(plain)["error"] == "bad_content_type"
    out = await settee.fetch("DELETE", "/_session", headers=session, anonymous=True)
    assert out.code == 200 and out.headers["Set-Cookie"].startswith("AuthSession=;")


@pytest.mark.gen_test
async def test_a_new_password_replaces_the_old(settee, bcouch, user):
    """The old password stops working at once. (CouchDB 3.4.3 lets the sessions made with
    it live on until they expire; the embedded store ends them, its cookies being keyed
    with the password's salt.)"""
    doc = bcouch.users.get(f"org.couchdb.user:{user}")
    doc["password"] = "another-" + PASSWORD
    bcouch.users.save(doc)
    old = await settee.fetch("GET", "/_session", headers=basic(user), anonymous=True)
    assert old.code == 401
    new = basic(user, "another-" + PASSWORD)
    me = answer(await settee.fetch("GET", "/_session", headers=new, anonymous=True))
    assert me["userCtx"]["name"] == user


@pytest.mark.gen_test
async def test_a_new_database_is_its_admins_until_opened(settee, user, bdb):
    path = f"/{bdb.name}"
    refused = await settee.fetch("GET", path, headers=basic(user), anonymous=True)
    assert refused.code == 403 and answer(refused)["error"] == "forbidden"
    assert (await settee.fetch("GET", path, anonymous=True)).code == 401
    bdb.security({"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": []}})
    assert (await settee.fetch("GET", path, anonymous=True)).code == 200
    write = await settee.fetch("PUT", f"{path}/x", {"a": 1}, anonymous=True)
    assert write.code == 201, write.body
    design = await settee.fetch("PUT", f"{path}/_design/d", {"views": {}}, anonymous=True)
    assert design.code == 401 and answer(design)["reason"] == "You are not a db or server admin."
    compact = await settee.fetch("POST", f"{path}/_compact", {}, anonymous=True)
    assert compact.code == 401


@pytest.mark.gen_test
async def test_members_and_roles_and_database_admins(settee, user, bdb):
    path = f"/{bdb.name}"
    bdb.security(
        {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": ["reader"]}}
    )
    assert (await settee.fetch("PUT", f"{path}/x", {"a": 1}, headers=basic(user))).code == 201
    design = await settee.fetch("PUT", f"{path}/_design/d", {"views": {}}, headers=basic(user))
    assert design.code == 403 and answer(design)["reason"] == "You are not a db or server admin."
    bulk = await settee.fetch(
        "POST",
        f"{path}/_bulk_docs",
        {"docs": [{"_id": "_design/e"}, {"_id": "y"}]},
        headers=basic(user),
    )
    assert [row.get("error") for row in answer(bulk)] == ["forbidden", None]
    bdb.security({"admins": {"names": [user], "roles": []}, "members": {"names": [], "roles": []}})
    again = await settee.fetch("PUT", f"{path}/_design/d", {"views": {}}, headers=basic(user))
    assert again.code == 201, again.body
    assert (await settee.fetch("PUT", f"{path}/_security", {}, headers=basic(user))).code == 200
    assert (await settee.fetch("DELETE", path, headers=basic(user))).code == 401


VALIDATE = """function (newDoc, oldDoc, userCtx, secObj) {
  if (newDoc.forbid) throw({forbidden: "no " + newDoc.forbid});
  if (newDoc.login) throw({unauthorized: "log in"});
  if (newDoc.plain) throw("plain");
  if (newDoc.whoami && userCtx.name !== newDoc.whoami) throw({forbidden: "not " + userCtx.name});
  if (oldDoc && oldDoc.frozen) throw({forbidden: "frozen"});
  if (newDoc.members && secObj.members.names[0] !== newDoc.members) throw({forbidden: "sec"});
}"""


@pytest.mark.gen_test(timeout=30)
async def test_validate_doc_update_requires_its_design_documents_modules(settee, user, bdb):
    """``validate_doc_update`` may ``require()`` a module of its design document; editing
    the module changes what is refused."""
    path = f"/{bdb.name}"
    open_to(bdb, [user])
    rules = "exports.check = function (doc) { if (doc.bad) throw({forbidden: 'bad'}); };"
    bdb.save(
        {
            "_id": "_design/modular",
            "lib": {"rules": rules},
            "validate_doc_update": "function (doc) { require('lib/rules').check(doc); }",
        }
    )

    async def put(doc_id: str, body: dict[str, Any]) -> Any:
        return await settee.fetch(
            "PUT", f"{path}/{doc_id}", body, headers=basic(user), anonymous=True
        )

    refused = await put("a", {"bad": True})
    assert refused.code == 403 and answer(refused)["reason"] == "bad"
    assert (await put("b", {"good": True})).code == 201
    ddoc = bdb.get("_design/modular")
    ddoc["lib"]["rules"] = rules.replace("doc.bad", "doc.good")
    bdb.save(ddoc)
    # CouchDB's cache of design documents learns of the edit a moment later, under load.
    attempts = iter(range(1000))

    async def refused_now() -> bool:
        return (await put(f"d{next(attempts)}", {"good": True})).code == 403

    await until(refused_now, what="the edited module's rule")
    assert (await put("c", {"bad": True})).code == 201


@pytest.mark.gen_test
async def test_validate_doc_update_refuses_writes_as_couchdb(settee, user, bdb):
    path = f"/{bdb.name}"
    open_to(bdb, [user])
    bdb.save({"_id": "_design/rules", "validate_doc_update": VALIDATE})
    me = basic(user)

    async def put(doc_id: str, body: dict[str, Any]) -> Any:
        return await settee.fetch("PUT", f"{path}/{doc_id}", body, headers=me, anonymous=True)

    forbidden = await put("a", {"forbid": "thanks"})
    assert forbidden.code == 403 and answer(forbidden) == {
        "error": "forbidden",
        "reason": "no thanks",
    }
    login = await put("b", {"login": 1})
    assert login.code == 401 and answer(login)["reason"] == "log in"
    assert (await put("c", {"plain": 1})).code == 500
    assert (await put("d", {"whoami": user})).code == 201
    assert (await put("e", {"members": user})).code == 201
    frozen = await put("f", {"frozen": True})
    assert frozen.code == 201
    rev = answer(frozen)["rev"]
    assert (await put("f", {"_rev": rev, "thawed": True})).code == 403
    delete = await settee.fetch("DELETE", f"{path}/f?rev={rev}", headers=me, anonymous=True)
    assert delete.code == 403
    attach = await settee.fetch(
        "PUT",
        f"{path}/f/x.txt?rev={rev}",
        b"x",
        headers={**me, "Content-Type": "text/plain"},
        anonymous=True,
    )
    assert attach.code == 403
    bulk = await settee.fetch(
        "POST",
        f"{path}/_bulk_docs",
        {"docs": [{"_id": "g", "forbid": "g"}, {"_id": "h", "login": 1}, {"_id": "i"}]},
        headers=me,
        anonymous=True,
    )
    assert [(row.get("error"), row.get("reason")) for row in answer(bulk)] == [
        ("forbidden", "no g"),
        ("unauthorized", "log in"),
        (None, None),
    ]
    replicated = await settee.fetch(
        "POST",
        f"{path}/_bulk_docs",
        {"new_edits": False, "docs": [{"_id": "j", "_rev": "1-abc", "forbid": "j"}]},
    )
    assert answer(replicated) == [
        {"id": "j", "rev": "1-abc", "error": "forbidden", "reason": "no j"}
    ]
    local = await put("_local/k", {"forbid": "k"})
    assert local.code == 201  # _local documents are not validated
    # A replicated revision over the frozen one: its validation sees the frozen one as oldDoc.
    graft = {"_rev": "2-abc", "_revisions": {"start": 2, "ids": ["abc", rev.split("-")[1]]}}
    thawed = await settee.fetch(
        "PUT", f"{path}/f?new_edits=false", {**graft, "thawed": True}, headers=me, anonymous=True
    )
    assert thawed.code == 403, thawed.body
    # A COPY to a _local id makes a _local document, which never replicates; not a document.
    await settee.fetch(
        "COPY", f"{path}/d", headers={**me, "Destination": "_local/copy"}, anonymous=True
    )
    listed = answer(await settee.fetch("GET", f"{path}/_all_docs", headers=me, anonymous=True))
    assert "_local/copy" not in [row["id"] for row in listed["rows"]]


@pytest.mark.gen_test
async def test_the_users_database_is_the_server_admins(settee, user):
    """As CouchDB 3 sets it up: no sign-up, no reading one's own document, ``_security``
    fixed; what a server admin writes there follows CouchDB's rules of user documents."""
    doc_id = f"org.couchdb.user:{user}"
    own = await settee.fetch("GET", f"/_users/{doc_id}", headers=basic(user), anonymous=True)
    assert own.code == 403
    name = "n-" + uuid.uuid4().hex[:8]
    signup = {"name": name, "type": "user", "roles": [], "password": "x"}
    made = await settee.fetch("PUT", f"/_users/org.couchdb.user:{name}", signup, anonymous=True)
    assert made.code == 401
    opened = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": []}}
    editable = await settee.fetch("PUT", "/_users/_security", opened)
    assert editable.code == 403
    assert answer(editable)["reason"] == "You can't edit the security object of the user database."
    listing = await settee.fetch("GET", "/_users/_all_docs", headers=basic(user), anonymous=True)
    assert listing.code == 401
    for bad, reason in (
        ({"name": "_x"}, "Username may not start with underscore."),
        ({"roles": ["_boss"]}, "No system roles (starting with underscore) in users db."),
        ({"type": "person"}, "doc.type must be user"),
        ({"roles": "boss"}, "doc.roles must be an array"),
    ):
        body = {"name": name, "type": "user", "roles": [], "password": "x", **bad}
        refused = await settee.fetch("PUT", f"/_users/org.couchdb.user:{body['name']}", body)
        assert (refused.code, answer(refused).get("reason")) == (403, reason), refused.body
    wrong_id = await settee.fetch("PUT", "/_users/someone", {**signup, "name": "someone"})
    assert answer(wrong_id)["reason"] == "Doc ID must be of the form org.couchdb.user:name"


@pytest.mark.gen_test
async def test_a_replication_reads_and_writes_only_what_its_requester_may(
    settee, bcouch, user, bdb
):
    bdb.save({"_id": "secret"})
    target = "copy-" + uuid.uuid4().hex[:8]
    body = {"source": bdb.name, "target": target, "create_target": True}
    stolen = await settee.fetch("POST", "/_replicate", body, headers=basic(user), anonymous=True)
    assert stolen.code >= 400, stolen.body
    assert target not in bcouch.all_dbs()


def test_a_client_with_credentials_acts_as_their_user(user, bcouch, bdb):
    """``Couch(url, auth=…)`` is that user on the embedded store as over HTTP: never the
    store's admin that a client without credentials is in-process."""
    url = bcouch.endpoint.url  # without the test server's credentials
    with blocking.Couch(url, auth=(user, PASSWORD)) as couch:
        assert couch.session()["userCtx"]["name"] == user
        with pytest.raises(Forbidden):
            couch[bdb.name].info()  # a new database is its admins' alone
    with blocking.Couch(url, auth=(user, "wrong")) as couch, pytest.raises(Unauthorized):
        couch.all_dbs()
