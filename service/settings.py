"""settee's settings: one dataclass, filled from a TOML file, then the environment, then flags.

Each later source overrides the one before. Every field carries its help text and the
environment variable that sets it, so ``settee serve --help`` lists them all with defaults.
Only this module and the command that serves (``service.serving``) read the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .policy import Policy

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "settee.toml"


LOG_LEVELS = ("debug", "info", "warning", "error")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
METAVARS = {
    "int": "N",
    "float": "SECONDS",
    "str": "TEXT",
    "bool": "BOOL",
    "tuple[str, ...]": "LIST",
}


def _setting(default: Any, help: str, env: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "env": env})


@dataclass(frozen=True)
class Settings:
    """Everything an operator can set; see ``config/settee.toml`` for a commented copy."""

    address: str = _setting("127.0.0.1", "address to listen on")
    port: int = _setting(8888, "port to listen on")
    couch_url: str = _setting(
        "",
        "URL of the CouchDB to serve, or its cluster's node URLs comma-separated (none: the "
        "embedded store in data_dir; or embedded:PATH)",
        env="COUCHDB_URL",
    )
    data_dir: str = _setting("var", "directory of the embedded store's databases")
    admin: str = _setting(
        "",
        "the embedded store's server admin, NAME:PASSWORD (none: made once, shown once)",
        env="SETTEE_ADMIN",
    )
    couch_user: str = _setting("", "CouchDB user name", env="COUCHDB_USER")
    couch_password: str = _setting("", "CouchDB password", env="COUCHDB_PASSWORD")
    couch_timeout: float = _setting(30.0, "seconds to wait for CouchDB to answer a request")
    couch_connections: int = _setting(
        100, "most connections to CouchDB at once, its changes feeds aside (one each)"
    )
    processes: int = _setting(1, "server processes sharing the port (0: one per CPU)")
    max_body_size: int = _setting(64 * 1024 * 1024, "largest request body accepted, in bytes")
    cors_origins: tuple[str, ...] = _setting(
        (), "origins allowed to call settee from a browser (comma-separated; * for any)"
    )
    databases: tuple[str, ...] = _setting(
        (), "the only databases exposed (comma-separated; empty: every one CouchDB allows)"
    )
    read_only: bool = _setting(False, "refuse every request that would change something")
    log_level: str = _setting("info", "debug, info, warning or error")
    shutdown_grace: float = _setting(10.0, "seconds to let in-flight requests finish after SIGTERM")
    max_subscribers: int = _setting(
        10_000, "changes subscribers (WebSocket and HTTP feeds) served at once; 503 past it"
    )
    subscriber_buffer: int = _setting(
        1_000, "changes a subscriber may fall behind before it is closed as a slow consumer"
    )
    feed_linger: float = _setting(
        30.0, "seconds an upstream changes feed stays open after its last subscriber leaves"
    )
    heartbeat: float = _setting(
        10.0, "seconds between WebSocket pings and upstream feed heartbeats"
    )
    reauthorize_interval: float = _setting(
        60.0, "seconds between checks that each changes subscriber may still read its database"
    )
    header_timeout: float = _setting(
        60.0, "seconds a client may take to send a request's head, from its first byte"
    )
    body_timeout: float = _setting(
        600.0, "seconds a client may take to send a request's body, once its head is read"
    )
    idle_timeout: float = _setting(
        3600.0, "seconds a kept-alive connection may wait for its next request"
    )
    write_timeout: float = _setting(
        300.0, "seconds a client may leave an answer unread before its connection is closed"
    )
    xheaders: bool = _setting(
        False, "trust X-Forwarded-For / X-Forwarded-Proto (behind a proxy such as nginx)"
    )
    kv_reap_interval: float = _setting(
        60.0, "seconds between removals of expired service.kv keys (0: never)"
    )
    event_loop: str = _setting(
        "auto", "uvloop, asyncio, or auto: uvloop where it is installed, else asyncio"
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is not a TCP port")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level: expected one of {', '.join(LOG_LEVELS)}")
        if self.processes < 0 or self.shutdown_grace < 0 or self.feed_linger < 0:
            raise ValueError("processes, shutdown_grace and feed_linger must not be negative")
        if min(self.max_body_size, self.max_subscribers, self.subscriber_buffer) <= 0:
            raise ValueError("max_body_size, max_subscribers and subscriber_buffer must be > 0")
        if self.couch_connections <= 0:
            raise ValueError("couch_connections must be > 0")
        if self.kv_reap_interval < 0:
            raise ValueError("kv_reap_interval must not be negative")
        if self.heartbeat <= 0 or self.reauthorize_interval <= 0:
            raise ValueError("heartbeat and reauthorize_interval must be > 0")
        timeouts = (self.header_timeout, self.body_timeout, self.idle_timeout, self.write_timeout)
        if min(timeouts) <= 0:
            raise ValueError("header, body, idle and write timeouts must be > 0")
        if self.event_loop not in EVENT_LOOPS:
            raise ValueError(f"event_loop: expected one of {', '.join(EVENT_LOOPS)}")
        if not self.data_dir:
            raise ValueError("data_dir: must not be empty")
        if self.admin and not self.admin_pair:
            raise ValueError("admin: expected NAME:PASSWORD, both non-empty")
        embedded = self.couch_url.startswith("embedded:") and len(self.couch_url) > 9
        if self.couch_url and not embedded:
            self._check_nodes()

    def _check_nodes(self) -> None:
        """Each of ``couch_url``'s comma-separated URLs is an http(s) URL, no two name one
        node, and they carry the same credentials, if any."""
        nodes, credentials = set(), set()
        for node in self.couch_url.split(","):
            url = urlsplit(node.strip())
            userinfo, _, hostport = url.netloc.rpartition("@")
            shown = url._replace(netloc=hostport).geturl()  # never a password
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"couch_url: not an http(s) or embedded:PATH URL: {shown!r}")
            if shown in nodes:
                raise ValueError(f"couch_url: {shown!r} is named twice")
            nodes.add(shown)
            credentials.add(userinfo)
        if len(credentials) > 1 and len(credentials - {""}) > 1:
            raise ValueError("couch_url: the nodes' URLs carry different credentials")

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if shown["couch_password"]:
            shown["couch_password"] = "***"
        if shown["admin"]:
            shown["admin"] = shown["admin"].partition(":")[0] + ":***"
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @functools.cached_property
    def policy(self) -> Policy:
        return Policy(self.databases, self.read_only)

    @property
    def backend_url(self) -> str:
        """What the client is given: the CouchDB's URL, or the embedded store's."""
        return self.couch_url or "embedded:" + self.data_dir

    @property
    def embedded_dir(self) -> str | None:
        """The embedded store's directory, when that is what settee serves."""
        url = self.backend_url
        return url.removeprefix("embedded:") if url.startswith("embedded:") else None

    @property
    def admin_pair(self) -> tuple[str, str] | None:
        """The embedded store's server admin of the settings, as (name, password)."""
        name, _, password = self.admin.partition(":")
        return (name, password) if name and password else None

    @property
    def couch_auth(self) -> tuple[str, str] | None:
        return (self.couch_user, self.couch_password) if self.couch_user else None


