"""The Couchbase guide's beer-sample application, rebuilt on settee and live in the browser.

``python -m demo.beer`` (or ``scripts/demo``) loads the data set if it is missing, then serves
settee's embedded store and this web application from one process. Modules: ``data`` makes
the data set, ``design`` its views, ``load`` writes both, ``forms`` checks what a visitor
submits, ``paging`` turns view rows into pages, ``handlers`` and ``app`` serve the pages,
``serve`` owns the lifetimes.
"""

DATABASE = "beer-sample"
