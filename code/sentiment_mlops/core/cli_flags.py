"""Boolean command-line flags that take an optional value: `--flag`, `--flag true`, `--flag=false`.

The original project's deploy script passes `--write-kafka true`; argparse's store_true rejects the
value. A flag built here accepts the bare form and an explicit true/false (yes/no, 1/0), so both old
and new command lines run. The jobs have no positional arguments, so the optional value cannot
swallow one.
"""

from __future__ import annotations

import argparse

TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})


def parse_bool(text: str) -> bool:
    """`text` (true/false, yes/no, 1/0, on/off, any case) as a bool; argparse.ArgumentTypeError otherwise."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_bool_flag(parser: argparse.ArgumentParser, flag: str, help: str | None = None) -> None:
    """Add `flag` to `parser`: absent -> False, bare -> True, followed by true/false -> that value."""
    parser.add_argument(flag, nargs="?", const=True, default=False, type=parse_bool, metavar="true|false", help=help)
