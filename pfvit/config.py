"""Typed stage configs: YAML files under ``configs/<stage>/`` plus dotted ``key=value`` overrides.

Each stage declares its schema as nested dataclasses with defaults. A YAML file sets some of the fields (and may
name a ``_base_`` file, relative to itself, whose values it extends); command-line overrides such as
``optim.lr=3e-4`` or ``data.train=[a.tar,b.tar]`` are parsed as YAML scalars and applied last. Every key is checked
against the schema and every value against its declared type, so a typo or a wrong type is one clear error that
names the key and lists the valid ones. The resolved config is written beside every output (``config.yaml``).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import math
import re
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence, TypeVar, Union

import yaml

from .errors import ConfigError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 would read `mixed_precision: no` as False."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def _yaml_load(text: str):
    return yaml.load(text, Loader=_Loader)
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
BASE_KEY = "_base_"


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a number, declared once beside its field as ``Annotated[float, Range(0, 1, hi_open=True)]``:
    checked at parse time and shown by ``--help``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '≥'} {self.lo:g}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '≤'} {self.hi:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"

    def contains(self, value: float) -> bool:
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return self.hi is None or not (value > self.hi or (self.hi_open and value == self.hi))


# The bounds most fields share.
PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, lo_open=True)]
NonNegativeFloat = Annotated[float, Range(0)]
Probability = Annotated[float, Range(0, 1)]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        bounds = [str(e) for e in extras if isinstance(e, Range)]
        return f"{_type_name(base)} {', '.join(bounds)}" if bounds else _type_name(base)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (int → float, list → tuple)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        value = _coerce(value, base, key)
        for bound in extras:
            if isinstance(bound, Range) and not bound.contains(value):
                raise ConfigError(f"{key}: expected a value {bound}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        near_miss = None  # the right type but out of range (or not finite): that message says more
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                if "expected a value" in str(err) or "expected a finite" in str(err):
                    near_miss = err
        if near_miss is not None:
            raise near_miss
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{key}: expected one of {_type_name(tp)}, got {value!r}")
    if origin is list and not isinstance(value, (list, tuple, dict)):
        value = [value]  # a scalar where a list is expected is a list of one: inputs=photo.jpg
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}: {value!r}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {_valid_keys(tp)}, got {value!r}")
        return _build(tp, value, key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
            return float(value)
        # PyYAML reads 3e-4 as a string (YAML 1.1 wants 3.0e-4); accept the spelling people type.
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def _valid_keys(schema: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(schema))


def _build(schema: type[T], values: dict, prefix: str = "") -> T:
    hints = typing.get_type_hints(schema, include_extras=True)
    names = {f.name for f in dataclasses.fields(schema)}
    for key in values:
        if key not in names:
            where = f"under '{prefix[:-1]}'" if prefix else "at the top level"
            raise ConfigError(f"unknown config key '{prefix}{key}'; valid keys {where}: {_valid_keys(schema)}")
    kwargs = {}
    for field in dataclasses.fields(schema):
        if field.name in values:
            kwargs[field.name] = _coerce(values[field.name], hints[field.name], prefix + field.name)
    return schema(**kwargs)


def to_dict(cfg: Any) -> dict:
    """A plain dict (lists for tuples) of a config dataclass, ready for YAML or JSON."""

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def _deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path, _seen: tuple = ()) -> dict:
    """Read a config file, following ``_base_`` (relative to the file) and merging it underneath."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: '_base_' files include each other in a loop")
    try:
        data = _yaml_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give a YAML file such as configs/<stage>/….yaml") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start} is {err.object[err.start]:#04x}); "
                          "save it as UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys, got {type(data).__name__}")
    base = data.pop(BASE_KEY, None)
    if base is not None:
        data = _deep_merge(read_yaml(path.parent / base, _seen + (path.resolve(),)), data)
    return data


def changed_keys(old: dict, new: dict, prefix: str = "", *, one_sided: bool = False) -> list[str]:
    """Dotted keys whose values differ between two nested dicts. A key in only one of them counts only when
    ``one_sided`` is set: a config saved by another pfvit version may add or drop keys, a shard record may not."""
    keys = []
    for key in sorted(set(old) | set(new) if one_sided else set(old) & set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.", one_sided=one_sided)
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (["a", "b"], value parsed as a YAML scalar or flow list)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. optim.lr=3e-4)")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = _yaml_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _set_path(tree: dict, parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {'.'.join(parts)}: '{part}' is a value, not a section")
    node[parts[-1]] = value