def _convert(kind: str, value: Any, name: str) -> Any:
    """``value`` (from TOML, the environment or a flag) as the type of setting ``name``."""
    if kind == "tuple[str, ...]":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        return tuple(part for part in value if part)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    converter = {"int": int, "float": float, "str": str}[kind]
    try:
        return converter(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {kind}, got {value!r}") from None


def env_name(setting: dataclasses.Field[Any]) -> str:
    return setting.metadata["env"] or "SETTEE_" + setting.name.upper()


def _kind(setting: dataclasses.Field[Any]) -> str:
    """A setting's type as written, e.g. ``"tuple[str, ...]"``: the key of METAVARS and _convert.

    ``from __future__ import annotations`` keeps every annotation of this module a string."""
    assert isinstance(setting.type, str), setting.type
    return setting.type


def parser(prog: str = "settee serve") -> argparse.ArgumentParser:
    """The command line: one flag per setting, plus ``--config``."""
    cli = argparse.ArgumentParser(
        prog=prog,
        description="settee: an asynchronous gateway for CouchDB. Settings come from the "
        "config file, then environment variables, then these flags.",
        argument_default=argparse.SUPPRESS,
    )
    cli.add_argument(
        "--config",
        help=f"TOML settings file (default: {DEFAULT_CONFIG}; env SETTEE_CONFIG)",
    )
    for setting in dataclasses.fields(Settings):
        flag = "--" + setting.name.replace("_", "-")
        default = setting.default
        if isinstance(default, tuple):
            default = ",".join(default) or "none"
        if setting.name == "couch_password" or default == "":
            default = "none"
        cli.add_argument(
            flag,
            dest=setting.name,
            metavar=METAVARS[_kind(setting)],
            help=f"{setting.metadata['help']} (default: {default}; env {env_name(setting)})",
        )
    return cli


def load(
    argv: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    *,
    prog: str = "settee serve",
) -> Settings:
    """Settings from the TOML file, then ``environ``, then ``argv``; ValueError if invalid.

    ``prog`` names the command in ``--help`` and in argparse's own errors."""
    environ = environ or {}
    flags = vars(parser(prog).parse_args(list(argv)))
    path = Path(flags.pop("config", None) or environ.get("SETTEE_CONFIG") or DEFAULT_CONFIG)
    values: dict[str, Any] = {}
    if path.exists():
        try:
            with path.open("rb") as file:
                values.update(tomllib.load(file))
        except OSError as exc:
            raise ValueError(f"config: cannot read {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config: {path} is not valid TOML: {exc}") from None
    elif path != DEFAULT_CONFIG:
        raise ValueError(f"config: no such file: {path}")
    fields = {setting.name: setting for setting in dataclasses.fields(Settings)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"{path}: unknown settings: {', '.join(sorted(unknown))}")
    for name, setting in fields.items():
        if environ.get(env_name(setting)):
            values[name] = environ[env_name(setting)]
    values.update(flags)
    converted = {name: _convert(_kind(fields[name]), value, name) for name, value in values.items()}
    return Settings(**converted)
