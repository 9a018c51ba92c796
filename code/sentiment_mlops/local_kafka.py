"""Compatibility alias for `python -m sentiment_mlops.local_kafka`.

The module lives in :mod:`sentiment_mlops.backends.local.kafka_broker`.
"""

import sys

from sentiment_mlops.backends.local.kafka_broker import main

if __name__ == "__main__":
    sys.exit(main())