def load_config(schema: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults of ``schema`` ← YAML file (with its ``_base_`` chain) ← dotted overrides, type-checked."""
    values = to_dict(schema()) if dataclasses.is_dataclass(schema) else {}
    if path is not None:
        values = _deep_merge(values, read_yaml(path))
    for text in overrides:
        parts, value = parse_override(text)
        _set_path(values, parts, value)
    return _build(schema, values)


def make_config(schema: type[T], **values: Any) -> T:
    """A config from Python values (a section as a dict), checked as the command line checks them:
    ``make_config(PredictConfig, checkpoint="fer-mini-xception", cam=True)``."""
    return _build(schema, _deep_merge(to_dict(schema()), values))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML; :func:`load_config` of that file gives back an equal config."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


# The folder above the package: a checkout or an editable install.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The shipped configs, package data of every install (a checkout's configs/ links here).
PACKAGE_CONFIGS = Path(__file__).resolve().parent / "configs"


def find_config(path: str | Path) -> Path:
    """A config file as given; else, for a relative path, the same path under the project root, and
    ``configs/<stage>/<name>.yaml`` among the shipped configs, so that ``--config configs/…`` works from any folder
    and from a ``pip install``ed pfvit."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    candidates = [PROJECT_ROOT / path]
    if path.parts[:1] == ("configs",):
        candidates.append(PACKAGE_CONFIGS.joinpath(*path.parts[1:]))
    return next((c for c in candidates if c.exists()), path)


def _comment(line: str) -> str | None:
    """The ``#`` comment of one line of source, read with the tokenizer (a ``#`` inside a string is not one)."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if token.type == tokenize.COMMENT:
                return token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return None


def field_docs(schema: type) -> dict[str, str]:
    """Each field's description, from the schema's source: the comment at the end of its line, else the comment
    lines right above it. Inherited fields keep their base class's unless the subclass describes them again."""
    docs: dict[str, str] = {}
    for cls in reversed([c for c in schema.__mro__ if dataclasses.is_dataclass(c)]):
        above: list[str] = []
        for line in inspect.getsource(cls).splitlines()[1:]:
            stripped = line.strip()
            if stripped.startswith("#"):
                above.append(stripped.lstrip("#").strip())
                continue
            match = re.match(r"\s+(\w+)\s*:", line)
            if match and match.group(1) in cls.__dataclass_fields__:
                doc = _comment(line) or " ".join(above)
                if doc:
                    docs[match.group(1)] = doc
            above = []
    return docs


def describe(cfg: Any, prefix: str = "") -> list[str]:
    """``--help``'s lines for a config instance: per leaf key ``name (type, choices, bounds) = value`` (the value
    spelt as on the command line: null, true, [a, b] as JSON writes them) and its description from the schema."""
    lines = []
    schema = type(cfg)
    hints = typing.get_type_hints(schema, include_extras=True)
    docs = field_docs(schema)
    for field in dataclasses.fields(schema):
        tp, value = hints[field.name], getattr(cfg, field.name)
        if dataclasses.is_dataclass(tp):
            lines += describe(value, prefix + field.name + ".")
            continue
        lines.append(f"  {prefix}{field.name} ({_type_name(tp)}) = {json.dumps(to_dict(value), ensure_ascii=False)}")
        if field.name in docs:
            lines += textwrap.wrap(docs[field.name], 116, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return lines


def require(cfg: Any, *names: str) -> None:
    """One line naming the first of ``names`` left empty, with the key's description, e.g. ``checkpoint=… is
    required (a released .pth)``."""
    for name in names:
        if getattr(cfg, name) in ("", None, []):  # the source is read for the description only when it is needed
            raise ConfigError(f"{name}=… is required ({field_docs(type(cfg)).get(name, 'see --help')})")


def _example(cfg: Any, prefix: str = "") -> str | None:
    """An override this schema accepts (its first leaf key with a value), for the usage line."""
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if dataclasses.is_dataclass(value):
            found = _example(value, prefix + field.name + ".")
        elif value not in (None, "", []) and not isinstance(value, (list, tuple, dict)):
            found = f"{prefix}{field.name}={str(value).lower() if isinstance(value, bool) else value}"
        else:
            continue
        if found:
            return found
    return None


def _accepts(tp: Any, kind: type) -> bool:
    """Whether a field of annotation ``tp`` takes values of ``kind`` (str, or list)."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _accepts(typing.get_args(tp)[0], kind)
    if origin in (Union, types.UnionType):
        return any(_accepts(a, kind) for a in typing.get_args(tp))
    return origin is list if kind is list else tp is kind


@dataclasses.dataclass(frozen=True)
class LegacySpelling:
    """What a script accepted before every script took ``key=value``, translated for one release with a
    deprecation line: ``--some-flag VALUE`` (or ``--some-flag=VALUE``) is ``some_flag=VALUE`` unless ``renamed``
    names its key (or a function from VALUE to the overrides that mean it now); a flag of a bool key is
    ``key=true``; a flag of a list key takes the values up to the next flag; bare words fill the ``positional``
    keys in order, a list key taking the rest. ``values`` maps a key to a function from an old value (parsed) to
    the overrides that mean it now, or None where the value is already current."""

    positional: tuple[str, ...] = ()
    renamed: dict[str, Any] = dataclasses.field(default_factory=dict)
    values: dict[str, Any] = dataclasses.field(default_factory=dict)

    def translate(self, schema: type, argv: Sequence[str]) -> tuple[list[str], list[str]]:
        """(argv in the current spelling, the old spellings that were translated)."""
        hints = typing.get_type_hints(schema, include_extras=True)
        out, old, bare, positional = [], [], [], list(self.positional)

        def override(key: str, raw: Any) -> str:
            tp = hints.get(key)
            if tp is None:
                raise ConfigError(f"unknown option {key!r}; valid keys: {_valid_keys(schema)}")
            if isinstance(raw, list):
                return f"{key}={json.dumps(raw) if _accepts(tp, list) else raw[0]}"
            if _accepts(tp, bool) and raw is True:
                return f"{key}=true"
            # A string key gets the word as it was typed (a path with brackets or commas stays one string).
            return f"{key}={json.dumps(raw) if _accepts(tp, str) and not _accepts(tp, int) else raw}"

        i = 0
        while i < len(argv):
            token = argv[i]
            if token in ("-h", "--help", "--print-config") or token.startswith("--config="):
                out.append(token)
            elif token == "--config":
                out += argv[i:i + 2]
                i += 1
            elif token.startswith("-") and not _FLOAT.fullmatch(token):  # a flag, not a negative number
                name, has_value, raw = token.partition("=")
                key = self.renamed.get(name, name.lstrip("-").replace("-", "_"))
                tp = hints.get(key) if isinstance(key, str) else str
                if not has_value:
                    if _accepts(tp, bool) and not _accepts(tp, str):
                        raw = True
                    elif _accepts(tp, list):
                        raw = []
                        while i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                            raw.append(argv[i + 1])
                            i += 1
                    elif i + 1 < len(argv):
                        raw = argv[i + 1]
                        i += 1
                    else:
                        raise ConfigError(f"option {name} needs a value (see --help for the key=value spelling)")
                out += key(raw) if callable(key) else [override(key, raw)]
                old.append(token)
            elif "=" not in token and positional:
                key = positional[0]
                if _accepts(hints[key], list):
                    bare.append(token)
                else:
                    out.append(override(positional.pop(0), token))
                old.append(token)
            else:
                out.append(token)
            i += 1
        if bare:
            out.append(override(positional[0], bare))
        return self._retyped(out, old), old

    def _retyped(self, argv: list[str], old: list[str]) -> list[str]:
        out = []
        for token in argv:
            key = token.split("=", 1)[0]
            if "=" in token and not token.startswith("-") and key in self.values:
                now = self.values[key](parse_override(token)[1])
                if now is not None:
                    out += now
                    old.append(token)
                    continue
            out.append(token)
        return out


def parse_stage_args(schema: type[T], argv: Sequence[str] | None, description: str,
                     default_config: str | None = None, legacy: LegacySpelling | None = None) -> T:
    """The command line of every script: ``--config FILE`` and dotted ``key=value`` overrides. ``--help`` lists
    every key with the value that would run (the defaults, the config file and the overrides given), its choices,
    bounds and description; ``--print-config`` prints that config as YAML. Neither imports torch. ``legacy``
    translates the script's old spelling, with one deprecation line that shows the new one."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if legacy is not None:
        argv, old = legacy.translate(schema, argv)
        if old:
            new = [t for t in argv if not t.startswith("-") and "=" in t]
            print(f"deprecated: {' '.join(old)} is the old spelling and goes in the next release; "
                  f"write {' '.join(new)}", file=sys.stderr)
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     add_help=False)
    parser.add_argument("-h", "--help", action="store_true", help="list the config keys with the values that run")
    parser.add_argument("--config", default=default_config, help="YAML config file (default: %(default)s)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    args = parser.parse_args(argv)
    cfg = load_config(schema, None if args.config is None else find_config(args.config), args.overrides)
    if args.print_config:
        sys.stdout.write(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        raise SystemExit(0)
    if args.help:
        source = f"with --config {args.config}" if args.config else "the defaults"
        parser.epilog = (f"config keys ({source}{' and the overrides given' if args.overrides else ''}; override "
                         f"any with key=value, e.g. {_example(cfg)}):\n" + "\n".join(describe(cfg)))
        parser.print_help()
        raise SystemExit(0)
    return cfg
