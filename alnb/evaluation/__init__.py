"""Measuring models and labels: metrics, the VAL1 evaluation step, statistics, diagnostics, measured labelling seconds."""


def __getattr__(name):
    """``alnb.evaluation.<name>`` of the flat layout (before ``alnb.evaluation`` became a package) is
    ``alnb.evaluation.step.<name>``: served with a deprecation warning for one release."""
    import importlib
    import warnings

    module = importlib.import_module("alnb.evaluation.step")
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module 'alnb.evaluation' has no attribute {name!r}")
    warnings.warn(f"alnb.evaluation.{name} moved to alnb.evaluation.step.{name} (the old path goes in the next release)",
                  DeprecationWarning, stacklevel=2)
    return getattr(module, name)
