"""A deterministic crash point for tests of the serving job's exactly-once output.

Killing the driver from outside lands at an uncontrolled moment, usually between batches, where
nothing needs replacing. With `SENTIMENT_TEST_CRASH_AFTER_WRITE=N` in the environment, the driver
dies (os._exit: no cleanup, no finally blocks, like kill -9) right after micro-batch N's output is
written and before Spark commits the batch in the checkpoint, the one moment a restart must replace
the earlier attempt's output. Unset (always, outside tests), it does nothing.
"""

from __future__ import annotations

import logging
import os

CRASH_AFTER_WRITE_ENV = "SENTIMENT_TEST_CRASH_AFTER_WRITE"
CRASH_EXIT_CODE = 86  # distinct from Spark's and Python's own exit codes, so a test knows it was this

log = logging.getLogger("sentiment_mlops.serving")


def after_write(batch_id: int) -> None:
    """Exit the process with CRASH_EXIT_CODE if CRASH_AFTER_WRITE_ENV names `batch_id`."""
    wanted = os.environ.get(CRASH_AFTER_WRITE_ENV)
    if wanted is not None and wanted.strip() == str(batch_id):
        log.error(
            "%s=%s: driver exits after writing batch %d, before its commit", CRASH_AFTER_WRITE_ENV, wanted, batch_id
        )
        logging.shutdown()
        os._exit(CRASH_EXIT_CODE)
