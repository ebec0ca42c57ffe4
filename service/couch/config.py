"""``defaults``: where a Couch or Database made without a server's URL connects, as corduroy's
``corduroy.defaults`` said.

``host`` and ``port`` make the URL of the server for ``Couch()`` and ``Database("name")``;
``http.max_clients`` and ``http.timeout`` are the pool size and request timeout of a Couch
that is not given its own. Changes apply to the objects made afterwards. corduroy's other
settings have no counterpart here: ``uuid_cache`` (a document saved without an ``_id`` is
POSTed and the server names it), ``types`` (answers always decode into Documents),
``http.max_redirects`` (the client follows none) and ``http.io_loop`` (the running asyncio
loop is used).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .documents import Document

defaults = Document(
    host="http://127.0.0.1",
    port=5984,
    http=Document(max_clients=100, timeout=30.0),
)


def server_url(url: str | None) -> str:
    """The server's URL for ``url`` as corduroy read it: None is ``defaults``' host and port;
    a host name without a scheme is reached over http, on ``defaults.port`` unless it names
    a port; a URL with a scheme is taken as it is."""
    if url is None:
        return f"{defaults.host.rstrip('/')}:{defaults.port}"
    if "://" in url or url.startswith("embedded:"):  # the in-process store's, as it is
        return url
    netloc = url.split("/", 1)[0]
    if urlsplit("//" + netloc).port is None:
        url = f"{netloc}:{defaults.port}" + url[len(netloc) :]
    return "http://" + url
