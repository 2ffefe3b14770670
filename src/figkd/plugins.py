"""Your own loss terms without editing figkd: the ``FIGKD_PLUGINS`` environment variable.

``FIGKD_PLUGINS`` lists, separated by commas, modules to import before the command line reads its
arguments: a module name (importable: installed, or on ``PYTHONPATH``) or the path of a ``.py``
file. A plugin registers its terms, with their presets and help, with `figkd.losses.register_term` as
figkd's own modules do (docs/method.md, "Adding a method"); they are then known everywhere a term or
preset name is read: ``--help``, ``--objective``, config files, ``--resume``, ``figkd report``'s labels,
and the processes of ``figkd sweep`` and of ``torchrun`` (which inherit the environment)::

    FIGKD_PLUGINS=./mykd.py figkd distill ... --objective mykd.yaml   # or a preset the plugin declares

From Python, import the module yourself (or call `load_plugins`). A plugin that cannot be imported
is a `figkd.config.ConfigError` naming it (one line, exit status 2 on the command line).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .errors import ConfigError, UserError

#: The environment variable read by `load_plugins`.
ENV = "FIGKD_PLUGINS"

_LOADED: dict[str, ModuleType] = {}


def _import_file(entry: str) -> ModuleType:
    path = Path(entry).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"{ENV}: plugin file {entry} does not exist")
    name = f"figkd_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{ENV}: {entry} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_plugins(entries: str | None = None) -> list[ModuleType]:
    """Import the plugins of ``entries`` (default: the ``FIGKD_PLUGINS`` variable; see the module
    docstring), each once per process; returns their modules in order.

    Raises ConfigError naming the entry when a file is missing or an import fails (with the
    exception's type and message)."""
    text = os.environ.get(ENV, "") if entries is None else entries
    modules = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        if entry not in _LOADED:
            import figkd.losses  # noqa: F401 (a plugin registers into the loaded registry)
            try:
                _LOADED[entry] = _import_file(entry) if entry.endswith(".py") else importlib.import_module(entry)
            except UserError:
                raise
            except Exception as exc:
                if isinstance(exc, ImportError) and "relative import" in str(exc):
                    fix = ("a plugin file is imported on its own, not as part of figkd: import from figkd by its full "
                           "name, e.g. from figkd.losses import register_term (docs/method.md, section 6)")
                else:
                    fix = "give an importable module name or the path of a .py file"
                raise ConfigError(f"{ENV}: cannot import {entry!r} ({type(exc).__name__}: {exc}): {fix}") from exc
        modules.append(_LOADED[entry])
    return modules
