"""Quiet by default: while bioconv builds and runs its own Brian2 objects, Brian2's INFO lines (such
as "No numerical integration method specified for group 'pop_1', using method 'exact'") stay off
the console. Warnings and errors still show, the debug log file keeps everything, and the user's
Brian2 preferences are left as they are: a filter sits on Brian2's console handler only for the
duration of bioconv's simulation scope. ``BIOCONV_VERBOSE=1`` keeps the INFO lines."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from brian2.utils.logger import BrianLogger


class _AboveInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO


def verbose() -> bool:
    return os.environ.get("BIOCONV_VERBOSE", "").strip().lower() not in ("", "0", "false", "no", "off")


@contextmanager
def quiet_brian2_info():
    handler = BrianLogger.console_handler
    if handler is None or verbose():
        yield
        return
    quiet = _AboveInfo()
    handler.addFilter(quiet)
    try:
        yield
    finally:
        handler.removeFilter(quiet)
