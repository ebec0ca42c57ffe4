"""``python -m demo.beer``: the demo, loaded if need be, served beside settee (see ``serve``)."""

import sys

from .serve import main

sys.exit(main())
