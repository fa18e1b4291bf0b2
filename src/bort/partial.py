"""A partial config: some fields of a config dataclass now, the others when it is built (issue 37).

:mod:`bort.options` reads a :class:`Partial` nested in a config like a nested dataclass (its fields' options, their
defaults, ``--config`` files), and returns one with the values given, unchecked: the stage config's own checks run
when it is built, with the fields the chaining verb sets per run.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Generic, TypeVar

from bort.errors import BortError

C = TypeVar("C")


def rename_flags(text: str, names: dict[str, str]) -> str:
    """``text`` (an error message) with each flag of ``names`` in its plain spelling (``--temperature``) replaced by the one
    the verb uses (``--task-temperature``)."""
    for plain, flag in names.items():
        text = re.sub(rf"(?<![\w-]){re.escape(plain)}(?![\w-])", flag, text)
    return text


class Partial(Generic[C]):
    """Some fields of a config dataclass, the others given when it is built: what a verb that chains stages (compress)
    takes of a stage's config, with its own departures from the stage's defaults and no placeholder for the fields it
    sets per run. A field reads as its value here, else as the class default; :meth:`build` makes the config, whose
    checks then name the options as the chaining verb spells them (``--pretrain-batch-size``)."""

    def __init__(self, cls: type[C], _flags: dict[str, str] | None = None, **values: Any) -> None:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
        self.__dict__.update(cls=cls, values=values, flags=dict(_flags or {}))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self.values:
            return self.values[name]
        f = next((f for f in dataclasses.fields(self.cls) if f.name == name), None)
        if f is not None and f.default is not dataclasses.MISSING:
            return f.default
        if f is not None and f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        raise AttributeError(f"{self.cls.__name__}.{name} is set when the config is built")

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field '{name}'")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Partial) and (self.cls, self.values) == (other.cls, other.values)

    def __repr__(self) -> str:
        return f"Partial({self.cls.__name__}, {', '.join(f'{k}={v!r}' for k, v in self.values.items())})"

    def replace(self, **values: Any) -> Partial[C]:
        """The same partial config with these values too."""
        return Partial(self.cls, self.flags, **{**self.values, **values})

    def build(self, **values: Any) -> C:
        """The config, with the fields set per run."""
        try:
            return self.cls(**{**self.values, **values})
        except BortError as exc:
            raise BortError(rename_flags(str(exc), self.flags)) from None
