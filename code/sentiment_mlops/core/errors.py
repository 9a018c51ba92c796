"""Exceptions shared across subpackages."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting (Airflow Variable, environment variable or option) is invalid; the message names
    each offending setting and, where it helps, its allowed values."""
