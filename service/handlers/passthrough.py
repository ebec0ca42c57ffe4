"""What a relayed exchange keeps of its headers, each way.

Everything settee does not handle itself is passed to the backend as it is: method, path,
query, body and headers, minus what belongs to one hop of the connection (RFC 9110 §7.6.1),
and the answer comes back the same way, its ``Location`` pointed at settee rather than at the
backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set again for each hop by settee's own HTTP layer, or by the credentials it passes on.
NOT_FORWARDED = frozenset({"host", "content-length", "expect", "cookie", "authorization"})
# Headers settee's server writes itself on every answer.
NOT_RELAYED_BACK = frozenset({"date", "server"})


def _named_by_connection(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The headers a ``Connection`` header declares hop-by-hop."""
    return frozenset(
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    )


def request_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The client's headers to send on: end-to-end ones only; credentials are added apart.

    A header the ``Connection`` header names is dropped, whatever it is: a client that
    names ``Authorization`` there is sent on without it (as anonymous), never with anything
    of settee's in its place.
    """
    headers = list(headers)
    dropped = HOP_BY_HOP | NOT_FORWARDED | _named_by_connection(headers)
    forwarded: dict[str, str] = {}
    for name, value in headers:
        if name.lower() not in dropped:
            forwarded[name] = f"{forwarded[name]}, {value}" if name in forwarded else value
    return forwarded


def response_headers(
    headers: Mapping[str, str], backend_urls: Iterable[str], origin: str
) -> Iterator[tuple[str, str]]:
    """The backend's headers to relay back, a ``Location`` on the backend (on any of a
    cluster's nodes) made settee's."""
    dropped = HOP_BY_HOP | NOT_RELAYED_BACK | _named_by_connection(headers.items())
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in dropped:
            continue
        if lowered == "location":
            for backend_url in backend_urls:
                if value.startswith(backend_url):
                    value = origin + value[len(backend_url) :]
                    break
        yield name, value
