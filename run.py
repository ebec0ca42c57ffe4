"""Serve settee from a checkout: ``python run.py --help`` lists the settings.

The same as ``settee serve`` (the command ``pip install`` gives) and ``python -m service
serve``: all three run ``service.serving.main``.
"""

import sys

from service.serving import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="run.py"))
