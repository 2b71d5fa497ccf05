"""User-facing errors: one clear line naming the file, row or key and what to do."""

from __future__ import annotations

import errno
import functools
import sys


class UserError(Exception):
    """Bad input from the user (config, data, checkpoint). Printed as one line, never as a traceback."""


class ConfigError(UserError):
    """A config key is unknown, has the wrong type, or a config file cannot be read."""


class CheckpointError(UserError):
    """A checkpoint is missing, incomplete, or belongs to a different model."""


# What to do about the file-system errors a user can fix.
_OS_ADVICE = {errno.ENOSPC: "the disk is full; free space or write elsewhere",
              errno.EDQUOT: "the disk quota is exhausted; free space or write elsewhere",
              errno.EACCES: "permission denied; choose a folder you can write to",
              errno.EPERM: "operation not permitted; choose a folder you can write to",
              errno.EROFS: "read-only file system; choose a folder you can write to"}


def os_error_line(err: OSError) -> str:
    """One line for an ``OSError``: the path, what went wrong and what to do."""
    path = f"{err.filename}: " if err.filename else ""
    return path + _OS_ADVICE.get(err.errno, err.strerror or str(err))


def user_message(err: UserError) -> str:
    """The one line of a :class:`UserError`; one raised in a DataLoader worker arrives wrapped in the worker's
    traceback text, whose last line is the original message."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if last.startswith(("pfvit.errors.", "UserError", "ConfigError")) else last
    return text


def cli_entry(main):
    """Wrap a pipeline's ``main`` so that a :class:`UserError` (or a file-system error: a full disk, an unwritable
    folder) prints ``error: …`` and exits with status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {user_message(err)}", file=sys.stderr)
            raise SystemExit(2) from None
        except OSError as err:
            print(f"error: {os_error_line(err)}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
