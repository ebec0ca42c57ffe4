"""A client's credentials: the request headers that say who the client is to CouchDB.

settee passes them on with every request it makes for the client, and nothing else of
its own, so that CouchDB's users, roles and ``_security`` decide what the client may do.
"""

from __future__ import annotations

from collections.abc import Mapping

from tornado.httputil import parse_cookie

SESSION_COOKIE = "AuthSession"
# CouchDB's proxy authentication (chttpd_auth's proxy_authentication_handler).
PROXY_AUTH_HEADERS = ("X-Auth-CouchDB-UserName", "X-Auth-CouchDB-Roles", "X-Auth-CouchDB-Token")


def credentials_of(headers: Mapping[str, str]) -> dict[str, str]:
    """The credential headers among ``headers``: ``Authorization``, CouchDB's session cookie
    (the client's other cookies are its own business), and the proxy-auth headers."""
    found: dict[str, str] = {}
    if authorization := headers.get("Authorization"):
        found["Authorization"] = authorization
    if session := session_cookie(headers.get("Cookie", "")):
        found["Cookie"] = f"{SESSION_COOKIE}={session}"
    for name in PROXY_AUTH_HEADERS:
        if value := headers.get(name):
            found[name] = value
    if found and (connection := headers.get("Connection")):
        # Headers the client declared hop-by-hop end at settee, credentials too.
        named = {token.strip().lower() for token in connection.split(",")}
        found = {name: value for name, value in found.items() if name.lower() not in named}
    return found


def session_cookie(cookie_header: str) -> str | None:
    """The value of the ``AuthSession`` cookie in a ``Cookie`` header, if there is one."""
    if SESSION_COOKIE not in cookie_header:
        return None
    return parse_cookie(cookie_header).get(SESSION_COOKIE) or None
