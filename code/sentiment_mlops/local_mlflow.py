"""Compatibility alias for `python -m sentiment_mlops.local_mlflow`.

The module lives in :mod:`sentiment_mlops.backends.local.mlflow_server`.
"""

import sys

from sentiment_mlops.backends.local.mlflow_server import main

if __name__ == "__main__":
    sys.exit(main())
