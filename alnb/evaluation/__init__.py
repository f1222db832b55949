"""Measuring models and labels: metrics, the VAL1 evaluation step, statistics, diagnostics, measured labelling seconds."""


from alnb.core.moved import forward as _forward  # noqa: E402

__getattr__ = _forward("alnb.evaluation", "alnb.evaluation.step")  # the flat layout's names, for one release
