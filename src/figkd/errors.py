"""The errors a user can cause and fix, all derived from one base, :class:`UserError`.

The command line prints any of them on one line (``figkd: error: <message>``) and exits with status 2;
the message names the thing that is wrong and the fix. Code that is not the command line catches
``UserError`` to handle every such error at once, or one of the kinds below:

- :class:`ConfigError`: a configuration value, flag, config file or combination of them;
- :class:`DataError`: a dataset on disk (a malformed split file, an undecodable image, a split too small
  for the batch); a missing dataset is a ``figkd.data.DatasetNotFoundError``, also a ``FileNotFoundError``;
- :class:`CheckpointError`: a weights file that cannot be read safely or does not fit the model;
- :class:`RunFileError`: a file of a run directory that cannot be read back.

Each is a ``ValueError`` (a bad value given to figkd), so ``except ValueError`` keeps working for code
written before this module existed. This module imports nothing of figkd: every layer may raise these.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CheckpointError", "ConfigError", "DataError", "RunFileError", "UserError", "RUN_FILE_FIX"]


class UserError(ValueError):
    """A problem the user can fix; the command line prints it on one line and exits with status 2."""


class ConfigError(UserError):
    """A configuration problem: a value, a flag, a config or objective file, or how they combine."""


class DataError(UserError):
    """A problem with the data on disk; the message names the file or folder and the fix."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read safely or does not fit the model."""


#: What to do about a damaged run file (figkd writes each atomically, so something else changed it).
RUN_FILE_FIX = ("figkd writes it atomically, so it was changed or cut short by something else: restore it from "
                "a copy, or start the run again with --overwrite")


class RunFileError(UserError):
    """A file of a run directory that cannot be read back; the message names it and the fix.

    ``RunFileError(path, what)`` reads ``run file <path> <what>; <RUN_FILE_FIX>``; ``path`` is kept.
    """

    def __init__(self, path: str | Path, what: str):
        super().__init__(f"run file {path} {what}; {RUN_FILE_FIX}")
        self.path = Path(path)
