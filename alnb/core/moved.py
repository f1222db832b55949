"""Old import paths of the flat layout, served for one release with a deprecation warning."""

from __future__ import annotations

import importlib
import warnings


def forward(package: str, module: str):
    """A module ``__getattr__`` for ``package`` that serves ``package.<name>`` from ``module`` (where the name lives
    now) with a :class:`DeprecationWarning`; unknown names raise :class:`AttributeError` as usual."""
    def __getattr__(name):
        target = importlib.import_module(module)
        if name.startswith("__") or not hasattr(target, name):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(f"{package}.{name} moved to {module}.{name} (the old path goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return getattr(target, name)

    return __getattr__
