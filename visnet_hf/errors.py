"""The errors a user can fix.

Every exception the library raises for a mistake in its input (a config, a data file, a model
folder, a plugin) derives from :class:`VisnetError`, and its message says what to do next. The
command line prints such an error as ``visnet: error: <message>`` with exit status 2 (argparse's
convention) instead of a traceback; ``--debug`` or ``VISNET_DEBUG=1`` shows the traceback too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any


class VisnetNote(UserWarning):
    """A note for the user (something done otherwise than asked, or worth knowing): a ``UserWarning`` in Python, a
    ``visnet: note: <message>`` line on the command line (:func:`notes_as_cli_lines`)."""


def warn_user(message: str, category: type[Warning] = VisnetNote) -> None:
    """``warnings.warn`` shown at the user's own line: the first caller outside visnet_hf and torch's
    ``no_grad`` wrapper, however deep in the library (and through how many decorators) the warning is raised."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and _in_library(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _in_library(filename: str) -> bool:
    return filename.startswith(_PACKAGE) or filename.endswith(os.path.join("torch", "utils", "_contextlib.py"))


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class VisnetError(Exception):
    """Base class of the errors that describe a mistake the user can fix."""


class ConfigError(VisnetError, ValueError):
    """Every problem found in a config (training, data, model or constraint parameters), listed together."""


class DataError(VisnetError, ValueError):
    """A dataset that cannot be used as configured; the message says what to change."""


class NoClassNamesError(DataError):
    """A label column of numbers with no names for them (and no ``data.class_names``)."""


class ModelLoadError(VisnetError, OSError):
    """A saved model that cannot be found or read: not a folder, not a reachable Hub id, missing files."""


@contextlib.contextmanager
def reported_as_cli_errors(prog: str, debug: bool = False) -> Iterator[None]:
    """Turn a :class:`VisnetError` into ``prog: error: <message>`` on stderr and exit status 2.

    The traceback is shown too when ``debug`` is set or the environment has ``VISNET_DEBUG=1``.
    """
    try:
        yield
    except VisnetError as error:
        if debug or os.environ.get("VISNET_DEBUG", "") not in ("", "0"):
            raise
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


@contextlib.contextmanager
def notes_as_cli_lines(prog: str) -> Iterator[None]:
    """Show each :class:`VisnetNote` as ``prog: note: <message>`` on stderr, not in Python's warning format (a file,
    a line number, the line of code); other warnings as Python shows them."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(
            message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None
        ) -> None:
            if issubclass(category, VisnetNote):
                print(f"{prog}: note: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


__all__ = [
    "ConfigError",
    "DataError",
    "ModelLoadError",
    "NoClassNamesError",
    "VisnetError",
    "VisnetNote",
    "notes_as_cli_lines",
    "reported_as_cli_errors",
]
