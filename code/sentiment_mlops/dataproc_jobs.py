"""Compatibility alias for `python -m sentiment_mlops.dataproc_jobs`.

The module lives in :mod:`sentiment_mlops.jobs.dataproc_spec`.
"""

import sys

from sentiment_mlops.jobs.dataproc_spec import main

if __name__ == "__main__":
    sys.exit(main())
