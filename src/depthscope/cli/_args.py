"""Options shared by several commands. Flags of config dataclasses are generated from their fields
(:func:`depthscope.config.add_config_args`), so a config's options are written once, in the dataclass."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from depthscope.config import add_config_args, config_values  # noqa: F401  (re-exported for the commands)
from depthscope.errors import InputError

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
    from depthscope.data import dataset_names

    p.add_argument("--dataset", choices=dataset_names(), help="layout/protocol (default: the model's); diode, eth3d, "
                   "ibims, scannet, sintel, sunrgbd read those benchmarks' own files, with their depth caps")  # fmt: skip
    p.add_argument("--depth-scale", type=float, help="integer depth PNG value / S = metres (nyu 1000, kitti 256)")
    p.add_argument("--split-file", help="KITTI Eigen list (BTS format) or NYU splits.mat")


def force_new_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force-new", action="store_true",
        help="--out holds an earlier run: move its files to OUT/previous-<time>/ and start afresh (without it, "
        "rerunning into a folder of the same data resumes, of other data is refused)",
    )  # fmt: skip


def option_arg(p: argparse.ArgumentParser, owners: str) -> None:
    """``--option NAME.KEY=VALUE``, its help listing every method's options with their defaults (a metric's
    options have flags of their own, below)."""
    from depthscope.explain import METHODS

    listed = "; ".join(
        f"{n}: " + ", ".join(f"{k}={v}" for k, v in METHODS.get(n).defaults.items())
        for n in METHODS.names() if METHODS.get(n).defaults
    )  # fmt: skip
    metrics = ". Each metric's options are also flags (--METRIC-OPTION, below, with their defaults)"
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help=(f"a setting of one {owners}, repeatable, e.g. --option integrated_gradients.n_steps=32 --option "
              f"infidelity.sigma=0.02. Methods' options and defaults: {listed}"
              + (metrics if "metric" in owners else "")).replace("%", "%%"),
    )  # fmt: skip


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


def split_ints(text: str, option: str, minimum: int = 1) -> list[int]:
    """A comma-separated list of integers >= ``minimum``; anything else is one error naming ``option``."""
    try:
        values = [int(t) for t in split(text)]
    except ValueError:
        raise InputError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise InputError(f"{option} takes integers >= {minimum}, got {text!r}")
    return values


def html_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--html", metavar="FILE",
        help="also write this command's results as one self-contained HTML page (units, directions, the command, "
        "versions and settings) to FILE",
    )  # fmt: skip


def write_html(
    args: argparse.Namespace, title: str, body: str, settings: dict | None = None, models: Sequence = ()
) -> None:
    """With ``--html FILE``: the command's results as a one-section page (depthscope.report.html), with the
    random-weights banner of each of ``models`` (the models whose outputs the page shows) that has no checkpoint."""
    if not getattr(args, "html", None):
        return
    from depthscope.report.html import Section, provenance, random_weights_banner, write_page

    banners = [b for m in models for b in random_weights_banner(m.name, m.info.weights)]
    seconds = time.perf_counter() - args.started if hasattr(args, "started") else None
    section = Section(title, body, ["depthscope", *getattr(args, "argv", [args.command])], seconds)
    device = getattr(args, "device", "cpu")
    page = write_page(args.html, f"depthscope {args.command}: {title}", [section], provenance(device), settings or {},
                      banners)  # fmt: skip
    print(f"wrote {page}")


def engine_args(p: argparse.ArgumentParser) -> None:
    """``--engine local|ray`` and the Ray engine's options (depthscope.engine.RayEngine)."""
    g = p.add_argument_group("engine (where the images run)")
    g.add_argument(
        "--engine", choices=["local", "ray"], default="local",
        help="local: this process (default); ray: Ray workers, each loading the model once (extra: pip install -e "
        "'.[ray]'); this process alone writes the results, so resume works the same",
    )  # fmt: skip
    g.add_argument("--address", help="ray: auto, ray://HOST:PORT or HOST:PORT (default: start a Ray on this machine "
                   "and stop it at the end)")  # fmt: skip
    g.add_argument("--workers", type=int, default=2, help="ray: workers (default %(default)s)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="ray: CPUs per worker (default %(default)s)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="ray: GPUs per worker; a worker given one runs its model there (default %(default)s)")  # fmt: skip


def engine_from(args: argparse.Namespace):
    """The engine the parsed options ask for: None for this process (where ``--address`` is one error), else a
    :class:`~depthscope.engine.RayEngine` (the command then passes model names and :func:`data_spec`)."""
    if args.engine == "local":
        if args.address is not None:
            raise InputError("--address is an option of --engine ray")
        return None
    from depthscope.engine import RayEngine

    return RayEngine(args.address, args.workers, args.cpus_per_worker, args.gpus_per_worker)


def data_spec(args: argparse.Namespace):
    """The data options as a :class:`~depthscope.data.DataSpec` (what a Ray worker opens itself)."""
    from depthscope.data import DataSpec
    from depthscope.data.sources import find_data

    split_file = None if args.split_file is None else str(args.split_file)
    return DataSpec(str(args.data or find_data()), args.dataset, args.depth_scale, split_file)
