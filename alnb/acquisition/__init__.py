"""Uncertainty -> scores -> tiers and strategies: what to label next (and the scoring step and its engines)."""


from alnb.core.moved import forward as _forward  # noqa: E402

__getattr__ = _forward("alnb.acquisition", "alnb.acquisition.strategies")  # the flat layout's names, for one release
