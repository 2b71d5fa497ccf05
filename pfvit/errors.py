"""User-facing errors: one clear line naming the file, row or key and what to do."""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """Bad input from the user (config, data, checkpoint). Printed as one line, never as a traceback."""


class ConfigError(UserError):
    """A config key is unknown, has the wrong type, or a config file cannot be read."""


class CheckpointError(UserError):
    """A checkpoint is missing, incomplete, or belongs to a different model."""


def cli_entry(main):
    """Wrap a pipeline's ``main`` so that a :class:`UserError` prints ``error: …`` and exits with status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
