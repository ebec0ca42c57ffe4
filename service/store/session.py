"""``/_session``: who the client is (GET), a cookie login (POST), a logout (DELETE)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from .call import Call, MethodNotAllowed, UnsupportedMediaType
from .params import body_json
from .reply import Reply, json_reply
from .users import WRONG_PASSWORD, ended_session_cookie, user_doc_of

HANDLERS = ["cookie", "default"]


def session(call: Call) -> Reply:
    if call.method == "GET":
        info: dict[str, Any] = {"authentication_handlers": HANDLERS}
        if call.user.how is not None:
            info["authenticated"] = call.user.how
        return json_reply(200, {"ok": True, "userCtx": call.user.as_json(), "info": info})
    if call.method == "POST":
        return _login(call)
    if call.method == "DELETE":
        return json_reply(200, {"ok": True}, {"set-cookie": ended_session_cookie()})
    raise MethodNotAllowed("DELETE,GET,HEAD,POST")


def _login(call: Call) -> Reply:
    name, password = _name_and_password(call)
    users = call.store.users
    user = users.login(name, password, lambda who: user_doc_of(call.store, who))
    if user is None:
        refusal = {"error": "unauthorized", "reason": WRONG_PASSWORD}
        return json_reply(401, refusal, {"set-cookie": ended_session_cookie()})
    cookie = users.cookie(user, lambda who: user_doc_of(call.store, who))
    body = {"ok": True, "name": user.name, "roles": list(user.roles)}
    return json_reply(200, body, {"set-cookie": cookie})


def _name_and_password(call: Call) -> tuple[str, str]:
    content_type = call.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        fields: dict[str, Any] = dict(parse_qsl(call.body.decode("utf-8", "replace")))
    elif content_type == "application/json":
        fields = body_json(call.body)
    else:
        raise UnsupportedMediaType(
            "Content-Type must be 'application/x-www-form-urlencoded' or 'application/json'"
        )
    name, password = fields.get("name"), fields.get("password")
    return (name if isinstance(name, str) else "", password if isinstance(password, str) else "")
