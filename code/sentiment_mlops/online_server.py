"""Compatibility alias for `python -m sentiment_mlops.online_server`.

The module lives in :mod:`sentiment_mlops.online.server`.
"""

import sys

from sentiment_mlops.online.server import main

if __name__ == "__main__":
    sys.exit(main())
