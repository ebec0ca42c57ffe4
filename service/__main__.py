"""``python -m service``: the ``settee`` command (``python -m service serve --port 9000``)."""

import sys

from .cli import main

sys.exit(main())
