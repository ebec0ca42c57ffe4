"""``POST /_replicate`` on the embedded store: CouchDB's replication protocol, run by the store.

A one-shot replication runs in the request's thread and answers when it is done, as CouchDB's
does; a continuous one runs in a thread of its own until cancelled (``continuous``). The
documents copied may be chosen by ``doc_ids``, a ``selector`` or a ``filter`` function of
the source's with its ``query_params``. Both ends are reached with settee's blocking client,
so an end is anything it reaches by URL: a CouchDB (the way from one machine up to a
cluster), pouchdb-server, a settee, or a database of this store (``embedded:`` and this
store's directory; a bare name, too, is one of this store's, as CouchDB 3.4 reads it as its
own node's). An end is a URL, or ``{"url",
"headers"}`` with Basic credentials. Errors are CouchDB 3.4.3's, status included (an end that
cannot be opened is a 500 ``db_not_found``).

Each round reads a batch of the source's ``_changes`` (``style=all_docs``), asks the target
which of those revisions it lacks (``_revs_diff``), reads them with their history and
attachments (``_bulk_get``, which CouchDB has had since 2.0) and writes them with
``new_edits=false``. A checkpoint in a ``_local`` document on both ends after each round
lets the next replication between them start where this one stopped.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from ..couch import blocking
from ..couch.errors import (
    BadRequest,
    CouchError,
    HTTPError,
    NotFound,
    PreconditionFailed,
    ServerError,
)
from ..couch.transport import EMBEDDED, Endpoint
from .call import Call, MethodNotAllowed
from .params import body_json
from .reply import Reply, json_reply

BATCH = 500  # changes read, compared and written per round, then a checkpoint
HISTORY = 50  # sessions a checkpoint remembers, as CouchDB's
VERSION = 4  # CouchDB 3's replication_id_version


@dataclass(frozen=True, slots=True)
class End:
    """One end of a replication: its URL (no credentials) and the credentials to use.

    ``acting_for``: an end in this very store, reached for a requester other than the
    process itself, with the requester's credentials (``Authorization``, ``Cookie``): a
    replication never reads or writes what its requester could not."""

    url: str
    auth: tuple[str, str] | None
    acting_for: Mapping[str, str] | None = None

    @contextlib.contextmanager
    def open(self) -> Iterator[blocking.Database]:
        if self.acting_for is None:
            with blocking.Database(self.url, self.auth) as db:
                yield db
            return
        directory, _, name = self.url.rpartition("/")
        with blocking.Couch(directory, local_admin=False) as couch:
            acting = couch.acting_for(self.acting_for)
            yield blocking.Database(name, couch=acting)


@dataclass(slots=True)
class Stats:
    missing_checked: int = 0
    missing_found: int = 0
    docs_read: int = 0
    docs_written: int = 0
    doc_write_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class Spec:
    source: End
    target: End
    create_target: bool = False
    doc_ids: list[str] | None = None
    filter: str | None = None  # a filter function, "ddoc/name", of the source
    query_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    selector: dict[str, Any] | None = None
    continuous: bool = False
    since_seq: Any = None  # where to start when no checkpoint says

    def replication_id(self, server_uuid: str) -> str:
        """Stable for the same two ends and choice of documents, whatever the other options,
        as the id of CouchDB's ``_local`` checkpoints: a run with ``create_target`` and one
        without share their checkpoint."""
        chosen = [self.doc_ids, self.filter, self.query_params, self.selector]
        if self.since_seq is not None:
            chosen.append(self.since_seq)
        key = json.dumps([server_uuid, self.source.url, self.target.url, *chosen])
        return hashlib.md5(key.encode()).hexdigest()

    def local_id(self, server_uuid: str) -> str:
        """CouchDB's name of the replication: its id, and the options that make it another
        job (``_local_id`` of a continuous one, the ``replication_id`` that cancels it)."""
        suffix = "+continuous" * self.continuous + "+create_target" * self.create_target
        return self.replication_id(server_uuid) + suffix

    def changes_options(self) -> dict[str, Any]:
        """The options of the source's ``_changes`` that pass only the chosen documents."""
        if self.doc_ids is not None:
            return {"filter": "_doc_ids", "doc_ids": self.doc_ids}
        if self.selector is not None:
            return {"selector": self.selector}
        if self.filter is not None:
            return {**self.query_params, "filter": self.filter}
        return {}


def replicate(call: Call) -> Reply:
    if not call.body:
        raise BadRequest("bad_request", "Missing request body")
    if call.method != "POST":
        raise MethodNotAllowed("POST")
    body = body_json(call.body)
    requester = None if call.user.how == "local" else _credentials(call.headers)
    if body.get("cancel"):
        return _cancel(call, body, requester)
    spec = parse_spec(body, call.store.directory, requester)
    if spec.continuous:
        local_id = spec.local_id(call.store.uuid)
        call.store.replications.start(
            local_id, spec, spec.replication_id(call.store.uuid), call.user
        )
        return json_reply(202, {"ok": True, "_local_id": local_id})
    return json_reply(200, _run(spec, spec.replication_id(call.store.uuid)))


