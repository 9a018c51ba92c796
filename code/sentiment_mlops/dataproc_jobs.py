"""Compatibility alias for `python -m sentiment_mlops.dataproc_jobs`.

The command line lives in :mod:`sentiment_mlops.jobs.cli`.
"""

import sys

from sentiment_mlops.jobs.cli import main

if __name__ == "__main__":
    sys.exit(main())
