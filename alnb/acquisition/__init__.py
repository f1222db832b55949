"""Uncertainty -> scores -> tiers and strategies: what to label next (and the scoring step and its engines)."""


def __getattr__(name):
    """``alnb.acquisition.<name>`` of the flat layout (before ``alnb.acquisition`` became a package) is
    ``alnb.acquisition.strategies.<name>``: served with a deprecation warning for one release."""
    import importlib
    import warnings

    module = importlib.import_module("alnb.acquisition.strategies")
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module 'alnb.acquisition' has no attribute {name!r}")
    warnings.warn(f"alnb.acquisition.{name} moved to alnb.acquisition.strategies.{name} (the old path goes in the next release)",
                  DeprecationWarning, stacklevel=2)
    return getattr(module, name)
