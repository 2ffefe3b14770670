"""The optional ``deploy`` extra: onnx, onnxscript (the ``torch.export``-based ONNX exporter's translator) and
onnxruntime. Nothing of figkd needs them but ``figkd export``, ``figkd bench`` and ``figkd eval FILE.onnx``,
which call :func:`require_extra` before importing anything that uses them."""

from __future__ import annotations

import importlib

from ..errors import ConfigError

#: The import names of the extra's packages, with their distribution names (what pip installs).
PACKAGES = {"onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime"}


def require_extra(command: str) -> None:
    """Import the extra's packages; a ConfigError (one line, exit status 2 on the command line) naming the
    missing ones and ``pip install figkd[deploy]`` when any cannot be imported."""
    missing = []
    for module, dist in PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    if missing:
        raise ConfigError(f"figkd {command} needs the optional deploy extra ({', '.join(missing)} cannot be "
                          "imported): pip install figkd[deploy]")
