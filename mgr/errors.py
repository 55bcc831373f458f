"""Errors that are the user's to fix, and how the command line reports them.

A :class:`UserError` says what was wrong with what the user asked for (a path
that does not exist, a file of the wrong kind, an option that cannot run on
this machine) and how to fix it, in one line. ``mgr`` prints it on stderr as
``mgr: error: <message>`` and exits with status 2, without a traceback;
``MGR_DEBUG=1`` (or ``-v`` on the command line) keeps the traceback. Any other
exception is a programming error and keeps its traceback.

This module imports nothing from mgr, so every layer may raise it.
"""

from __future__ import annotations

import os

__all__ = ["UserError", "debug_enabled"]


class UserError(Exception):
    """A mistake in the user's input or options, reported in one line.

    The message names the file, option or sample and says what to do instead.
    Subclasses of built-in errors are not used on purpose: a ``UserError`` is
    raised only where the cause is known to be the user's.
    """


def debug_enabled() -> bool:
    """Whether ``MGR_DEBUG`` asks for full tracebacks (any value but ``""``/``"0"``)."""
    return os.environ.get("MGR_DEBUG", "") not in ("", "0")
