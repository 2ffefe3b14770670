"""The base class of the data errors a user can fix (a malformed split, an undecodable image, a dataset
too small for the batch). It is a :class:`figkd.config.ConfigError`, so the command line prints it on
one line and exits with status 2; a missing dataset is a
:class:`~figkd.data.base.DatasetNotFoundError` (a ``FileNotFoundError``), printed the same way."""

from __future__ import annotations

from ..config import ConfigError

__all__ = ["DataError"]


class DataError(ConfigError):
    """A problem with the data that the user can fix; the message names the file or folder and the fix."""
