"""Log set-up shared by the Spark jobs' entry points (driver log lines a person can follow)."""

from __future__ import annotations

import logging
import os
import sys


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
