"""Typed options and results: small frozen dataclasses in place of long keyword lists and untyped dicts.

:class:`Options` - the settings of one step travel as one object (``score_pool(ws, "CAL1",
options=ScoreOptions(T=4))``).  :func:`takes_options` adds ``options=`` to a function and keeps every keyword it had
working unchanged.  The rule when both are given: a keyword naming a field of the options is an error
(:class:`TypeError` naming it), never a silent precedence; to change one field of a set of options, use
``dataclasses.replace(options, T=8)``.

:class:`Record` - a result callers read.  Attributes are the typed way (``ev.map50``); the record is also a
read-only :class:`~collections.abc.Mapping` with the keys the dict had before (``ev["mAP50"]``, ``dict(ev)``,
``{**ev}``), and :meth:`Record.to_dict` gives that dict, key for key in the same order, which is what the JSON files
hold (byte for byte as before).  A caller that adds keys builds its own dict from ``to_dict()``.
Design notes: docs/design/layout.md
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar


@dataclass(frozen=True)
class Options:
    """Base of the options dataclasses: each field is a keyword parameter of the function that takes them, with the
    same default (tests/test_records.py checks it)."""

    def kwargs(self) -> dict:
        """The keyword arguments these options stand for."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def takes_options(cls):
    """Decorator: ``fn(..., options=cls(...))`` calls ``fn(..., **options.kwargs())``; ``fn``'s own keywords keep
    working.  A keyword (or positional argument) for one of the options' parameters given beside ``options=`` raises
    :class:`TypeError`; keywords that are not options (the workspace, the model) go with them as usual."""

    def deco(fn):
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        var_kw = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)

        @functools.wraps(fn)
        def wrapper(*args, options=None, **kwargs):
            if options is None:
                return fn(*args, **kwargs)
            if not isinstance(options, cls):
                raise TypeError(f"{fn.__name__}(): options= takes a {cls.__name__}, not {type(options).__name__}")
            given = sig.bind_partial(*args, **kwargs).arguments
            explicit = set(given) - {var_kw}
            explicit |= set(given.get(var_kw, {})) if var_kw else set()
            opts = options.kwargs()
            clash = sorted(explicit & set(opts))
            if clash:
                raise TypeError(f"{fn.__name__}(): {', '.join(clash)} given both as keyword and in options=; give each "
                                f"setting once (dataclasses.replace(options, ...) changes one of the options)")
            return fn(*args, **opts, **kwargs)

        opt = inspect.Parameter("options", inspect.Parameter.KEYWORD_ONLY, default=None,
                                annotation=f"{cls.__name__} | None")
        at = len(params) - (var_kw is not None)
        wrapper.__signature__ = sig.replace(parameters=[*params[:at], opt, *params[at:]])
        wrapper.options_class = cls
        return wrapper

    return deco


class Record(Mapping):
    """Base of the result dataclasses (``@dataclass(frozen=True, eq=False)``: equal to a dict with the same items).

    ``KEYS`` maps a field to its dict key where the key is no Python name (``map50`` -> ``"mAP50"``); fields named
    in ``OPTIONAL`` are left out of the dict when they are None (keys the old dict had only sometimes)."""

    KEYS: ClassVar[dict] = {}
    OPTIONAL: ClassVar[frozenset] = frozenset()

    def to_dict(self) -> dict:
        """The result as the plain dict it was before (shallow: nested dicts and lists are the record's own)."""
        return {self.KEYS.get(f.name, f.name): getattr(self, f.name) for f in fields(self)
                if not (f.name in self.OPTIONAL and getattr(self, f.name) is None)}

    @classmethod
    def from_dict(cls, d: Mapping):
        """The record of a dict :meth:`to_dict` gave (e.g. read back from its JSON file)."""
        back = {key: name for name, key in cls.KEYS.items()}
        return cls(**{back.get(k, k): v for k, v in d.items()})

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self):
        return len(self.to_dict())
