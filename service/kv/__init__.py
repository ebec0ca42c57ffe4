"""service.kv: the Couchbase SDK's key-value API (seed 003) over any CouchDB database.

    from service.kv import Bucket, FMT_UTF8

    with Bucket("/tmp/store/demo") as bucket:  # a URL, a path, or a Database
        bucket.set("greeting", "Hello", format=FMT_UTF8)
        bucket.append("greeting", " World!")
        print(bucket.get("greeting").value)

How a key lives in a document is in ``formats``; expiry and locks in ``ops``; one or many
keys per round of requests in ``engine``; views and design documents in ``views``; removing
expired keys in ``expiry`` (and, for the service, ``reaper``).
"""

from .bucket import Bucket
from .errors import (
    ArgumentError,
    DeltaBadvalError,
    KeyExistsError,
    KVError,
    NotFoundError,
    TemporaryFailError,
    ValueFormatError,
)
from .formats import FMT_AUTO, FMT_BYTES, FMT_JSON, FMT_MASK, FMT_PICKLE, FMT_UTF8, Transcoder
from .results import MultiResult, Result, ViewRow

__all__ = [
    "FMT_AUTO",
    "FMT_BYTES",
    "FMT_JSON",
    "FMT_MASK",
    "FMT_PICKLE",
    "FMT_UTF8",
    "ArgumentError",
    "Bucket",
    "DeltaBadvalError",
    "KVError",
    "KeyExistsError",
    "MultiResult",
    "NotFoundError",
    "Result",
    "TemporaryFailError",
    "Transcoder",
    "ValueFormatError",
    "ViewRow",
]
