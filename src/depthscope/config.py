"""Configs as plain dataclasses: built from user-given values with one clear error per bad key or value, turned
into JSON (``settings.json``) and back, set from ``NAME.KEY=VALUE`` options (the CLI's ``--option``), and given
command-line flags generated from their fields (``help`` and ``aliases`` in each field's metadata)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from depthscope.errors import InputError

C = TypeVar("C")


def parse_option(text: str) -> tuple[str, str, Any]:
    """``"integrated_gradients.n_steps=32"`` -> ``("integrated_gradients", "n_steps", 32)``; the value is read as
    JSON when it parses (numbers, true/false, null, lists), else kept as a string.

    Example:
        >>> parse_option("infidelity.sigma=0.02"), parse_option("gradcam.layer=encoder.conv2")
        (('infidelity', 'sigma', 0.02), ('gradcam', 'layer', 'encoder.conv2'))
    """
    head, eq, raw = text.partition("=")
    owner, dot, key = head.strip().partition(".")
    if not (eq and dot and owner and key):
        raise InputError(f"option {text!r} is not NAME.KEY=VALUE (e.g. integrated_gradients.n_steps=32)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return owner, key.strip(), value


def group_options(texts: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``NAME.KEY=VALUE`` options (:func:`parse_option`) as ``{NAME: {KEY: VALUE}}``, later ones winning.

    Example:
        >>> group_options(["smoothgrad.n_samples=8", "smoothgrad.sigma=0.1", "gradcam.layer=decoder"])
        {'smoothgrad': {'n_samples': 8, 'sigma': 0.1}, 'gradcam': {'layer': 'decoder'}}
    """
    out: dict[str, dict[str, Any]] = {}
    for text in texts:
        owner, key, value = parse_option(text)
        out.setdefault(owner, {})[key] = value
    return out


def field_types(cls: type) -> dict[str, Any]:
    """``{field: resolved type}`` of dataclass ``cls`` (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp`` (int, float, bool, str, tuples of those, optionals); a mismatch names ``where``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return coerce(value, a, where)
            except InputError as e:
                errors.append(str(e))
        raise InputError(errors[0])
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise InputError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(coerce(v, item, where) for v in value)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false, got {value!r}")
        return value
    if tp in (int, float):
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise InputError(f"{where} must be a number, got {value!r}") from None
        if isinstance(value, bool) or (tp is int and isinstance(value, float) and not value.is_integer()):
            raise InputError(f"{where} must be an integer, got {value!r}")
        return out
    if tp is str:
        return str(value)
    return value


def build_config(cls: type[C], values: Mapping[str, Any] | None, where: str) -> C:
    """``cls(**values)`` with each value coerced to its field's type; an unknown key is one error listing the
    valid ones (``where`` names the owner, e.g. ``infidelity``)."""
    values = dict(values or {})
    types_ = field_types(cls)
    unknown = sorted(set(values) - set(types_))
    if unknown:
        valid = ", ".join(types_) or "none"
        raise InputError(f"{where} has no option {', '.join(map(repr, unknown))}; its options: {valid}")
    return cls(**{k: coerce(v, types_[k], f"{where}.{k}") for k, v in values.items()})


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for naming exactly which setting differs)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_settings(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The (dotted) names of the settings that differ between two runs' records, sorted: what a resumable run
    names when it refuses to mix incomparable rows.

    Example:
        >>> changed_settings({"a": {"b": 1}, "c": 2}, {"a": {"b": 3}, "c": 2, "d": 4})
        ['a.b', 'd']
    """
    old, new = flatten(before), flatten(after)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _flag(prefix: str, name: str) -> str:
    return "--" + f"{prefix}{name}".replace("_", "-")


def add_config_args(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    prefix: str = "",
    skip: Iterable[str] = (),
    preset: Mapping[str, tuple[Any, str]] | None = None,
) -> None:
    """One flag per field of dataclass ``cls`` (``--PREFIX-FIELD``; booleans as ``--x/--no-x``), with the default
    a run uses in the help: the field's, or ``preset[field] = (value, where it comes from)`` when a preset (a named
    protocol, a command's own settings) sets it. Flags default to None, so :func:`config_values` returns only
    what was typed."""
    types_ = field_types(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        flags = [_flag(prefix, f.name), *f.metadata.get("aliases", [])]
        default, source = (preset or {}).get(f.name, (getattr(defaults, f.name), ""))
        shown = ",".join(map(str, default)) if isinstance(default, tuple | list) else default
        shown = f"{shown}: {source}" if source else shown
        help_ = f.metadata.get("help", f.name) + ("" if default is None else f" (default {shown})")
        help_ = help_.replace("%", "%%")
        kind = types_[f.name]
        dest = f"{prefix}{f.name}".replace("-", "_")
        if kind is bool:
            p.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            base = args[0] if typing.get_origin(kind) in (typing.Union, types.UnionType) and args else kind
            conv = base if base in (int, float) else str  # tuples and the rest: the config coerces the text
            p.add_argument(*flags, dest=dest, type=conv, default=None, help=help_)


def config_values(args: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (see :func:`add_config_args`)."""
    out = {}
    for f in dataclasses.fields(cls):
        v = getattr(args, f"{prefix}{f.name}".replace("-", "_"), None)
        if v is not None:
            out[f.name] = v
    return out
