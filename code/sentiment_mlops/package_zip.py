"""Compatibility alias for `python -m sentiment_mlops.package_zip`.

The module lives in :mod:`sentiment_mlops.jobs.packaging`.
"""

import sys

from sentiment_mlops.jobs.packaging import main

if __name__ == "__main__":
    sys.exit(main())