def _cancel(call: Call, body: Mapping[str, Any], requester: Mapping[str, str] | None) -> Reply:
    """Stop a continuous replication, named by ``replication_id`` or by its spec."""
    local_id = body.get("replication_id")
    if not isinstance(local_id, str):
        local_id = parse_spec(body, call.store.directory, requester).local_id(call.store.uuid)
    if not call.store.replications.cancel(local_id, call.user):
        raise NotFound("not_found", "missing")
    return json_reply(200, {"ok": True, "_local_id": local_id})


def _credentials(headers: Mapping[str, str]) -> dict[str, str]:
    """The requester's credential headers (the store's are lower-case)."""
    names = {"authorization": "Authorization", "cookie": "Cookie"}
    return {names[key]: value for key, value in headers.items() if key in names}


def parse_spec(
    body: Mapping[str, Any], directory: Path, requester: Mapping[str, str] | None
) -> Spec:
    doc_ids = body.get("doc_ids")
    if doc_ids is not None and not (
        isinstance(doc_ids, list) and all(isinstance(i, str) for i in doc_ids)
    ):
        raise BadRequest("bad_request", "parameter `doc_ids` must be an array")
    chosen_by, selector = body.get("filter"), body.get("selector")
    query_params: dict[str, Any] = {}
    if selector is not None and not isinstance(selector, dict):
        raise BadRequest("bad_request", "`selector` must be a JSON object")
    if chosen_by is not None:
        if not isinstance(chosen_by, str) or chosen_by.count("/") != 1:
            raise BadRequest("bad_request", "`filter` must be a string ddoc/name")
        query_params = body.get("query_params") or {}
        if not isinstance(query_params, dict):
            raise BadRequest("bad_request", "`query_params` must be an object")
    if sum(x is not None for x in (doc_ids, chosen_by, selector)) > 1:
        raise BadRequest("bad_request", "`doc_ids`, `filter`, `selector` are mutually exclusive")
    return Spec(
        _end(body.get("source"), "source", directory, requester),
        _end(body.get("target"), "target", directory, requester),
        create_target=body.get("create_target") is True,
        doc_ids=doc_ids,
        filter=chosen_by,
        query_params={
            str(k): v if isinstance(v, str) else json.dumps(v) for k, v in query_params.items()
        },
        selector=selector,
        continuous=body.get("continuous") is True,
        since_seq=body.get("since_seq"),
    )


def _end(value: Any, role: str, directory: Path, requester: Mapping[str, str] | None) -> End:
    headers: Mapping[str, Any] = {}
    if isinstance(value, Mapping):
        headers = value.get("headers") or {}
        value = value.get("url")
        if not isinstance(headers, Mapping):
            raise BadRequest("bad_request", f"`{role}` headers must be an object")
    if value is None and role == "source":
        raise ServerError("error", "Missing replicator database")  # CouchDB 3.4.3's words
    if not isinstance(value, str) or not value:
        raise _not_found(str(value))
    if not value.startswith(("http://", "https://", EMBEDDED)):
        value = f"{EMBEDDED}{directory}/{value}"  # a bare name: a database of this store's
    try:
        endpoint = Endpoint.parse(value.rstrip("/"), _basic_auth(headers.get("Authorization")))
    except ValueError:
        raise _not_found(value) from None
    if endpoint.embedded and Path(endpoint.path).parent != directory:
        raise BadRequest("bad_request", f"an embedded {role} must be a database of this store")
    if endpoint.embedded and endpoint.auth is None and requester is not None:
        return End(endpoint.url, None, requester)
    return End(endpoint.url, endpoint.auth)


def _not_found(url: str) -> ServerError:
    if url.startswith(EMBEDDED):  # where the store keeps its files is no client's business
        url = url.rpartition("/")[2]
    return ServerError("db_not_found", f"could not open {url}/")


def _basic_auth(header: Any) -> tuple[str, str] | None:
    if not isinstance(header, str) or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        raise BadRequest("bad_request", "invalid Authorization header") from None
    return user, password


def _run(spec: Spec, rep_id: str) -> dict[str, Any]:
    with (
        opened(spec.source, "source") as source,
        opened(spec.target, "target", create=spec.create_target) as target,
    ):
        return Run(spec, rep_id, source, target).run()


@contextlib.contextmanager
def opened(end: End, role: str, *, create: bool = False) -> Iterator[blocking.Database]:
    """An end opened and checked, closed on exit; one that cannot be used is CouchDB's
    ``db_not_found`` (``unauthorized`` for credentials it refused)."""
    with end.open() as db:
        try:
            try:
                db.info()
            except NotFound:
                if not create:
                    raise
                with contextlib.suppress(PreconditionFailed):
                    db.couch.create(db.name)
        except HTTPError as exc:
            if exc.status in (401, 403):
                reason = f"unauthorized to access or create database {end.url}/"
                raise type(exc)("unauthorized", reason) from None
            raise _not_found(end.url) from None
        except CouchError:
            raise _not_found(end.url) from None
        yield db


