"""The one error type of the training job, apart so every training stage can raise it without importing
the job module that reports it."""


class TrainingError(RuntimeError):
    """A problem a user can fix; reported as one line with a non-zero exit."""
