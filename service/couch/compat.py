"""``install_as_corduroy()``: let code written for corduroy import settee's client by its name.

As PyMySQL's ``install_as_MySQLdb()`` does for MySQLdb: afterwards ``import corduroy`` and
``from corduroy import Couch, Database, relax, NotFound`` give settee's classes, under the
names corduroy's reference lists, and ``corduroy.defaults`` is settee's ``defaults`` (so
setting its ``host`` and ``port`` moves ``Database("name")``). corduroy's modules are there
too (``corduroy.couchdb``, ``.exceptions``, ``.atoms``, ``.config``), holding what corduroy's
held that settee has.

``Couch`` and ``Database`` are the awaitable ones: a call is yielded under ``@relax``,
awaited, or given a ``callback``. corduroy made a call without either block, which it found
out by inspecting the stack; for blocking code, use ``service.couch.blocking``.
"""

from __future__ import annotations

import sys
import types

from .changes import ChangesFeed
from .client import Couch, Database
from .config import defaults
from .conflicts import ConflictResolution
from .documents import Document, Row, View
from .errors import Conflict, HTTPError, NotFound, PreconditionFailed, ServerError, Unauthorized
from .relax import relax
from .runner import Status

# The corduroy release whose API this is.
CORDUROY_VERSION = "0.9.1"

_MODULES: dict[str, dict[str, object]] = {
    "couchdb": {"Couch": Couch, "Database": Database},
    "exceptions": {
        "HTTPError": HTTPError,
        "PreconditionFailed": PreconditionFailed,
        "NotFound": NotFound,
        "ServerError": ServerError,
        "Unauthorized": Unauthorized,
        "Conflict": Conflict,
        "ConflictResolution": ConflictResolution,
    },
    "atoms": {"Document": Document, "View": View, "Row": Row, "Status": Status},
    "config": {"defaults": defaults},
    "io": {"ChangesFeed": ChangesFeed},
}

# corduroy's own __all__, then the rest of its reference.
_ALL = [
    "Couch",
    "Database",
    "Document",
    "relax",
    "HTTPError",
    "Conflict",
    "NotFound",
    "PreconditionFailed",
    "ServerError",
    "Unauthorized",
]
_REFERENCE = ["View", "Row", "Status", "ChangesFeed", "ConflictResolution", "defaults"]


def install_as_corduroy() -> None:
    """Make ``import corduroy`` (and its submodules) import settee's client."""
    package = types.ModuleType("corduroy", __doc__)
    package.__path__ = []  # a package: its submodules are the ones put in sys.modules here
    # A module's attributes set through its __dict__, which a type checker lets hold anything.
    package.__dict__.update(__version__=CORDUROY_VERSION, __all__=list(_ALL), relax=relax)
    for name, contents in _MODULES.items():
        module = types.ModuleType(f"corduroy.{name}")
        module.__dict__.update(contents, __all__=list(contents))
        sys.modules[module.__name__] = module
        setattr(package, name, module)
        package.__dict__.update(contents)
    for name in _ALL + _REFERENCE:
        assert hasattr(package, name), name
    sys.modules["corduroy"] = package
