"""settee's CouchDB client: corduroy's API on Python 3, awaitable, callback or blocking.

    from service.couch import Couch, relax

    async with Couch("http://127.0.0.1:5984") as couch:
        db = await couch.db("albums", create_if_missing=True)
        await db.save({"_id": "kind-of-blue", "artist": "Miles Davis"})
        doc = await db.get("kind-of-blue")

The blocking face is ``service.couch.blocking`` (same classes, results returned directly).
Code written for corduroy runs after ``install_as_corduroy()``.
"""

from .changes import ChangesFeed, ThreadedChangesFeed
from .client import Couch, Database, FunctionResult
from .compat import install_as_corduroy
from .config import defaults
from .conflicts import ConflictResolution
from .documents import Document, Row, View
from .errors import (
    BadRequest,
    Conflict,
    CouchError,
    Forbidden,
    HTTPError,
    NotFound,
    PreconditionFailed,
    RequestTooLarge,
    ServerError,
    ServerUnavailable,
    Unauthorized,
)
from .relax import relax
from .runner import Status

__all__ = [
    "BadRequest",
    "ChangesFeed",
    "Conflict",
    "ConflictResolution",
    "Couch",
    "CouchError",
    "Database",
    "Document",
    "Forbidden",
    "FunctionResult",
    "HTTPError",
    "NotFound",
    "PreconditionFailed",
    "RequestTooLarge",
    "Row",
    "ServerError",
    "ServerUnavailable",
    "Status",
    "ThreadedChangesFeed",
    "Unauthorized",
    "View",
    "defaults",
    "install_as_corduroy",
    "relax",
]
