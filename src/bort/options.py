"""Command-line options generated from the config dataclasses, and ``--config FILE.yaml``.

Each verb's options are the fields of its config dataclass, so every default has one source
(the dataclass, or the ``default_factory`` instance of a nested one) and ``--help`` shows it.
We wrote this ourselves because the libraries do not keep our flat flags: jsonargparse names a
nested dataclass's fields by their path (``--optim.lr`` where we keep ``--lr``), Hugging Face's
HfArgumentParser takes no nested dataclasses, and neither has our prefixes (``--head-steps``),
subsets (``only``) or fields that take their parent's value (``inherit``).

    lr: float = field(default=5e-4, metadata=opt("peak learning rate"))
    head: HeadConfig = field(default_factory=HeadConfig, metadata=nested(prefix="head-", only=("steps",), inherit={"seed": "seed"}))

A dataclass-typed field without metadata is :func:`nested` with no prefix. A verb calls
:func:`add_options` on its parser, the CLI :func:`parse_args`, and the verb :func:`build`.
Options default to ``argparse.SUPPRESS``, so that :func:`parse_args` can tell the flags given
(which win) from the values of the ``--config`` file, then fill in the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from bort.errors import BortError
from bort.partial import Partial, rename_flags
from bort.yaml_file import read_yaml

_KEY = "bort.options"  # the field-metadata key of opt() and nested()
_STATE = "_bort_options"  # the parser default that holds its options, for parse_args
_REQUIRED = object()  # the default of a field without one
_NAMES = {int: "an integer", float: "a number", str: "a string", Path: "a path"}
# Numbers an option may take, by type: finite, and within what the code downstream can hold (a torch tensor's int64; a
# float that cannot overflow the step counts and schedules computed from it, e.g. --epochs 1e308 × examples is inf).
_LIMITS = {int: (-(2**63) + 1, 2**63 - 1), float: (-1e9, 1e9)}
_SEED = (0, 2**32 - 1)  # a seed (a field named seed or *_seed): numpy's range, within torch's; seed × 1e6 + k still fits torch's
_HINT = "write one 'option: value' per line, e.g. 'lr: 5.0e-5' (the names of --help, without the dashes)"


@dataclasses.dataclass(frozen=True)
class _Opt:
    help: str = ""
    flag: str | None = None
    choices: tuple | None = None
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    nargs: int | str | None = None
    group: str | None = None
    cli: bool = True
    old_flag: str | None = None
    aliases: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Nested:
    prefix: str = ""
    only: tuple[str, ...] | None = None
    inherit: dict[str, str] = dataclasses.field(default_factory=dict)


def opt(help: str = "", *, flag: str | None = None, choices=None, parse: Callable[[str], Any] | None = None, metavar: str | None = None,
        nargs: int | str | None = None, group: str | None = None, cli: bool = True, old_flag: str | None = None,
        aliases: tuple[str, ...] = ()) -> dict:
    """Field metadata of an option: ``field(default=…, metadata=opt("peak learning rate"))``.

    ``flag`` replaces the generated ``--field-name`` (and any prefix; for a bool that defaults to
    True it is the switch that turns it off). ``parse`` converts a command-line string (with
    ``nargs``, each word; a tuple without ``nargs`` gets the whole comma-separated string).
    Options of the same ``group`` exclude each other; ``cli=False`` hides the field. ``old_flag``: a former spelling,
    still taken (on the command line and in ``--config``) with a one-line notice, for one release. ``aliases``: other
    spellings taken for good and shown in ``--help`` beside the flag (run_glue's and Trainer's, ``--learning_rate``), where
    the option has no prefix.
    """
    return {_KEY: _Opt(help, flag, None if choices is None else tuple(choices), parse, metavar, nargs, group, cli, old_flag, tuple(aliases))}


def nested(*, prefix: str = "", only: tuple[str, ...] | None = None, inherit: dict[str, str] | None = None) -> dict:
    """Field metadata of a dataclass-typed field whose own fields become flat options.

    ``prefix`` goes before their names (``head-`` → ``--head-steps``), ``only`` exposes just those
    fields (the others keep the default instance's values), and ``inherit`` maps a nested field to
    the parent's field whose value it takes (``{"seed": "seed"}``). Defaults come from the field's
    default (factory) instance, else from the nested class.
    """
    return {_KEY: _Nested(prefix, None if only is None else tuple(only), dict(inherit or {}))}


@dataclasses.dataclass
class _Leaf:
    """One option: field ``name``, its option ``key`` (config-file name), ``flag`` and namespace ``dest``."""

    name: str
    key: str
    flag: str
    kind: Any  # int, float, str, Path, bool, or what ``parse`` returns (a tuple's element type)
    optional: bool
    many: bool  # a tuple
    choices: tuple | None
    default: Any
    meta: _Opt
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return self.key.replace("-", "_")

    def convert(self, text: str, whole: bool = True) -> Any:
        """A command-line string → the value (``whole=False``: one element of a tuple)."""
        if self.many and whole and not self.meta.nargs:
            return self.meta.parse(text) if self.meta.parse else tuple(self.convert(t.strip(), False) for t in text.split(","))
        return self.meta.parse(text) if self.meta.parse else self.checked(self.kind(text))

    def checked(self, value: Any) -> Any:
        """A number within what bort can use (see :data:`_LIMITS`), else a :class:`BortError`; other values as they are."""
        if self.kind not in (int, float) or isinstance(value, bool):
            return value
        low, high = _SEED if self.name == "seed" or self.name.endswith("_seed") else _LIMITS[self.kind]
        if not (low <= value <= high):  # also false for nan
            what = "an integer" if self.kind is int else "a finite number"
            low, high, value = (f"{x:g}" if isinstance(x, float) else x for x in (low, high, value))
            raise BortError(f"{self.flag} must be {what} from {low} to {high}, not {value}; see --help")
        return value

    def from_yaml(self, value: Any) -> Any:
        """A ``--config`` value: a YAML scalar (strings converted like the command line's), or a list for a tuple."""
        if self.kind is bool or value is None:
            if not (isinstance(value, bool) if self.kind is bool else self.optional or self.default is None):
                raise ValueError
            return value
        items = value if isinstance(value, list) and self.many else [value]
        if not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in items):
            raise ValueError
        words = [str(x) for x in items]
        result = tuple(self.convert(w, False) for w in words) if self.many and self.meta.nargs else self.convert(",".join(words))
        if self.choices and result not in self.choices:
            raise ValueError
        return result

    def expects(self) -> str:
        """What a value must be, for error messages."""
        what = "true or false" if self.kind is bool else _NAMES.get(self.kind, f"a {getattr(self.kind, '__name__', 'value')}")
        what = f"one of {', '.join(map(str, self.choices))}" if self.choices else what
        return what + (", or a list of them" if self.many else "") + (", or null" if self.optional else "")

    def add_to(self, container) -> None:
        """Add this option to an argparse parser or group, with the default in its help."""
        shown = ("," if not self.meta.nargs else " ").join(map(str, self.default)) if isinstance(self.default, tuple) else self.default
        note = "required" if self.default is _REQUIRED else "" if self.kind is bool or shown in (None, "") else f"default: {shown}"
        help_text = f"{self.meta.help} ({note})".strip() if note else self.meta.help
        kw = {"dest": self.dest, "default": argparse.SUPPRESS, "help": help_text.replace("%", "%%")}
        # the former spelling (opt's old_flag) is taken, but --help shows only the new one
        spellings = [((self.flag, *self.aliases), kw)] + ([((self.meta.old_flag,), {**kw, "help": argparse.SUPPRESS})] if self.meta.old_flag else [])
        if self.kind is bool:
            # a switch that turns a True default off (--no-x) still takes the field's own spelling (--x) and its aliases (Trainer's),
            # which turn it on: a command written when the default was off means the same once it is on (--help shows the switch)
            off = self.default is True
            for flags, kws in [((self.flag,), kw), *spellings[1:]] if off else spellings:
                container.add_argument(*flags, action="store_false" if off else "store_true", **kws)
            if off:
                container.add_argument(f"--{self.key}", *self.aliases, action="store_true", **{**kw, "help": argparse.SUPPRESS})
            return

        def argtype(text: str) -> Any:
            """A bad value is a :class:`BortError` (the CLI's one line), not argparse's usage and error."""
            try:
                return self.convert(text, whole=not self.meta.nargs)
            except (ValueError, TypeError):
                raise BortError(f"{self.flag} '{text}' is not {self.expects()}; see --help") from None

        if self.many and self.meta.nargs:
            kw["action"] = "extend"  # a repeated flag adds to the list (bench --arch A --arch B)
        for flags, kws in spellings:
            container.add_argument(*flags, type=argtype, choices=self.choices, metavar=self.meta.metavar, nargs=self.meta.nargs, **kws)


@dataclasses.dataclass
class _Node:
    """A dataclass to build: its options and nested dataclasses ``(field name, node, inherit)``, in field order."""

    cls: type
    source: Any  # the default instance whose values unexposed fields keep; None: the class defaults
    entries: list[_Leaf | tuple[str, _Node, dict[str, str]]]

    def all_leaves(self) -> Iterator[_Leaf]:
        for entry in self.entries:
            yield from [entry] if isinstance(entry, _Leaf) else entry[1].all_leaves()


def _default(f: dataclasses.Field, source: Any) -> Any:
    if source is not None:
        return getattr(source, f.name)
    return f.default if f.default is not dataclasses.MISSING else _REQUIRED if f.default_factory is dataclasses.MISSING else f.default_factory()


def _leaf(f: dataclasses.Field, tp: Any, meta: _Opt, prefix: str, default: Any) -> _Leaf:
    args = typing.get_args(tp)
    optional = typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2
    tp = next(a for a in args if a is not type(None)) if optional else tp
    many = typing.get_origin(tp) is tuple and typing.get_args(tp)[1:] == (Ellipsis,)
    tp = typing.get_args(tp)[0] if many else tp
    choices = meta.choices
    if typing.get_origin(tp) is Literal:
        choices, tp = choices or typing.get_args(tp), type(typing.get_args(tp)[0])
    if (meta.parse is None and tp not in (int, float, str, Path, bool)) or (tp is bool and (many or optional)) or (many and choices):
        raise TypeError(f"{f.name}: cannot make an option of type {f.type}; give it opt(parse=...), nested() or opt(cli=False), or skip it")
    key = (prefix + f.name).replace("_", "-")
    off = tp is bool and default is True  # then the flag is the switch that turns it off, and the key stays the field's
    if off and f.default is False:  # on by a parent's default (a Partial's True over its class's False): the help says what it turns on
        meta = dataclasses.replace(meta, help=f"{meta.help} (on by default: this switch turns it off)".strip())
    flag = meta.flag or f"--{'no-' if off else ''}{key}"
    key = key if off else flag.lstrip("-")
    return _Leaf(f.name, key, flag, tp, optional, many, choices, default, meta, () if prefix else meta.aliases)


def _plan(cls: type, source: Any = None, prefix: str = "", skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> _Node:
    fields, hints = dataclasses.fields(cls), typing.get_type_hints(cls)
    unknown = (set(skip) | set(only or ())) - {f.name for f in fields}
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    node = _Node(cls, source, [])
    for f in fields:
        meta = f.metadata.get(_KEY, _Opt())
        if f.name in skip or (only is not None and f.name not in only) or not f.init:
            continue
        if isinstance(meta, _Nested) or (_KEY not in f.metadata and dataclasses.is_dataclass(hints[f.name])):
            meta = meta if isinstance(meta, _Nested) else _Nested()
            default = _default(f, source)
            cls_ = default.cls if isinstance(default, Partial) else hints[f.name]
            child = _plan(cls_, None if default is _REQUIRED else default, prefix + meta.prefix, tuple(meta.inherit), meta.only)
            node.entries.append((f.name, child, meta.inherit))
        elif meta.cli:
            node.entries.append(_leaf(f, hints[f.name], meta, prefix, _default(f, source)))
    return node


def add_options(container, cls: type, *, skip: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> None:
    """Add an option for each (flattened) field of the dataclass ``cls`` to a parser or argument group.

    ``skip``: top-level fields the verb sets itself (give them to :func:`build`). ``defaults``
    overrides defaults by option name (``{"device": "cpu"}``). The first call on a parser also
    adds ``--config FILE.yaml``; call it on the parser before any of its argument groups.
    """
    registry = container.get_default(_STATE)
    if registry is None:
        if not isinstance(container, argparse.ArgumentParser):
            raise TypeError("call add_options on the verb's parser before its argument groups")
        registry = argparse.Namespace(parser=container, leaves=[], groups={})  # what parse_args needs
        container.set_defaults(**{_STATE: registry})
        container.add_argument("--config", metavar="FILE.yaml", help="YAML file of 'option: value' lines; options given here override it")
    leaves = list(_plan(cls, skip=tuple(skip)).all_leaves())
    overrides = {str(k).lstrip("-").replace("_", "-"): v for k, v in (defaults or {}).items()}
    unknown = set(overrides) - {leaf.key for leaf in leaves}
    if unknown:
        raise ValueError(f"add_options({cls.__name__}): no option(s) {', '.join(sorted(unknown))}")
    for leaf in leaves:
        leaf.default = overrides.get(leaf.key, leaf.default)
        group = leaf.meta.group
        if group and group not in registry.groups:
            registry.groups[group] = container.add_mutually_exclusive_group()
        leaf.add_to(registry.groups[group] if group else container)
    registry.leaves += leaves


def _config_values(registry: argparse.Namespace, path: str, on_line: set[str]) -> dict[str, Any]:
    """The values (by dest) that the ``--config`` file sets for options not given on the command line."""
    data = read_yaml(Path(path), "--config file", _HINT)
    if not isinstance(data, dict | None):
        raise BortError(f"--config file '{path}' holds a YAML {type(data).__name__}, not a mapping: {_HINT}")
    names = {}
    for leaf in registry.leaves:  # a --no-x switch's key, as in the file, means the opposite of the field's
        names[leaf.flag.lstrip("-")] = (leaf, leaf.kind is bool and leaf.default is True)
        names[leaf.key] = (leaf, False)
        if leaf.meta.old_flag:
            names[leaf.meta.old_flag.lstrip("-")] = (leaf, False)
        for alias in leaf.aliases:  # learning_rate in a file reads as learning-rate, as every key does
            names[alias.lstrip("-").replace("_", "-")] = (leaf, False)
    values: dict[str, Any] = {}
    keys: dict[str, Any] = {}  # dest → the key that set it: two spellings of one option (min-speedup, min_speedup) are refused
    for key, raw in (data or {}).items():
        name = str(key).lstrip("-").replace("_", "-")
        if name not in names:
            near = difflib.get_close_matches(name, names, n=1)
            raise BortError(f"--config file '{path}': unknown option '{key}'; " + (f"did you mean '{near[0]}'?" if near else "see --help for the names"))
        leaf, invert = names[name]
        if leaf.meta.old_flag and name == leaf.meta.old_flag.lstrip("-"):
            _renamed(leaf, f"'{key}' in --config file '{path}'")
        if leaf.dest in keys:
            raise BortError(f"--config file '{path}': '{keys[leaf.dest]}' and '{key}' set the same option {leaf.flag}; keep one")
        keys[leaf.dest] = key
        try:
            value = leaf.from_yaml(raw)
        except BortError as exc:
            raise BortError(f"--config file '{path}': '{key}': {exc}") from None
        except (ValueError, TypeError):
            quote = " (YAML reads on/off/yes/no as true/false: quote them)" if isinstance(raw, bool) else ""
            raise BortError(f"--config file '{path}': '{key}' must be {leaf.expects()}, not {raw!r}{quote}") from None
        values[leaf.dest] = (not value) if invert else value
    return {dest: v for dest, v in values.items() if dest not in on_line}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, then the chosen verb's ``--config`` file under the flags, then the defaults.

    A bad config file raises :class:`BortError` (one line); a required option still missing, or
    two options of one exclusive group (from the flags or the file), is ``parser.error`` (exit 2).
    """
    args = parser.parse_args(argv)
    registry = getattr(args, _STATE, None)
    if registry is None:
        return args
    delattr(args, _STATE)
    words = sys.argv[1:] if argv is None else argv
    for leaf in (leaf for leaf in registry.leaves if leaf.meta.old_flag):
        if any(w == leaf.meta.old_flag or w.startswith(leaf.meta.old_flag + "=") for w in words):
            _renamed(leaf, leaf.meta.old_flag)
    dests = {leaf.dest: leaf for leaf in registry.leaves}
    on_line = {dest for dest in dests if hasattr(args, dest)}
    for dest, value in (_config_values(registry, args.config, on_line) if args.config else {}).items():
        setattr(args, dest, value)
    for group in {leaf.meta.group for leaf in registry.leaves} - {None}:
        flags = [leaf.flag for dest, leaf in dests.items() if leaf.meta.group == group and hasattr(args, dest)]
        if len(flags) > 1:
            registry.parser.error(f"options {' and '.join(flags)} exclude each other (on the command line or in --config): give one")
    missing = [leaf.flag for dest, leaf in dests.items() if leaf.default is _REQUIRED and not hasattr(args, dest)]
    if missing:
        registry.parser.error(f"the following arguments are required: {', '.join(missing)}")
    for dest, leaf in dests.items():
        value = getattr(args, dest, leaf.default)
        setattr(args, dest, tuple(value) if leaf.many and isinstance(value, list) else value)
    return args


def _renamed(leaf: _Leaf, given: str) -> None:
    """The one-line notice for an option given by its former spelling (:func:`opt`'s ``old_flag``)."""
    print(f"bort: note: {given} is now {leaf.flag} (the old spelling goes in the next release)", file=sys.stderr)


def build(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """The (nested) ``cls`` instance from a namespace of :func:`parse_args`; ``fixed`` sets skipped fields."""
    return _make(_plan(cls, skip=tuple(fixed)), args, fixed)


def _make(node: _Node, args: argparse.Namespace, values: dict[str, Any]) -> Any:
    values = {**values, **{e.name: getattr(args, e.dest) for e in node.entries if isinstance(e, _Leaf)}}  # parse_args sets every dest
    fields = {f.name: f for f in dataclasses.fields(node.cls)}
    for name, child, inherit in (e for e in node.entries if not isinstance(e, _Leaf)):
        taken = {k: values[p] if p in values else _default(fields[p], node.source) for k, p in inherit.items()}
        values[name] = _make(child, args, taken)
    if isinstance(node.source, Partial):  # checked when it is built, its options named as this verb spells them
        return Partial(node.cls, {**node.source.flags, **_spelled(node.all_leaves())}, **{**node.source.values, **values})
    try:
        return node.cls(**values) if node.source is None else dataclasses.replace(node.source, **values)
    except BortError as exc:  # a nested config's check names its own flags: name them as this verb spells them (--task-temperature)
        raise BortError(rename_flags(str(exc), _spelled(e for e in node.entries if isinstance(e, _Leaf)))) from None


def _spelled(leaves: Iterable[_Leaf]) -> dict[str, str]:
    """Each leaf's plain flag (``--temperature``) → the one this verb spells (``--task-temperature``), where they differ."""
    return {plain: leaf.flag for leaf in leaves if (plain := "--" + leaf.name.replace("_", "-")) != leaf.flag}
