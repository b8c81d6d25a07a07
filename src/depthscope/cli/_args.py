"""Options shared by several commands, and flags generated from config dataclasses' fields (their ``help`` and
``aliases`` metadata), so a config's options are written once, in the dataclass."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from depthscope.config import field_types

DEFAULT_MODEL = "meter-xxs-nyu"


def model_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    from depthscope.models import list_models

    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=("comma-separated model names" if many else "model name")
        + f" (registered: {', '.join(list_models())}; or hf:DIR, DIR/model.safetensors from `depthscope optimize`, "
        "or package.module:function returning depthscope.wrap(...); default %(default)s)",
    )
    p.add_argument("--weights", help="explicit checkpoint file (.pth/.pt/.safetensors) instead of the weight lookup")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default %(default)s)")


def data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        help="dataset folder, CSV of pairs, NYU labeled .mat or KITTI root (default: the bundled NYU sample, "
        "found through DEPTHSCOPE_DATA or ../shared/data)",
    )
    p.add_argument("--dataset", choices=["nyu", "kitti", "pairs"], help="layout/protocol (default: the model's)")
    p.add_argument("--depth-scale", type=float, help="integer depth PNG value / S = metres (nyu 1000, kitti 256)")
    p.add_argument("--split-file", help="KITTI Eigen list (BTS format) or NYU splits.mat")


def option_arg(p: argparse.ArgumentParser, owners: str) -> None:
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help=f"a setting of one {owners}, repeatable, e.g. --option integrated_gradients.n_steps=32 "
        "--option infidelity.sigma=0.02 (each method's and metric's options: README)",
    )


def open_data(args: argparse.Namespace, model_dataset: str):
    from depthscope.data import open_dataset
    from depthscope.data.sources import find_data

    return open_dataset(args.data or find_data(), args.dataset or model_dataset, args.depth_scale, args.split_file)


def load(args: argparse.Namespace, name: str):
    from depthscope.models import load_model

    return load_model(name, weights=args.weights, device=args.device)


def split(text: str) -> list[str]:
    """A comma-separated list option's items."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _flag(prefix: str, name: str) -> str:
    return "--" + f"{prefix}{name}".replace("_", "-")


def add_config_args(
    p: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, prefix: str = "", skip: Iterable[str] = ()
) -> None:
    """One flag per field of dataclass ``cls`` (``--PREFIX-FIELD``; booleans as ``--x/--no-x``), with the field's
    default in the help. Flags default to None, so :func:`config_values` returns only what was typed."""
    types_ = field_types(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        flags = [_flag(prefix, f.name), *f.metadata.get("aliases", [])]
        default = getattr(defaults, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_ = f"{f.metadata.get('help', f.name)} (default {shown})".replace("%", "%%")
        kind = types_[f.name]
        dest = f"{prefix}{f.name}".replace("-", "_")
        if kind is bool:
            p.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
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
