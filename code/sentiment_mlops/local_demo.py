"""Compatibility alias for `python -m sentiment_mlops.local_demo`.

The module lives in :mod:`sentiment_mlops.backends.local.demo`.
"""

import sys

from sentiment_mlops.backends.local.demo import main

if __name__ == "__main__":
    sys.exit(main())