class Run:
    """One run of a replication: from the checkpoint both ends agree on to the source's end."""

    def __init__(
        self, spec: Spec, rep_id: str, source: blocking.Database, target: blocking.Database
    ) -> None:
        self.spec, self.source, self.target = spec, source, target
        self.checkpoint_id = "_local/" + rep_id
        self.session_id = uuid.uuid4().hex
        self.stats = Stats()

    def run(self) -> dict[str, Any]:
        started = _http_date()
        source_log, target_log = self._log(self.source), self._log(self.target)
        start_seq = _agreed_seq(source_log, target_log)
        if not start_seq and self.spec.since_seq is not None:
            start_seq = self.spec.since_seq
        if start_seq and source_log.get("history"):  # counts go on from there, as CouchDB's
            last = source_log["history"][0]
            self.stats = Stats(**{k: last.get(k, 0) for k in Stats.__dataclass_fields__})
        seq, read_any = start_seq, False
        for rows, last_seq in self._batches(start_seq):
            read_any = True
            self._copy(rows)
            seq = last_seq
        if not read_any:
            return {
                "ok": True,
                "no_changes": True,
                "session_id": self.session_id,
                "source_last_seq": seq,
                "replication_id_version": VERSION,
                "history": source_log.get("history", []),
            }
        entry = {
            "session_id": self.session_id,
            "start_time": started,
            "end_time": _http_date(),
            "start_last_seq": start_seq,
            "end_last_seq": seq,
            "recorded_seq": seq,
            **self.stats.as_dict(),
        }
        history = [entry, *source_log.get("history", [])][:HISTORY]
        checkpoint = {
            "session_id": self.session_id,
            "source_last_seq": seq,
            "replication_id_version": VERSION,
            "history": history,
        }
        self._save_log(self.source, source_log, checkpoint)
        self._save_log(self.target, target_log, checkpoint)
        return {"ok": True, **checkpoint}

    def _batches(self, since: Any) -> Iterator[tuple[list[dict[str, Any]], Any]]:
        options: dict[str, Any] = {"style": "all_docs", "limit": BATCH}
        options.update(self.spec.changes_options())
        while True:
            feed = self.source.changes(since=since, **options)
            rows = feed["results"]
            if not rows:
                return
            since = feed["last_seq"]
            yield rows, since
            if feed.get("pending") == 0 or len(rows) < BATCH:
                return

    def _copy(self, rows: list[dict[str, Any]]) -> None:
        revs: dict[str, list[str]] = {}
        for row in rows:
            revs.setdefault(row["id"], []).extend(c["rev"] for c in row["changes"])
        self.stats.missing_checked += sum(len(r) for r in revs.values())
        diff = self.target.revs_diff(revs) if revs else {}
        wanted = [(doc_id, found["missing"]) for doc_id, found in diff.items()]
        self.stats.missing_found += sum(len(missing) for _, missing in wanted)
        docs = self._read(wanted)
        self.stats.docs_read += len(docs)
        if not docs:
            return
        failures = [r for r in self.target.bulk_docs(docs, new_edits=False) if "error" in r]
        self.stats.doc_write_failures += len(failures)
        self.stats.docs_written += len(docs) - len(failures)

    def _read(self, wanted: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
        """The missing revisions, whole: history and attachments' data (the latest leaf
        where one was superseded meanwhile), each once."""
        if not wanted:
            return []
        results = self.source.bulk_get(
            [{"id": doc_id, "rev": rev} for doc_id, missing in wanted for rev in missing],
            revs=True,
            attachments=True,
            latest=True,
        )
        answers = [entry for result in results for entry in result["docs"]]
        docs: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in answers:
            doc = entry.get("ok")
            if isinstance(doc, dict):
                docs.setdefault((doc["_id"], doc["_rev"]), doc)
        return list(docs.values())

    def _log(self, db: blocking.Database) -> dict[str, Any]:
        try:
            checkpoint = db.get(self.checkpoint_id)
        except NotFound:
            return {}
        return dict(checkpoint) if isinstance(checkpoint, Mapping) else {}

    def _save_log(
        self, db: blocking.Database, old: Mapping[str, Any], checkpoint: Mapping[str, Any]
    ) -> None:
        doc = {"_id": self.checkpoint_id, **checkpoint}
        if old.get("_rev"):
            doc["_rev"] = old["_rev"]
        db.save(doc)


def _agreed_seq(source_log: Mapping[str, Any], target_log: Mapping[str, Any]) -> Any:
    """Where both ends' checkpoints say the last common session stopped (0: start over)."""
    if not source_log or not target_log:
        return 0
    if source_log.get("session_id") == target_log.get("session_id"):
        return source_log.get("source_last_seq", 0)
    target_sessions = {h.get("session_id") for h in target_log.get("history", [])}
    for entry in source_log.get("history", []):
        if entry.get("session_id") in target_sessions:
            return entry.get("recorded_seq", 0)
    return 0


def _http_date() -> str:
    return formatdate(usegmt=True)
