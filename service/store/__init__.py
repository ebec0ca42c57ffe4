"""The embedded store: CouchDB 3.4's answers computed in-process on SQLite.

``Store`` (a data directory, one file per database, one writer thread) holds the data;
``router.Server`` answers CouchDB's HTTP requests from it; ``transport`` carries the client's
requests to that server without a socket, for ``Couch("embedded:/path/to/dir")``.
"""
