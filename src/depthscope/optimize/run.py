"""``optimize``: make a cheaper model from a trained one and write it as a checkpoint the other commands load.

Methods (one registered function each, ``@register_optimizer``):

* ``meta`` / ``pyra``: METER's attention replaced by pooling / spatial-reduction mixers, every shared layer
  copied from the model; block-wise distillation trains only the MobileViT blocks holding a new mixer
  (``steps``), then end-to-end distillation on the model's depth trains the whole network (``e2e_steps``: the
  blocks alone could not recover Meta's global context, measured RMSE 2.4 m after either phase).
* ``prune``: structured channel pruning by ``ratio`` of the parameters. ``prune_engine="groups"`` (METER's
  default): METER's internal widths, then the same two distillation phases from the unpruned model: block-wise for
  every pruned block (``steps``: 200 steps took RMSE on unseen NYU images from 2.20 to 1.07 m, where 1,000
  end-to-end steps alone reached 1.28 m), then end-to-end (``e2e_steps``). ``"depgraph"`` (any other network):
  torch-pruning's dependency graph; ``prune_scope="all"``: residual streams included, so few blocks keep the
  teacher's widths; ``"internal"``: only block-hidden widths. Either way the blocks that keep them
  (:func:`kept_width_blocks`) are distilled block by block, then the whole network end to end. Pruning's
  end-to-end phase also matches the distilled blocks' outputs (``feature_weight``) and ends with the mean of its
  last half of weights (``e2e_average_from``), or with the last step's where those fit held-out crops better (at
  50 % the mean once failed, README): on METER-XXS at 30 % they took five seeds' RMSE on unseen NYU
  images from 0.52-0.71 m to 0.53-0.55 m; for Meta and Pyra, whose new mixers cannot reproduce the attention's
  outputs, they measured worse, so each method registers its own defaults (:func:`register_optimizer`).
* ``distill``: a ``student`` model trained end to end on the model's predictions (``steps``).
* ``int8``: post-training static quantisation calibrated on ``calib_images`` augmented images.

Training and calibration images are unlabeled (``train_images``: ``builtin`` photographs, a folder or a glob), never
the evaluation data. ``DIR/model.safetensors`` is the result, ``DIR/optimize.json`` says what changed (params,
MACs, recipe, images, losses, seconds), ``DIR/train_*.pt`` are the resumable training states.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthscope.efficiency.flops import count_macs
from depthscope.efficiency.params import count_params
from depthscope.errors import InputError
from depthscope.models.base import DepthModel, source_type
from depthscope.models.channels import layer_groups, meter_groups
from depthscope.models.heads import head_counts
from depthscope.models.loading import load_model
from depthscope.models.meter import METER
from depthscope.models.mixers import replace_attention
from depthscope.models.optimized import is_optimized_checkpoint, read_recipe, save_optimized
from depthscope.models.quantized import calibrate, convert_int8, default_keep_float, prepare_int8
from depthscope.models.weights import existing_checkpoint
from depthscope.optimize.distill import batch_source, blockwise_loss, end_to_end_loss, kept_width_blocks
from depthscope.optimize.images import image_paths, load_images
from depthscope.optimize.losses import BalancedLoss
from depthscope.optimize.prune import check_scope, prune_channels, prune_graph
from depthscope.optimize.train import average_start, lr_factor, train_phase
from depthscope.output.files import RunLock, write_json
from depthscope.registry import Registry


@dataclass
class OptimizeConfig:
    """Options of every method (each uses its own; see the module docstring). Steps are optimiser steps of
    ``batch`` images; learning rates are AdamW's."""

    train_images: str = field(
        default="builtin",
        metadata={"help": "'builtin', a folder of unlabeled images, an image, a glob ('DIR/image_[5-9].png'), or "
                  "several joined by commas"},
    )  # fmt: skip
    steps: int = field(default=200, metadata={"help": "block-wise / fine-tuning / distillation steps"})
    e2e_steps: int = field(default=100, metadata={"help": "meta/pyra/prune: end-to-end distillation steps"})
    batch: int = field(default=8, metadata={"help": "images per step"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (block-wise, distill)"})
    e2e_lr: float = field(default=3e-4, metadata={"help": "AdamW learning rate (end-to-end, pruning)"})
    feature_weight: float | None = field(
        default=None,
        metadata={"help": "meta/pyra/prune: end-to-end distillation also matches each distilled block's output to "
                  "the teacher's (relative MSE, times this weight; 0: depth only). Default: the method's "
                  "(prune 100, meta/pyra 0)"},
    )  # fmt: skip
    e2e_average_from: float | None = field(
        default=None,
        metadata={"help": "meta/pyra/prune: end-to-end distillation ends with the mean of the weights after each "
                  "step from this fraction of the phase on (stochastic weight averaging; 1: the last step's "
                  "weights). Default: the method's (prune 0.5, meta/pyra 1)"},
    )  # fmt: skip
    lr_schedule: str = field(
        default="constant",
        metadata={"help": "learning rate over each phase: constant, or cosine (half a cosine from the rate down to 0)"},
    )
    ratio: float = field(default=0.3, metadata={"help": "prune: share of the parameters to remove"})
    prune_engine: str = field(
        default="auto",
        metadata={"help": "prune: groups (METER's channel groups), depgraph (torch-pruning's dependency graph, any "
                  "network), auto (groups for METER, else depgraph)"},
    )  # fmt: skip
    prune_keep: str = field(default="", metadata={"help": "prune, depgraph: comma-separated modules never pruned"})
    prune_scope: str = field(
        default="all",
        metadata={"help": "prune, depgraph: all (residual streams and skips too) or internal (block-hidden widths "
                  "only, so the pruned blocks are distilled block by block first)"},
    )  # fmt: skip
    sr_ratio: int = field(default=2, metadata={"help": "pyra: key/value reduction per side"})
    pool: int = field(default=3, metadata={"help": "meta: pooling window"})
    calib_images: int = field(default=32, metadata={"help": "int8: calibration images"})
    keep_float: str = field(
        default="",
        metadata={"help": "int8: comma-separated modules kept in fp32, besides the model's own (METER: "
                  "decoder.ups_block_3)"},
    )  # fmt: skip
    student: str | None = field(default=None, metadata={"help": "distill: student model name (same input and unit)"})
    seed: int = field(default=0, metadata={"help": "seed of the augmented batches"})
    device: str = field(default="cpu", metadata={"help": "torch device for training (cpu, cuda)"})
    save_every: int = field(default=20, metadata={"help": "steps between training checkpoints"})
    progress: bool = field(default=True, metadata={"help": "progress bars", "cli": False})


@dataclass
class Job:
    """What a method works on: the model, where its recipe starts, the images and the output folder."""

    model: DepthModel
    base: str
    prior_steps: list[dict[str, Any]]
    images: list[torch.Tensor]
    image_files: list[str]
    out: Path
    cfg: OptimizeConfig

    def batches(self, seed_offset: int = 0):
        return batch_source(self.model, self.images, self.cfg.batch, self.cfg.seed + seed_offset, self.cfg.device)

    def signature(self, phase: str) -> str:
        """The settings a training state belongs to (steps, checkpoint cadence and device may change on a resume)."""
        free = ("steps", "e2e_steps", "save_every", "progress", "device")
        settings = {k: v for k, v in asdict(self.cfg).items() if k not in free}
        return json.dumps({"phase": phase, "model": self.model.name, **settings}, sort_keys=True)

    def phase(
        self,
        name: str,
        module: nn.Module,
        params,
        loss_at,
        steps: int,
        lr: float,
        average_from: float = 1.0,
        held_out: Callable[[int], torch.Tensor] | None = None,
    ) -> dict[str, Any]:
        """Run training phase ``name`` (resumable in ``out/train_<name>.pt``) and return its log. ``held_out``: the
        phase's loss as a function of a batch's step, evaluated on :data:`HELD_OUT_BATCHES` batches no step trains
        on, chooses between the averaged and the last step's weights (:func:`train_phase`'s ``select``)."""
        t0 = time.perf_counter()
        chosen: dict[str, Any] = {}

        def select() -> float:
            with torch.no_grad():
                return sum(float(held_out(i)) for i in range(HELD_OUT_BATCHES)) / HELD_OUT_BATCHES

        losses = train_phase(
            name,
            module,
            params,
            loss_at,
            steps,
            self.out / f"train_{name}.pt",
            lr,
            self.cfg.save_every,
            self.cfg.progress,
            self.signature(name),
            self.cfg.lr_schedule,
            average_from,
            select if held_out is not None else None,
            chosen,
        )
        first, last = (losses[0], losses[-1]) if losses else (None, None)
        log = {"steps": steps, "lr": lr, "first_loss": first, "last_loss": last, "seconds": time.perf_counter() - t0}
        return {**log, **({"average": chosen} if chosen else {})}


# Batches of held-out crops (seeded apart from every training step) that choose between averaged and last weights.
HELD_OUT_BATCHES = 4
OptimizerFn = Callable[[Job], tuple[nn.Module, dict[str, Any], dict[str, Any]]]  # -> (net, step, training log)
# Options whose best value depends on the method (None in OptimizeConfig), with the value of a method that names
# none: the feature term and weight averaging measured better for pruning, worse for Meta and Pyra (README).
METHOD_OPTIONS: dict[str, Any] = {"feature_weight": 0.0, "e2e_average_from": 1.0}


@dataclass(frozen=True)
class Optimizer:
    """A registered optimisation method: the function that runs it and its values of the :data:`METHOD_OPTIONS`."""

    run: OptimizerFn
    defaults: Mapping[str, Any]


OPTIMIZERS: Registry[Optimizer] = Registry("optimisation method")


def register_optimizer(name: str, **defaults: Any) -> Callable[[OptimizerFn], OptimizerFn]:
    """Decorator: the function is optimisation method ``name``; ``defaults`` are its values of the
    :data:`METHOD_OPTIONS` a caller leaves unset (e.g. ``feature_weight=100.0``).

    Example:
        >>> @register_optimizer("noop", feature_weight=1.0)
        ... def noop(job):
        ...     return job.model.net, {"method": "noop"}, {}
        >>> [method_config(OptimizeConfig(), m).feature_weight for m in ("noop", "pyra", "prune")]
        [1.0, 0.0, 100.0]
        >>> OPTIMIZERS.unregister("noop")
    """
    unknown = sorted(set(defaults) - set(METHOD_OPTIONS))
    if unknown:
        raise ValueError(f"optimisation method {name!r}: no method-dependent option {', '.join(unknown)}")

    def add(fn: OptimizerFn) -> OptimizerFn:
        OPTIMIZERS.register(name)(Optimizer(fn, defaults))
        return fn

    return add


def method_config(cfg: OptimizeConfig, method: str) -> OptimizeConfig:
    """``cfg`` with every :data:`METHOD_OPTIONS` field left at None set to registered ``method``'s default."""
    own = OPTIMIZERS.get(method).defaults
    unset = {k: own.get(k, v) for k, v in METHOD_OPTIONS.items() if getattr(cfg, k) is None}
    return replace(cfg, **unset)


def _trainable(net: nn.Module, names: list[str]) -> list[nn.Parameter]:
    modules = dict(net.named_modules())
    return [p for n in names for p in modules[n].parameters()]


def _distil(job: Job, teacher: nn.Module, student: nn.Module, blocks: list[str]) -> dict[str, Any]:
    """Block-wise distillation of ``blocks`` (``steps``, ``lr``; none without blocks), then end-to-end distillation
    of the whole student on the teacher's depth and, with ``feature_weight``, on the same blocks' outputs
    (``e2e_steps``, ``e2e_lr``). Batch norms keep their statistics (eval mode)."""
    student.eval()
    log: dict[str, Any] = {"blocks": blocks}
    if blocks:
        log["blockwise"] = job.phase(
            "blockwise",
            student,
            _trainable(student, blocks),
            blockwise_loss(teacher, student, blocks, job.batches()),
            job.cfg.steps,
            job.cfg.lr,
        )
    return {
        **log,
        "end_to_end": job.phase(
            "end_to_end",
            student,
            student.parameters(),
            end_to_end_loss(teacher, student, job.batches(1), BalancedLoss(), blocks, job.cfg.feature_weight),
            job.cfg.e2e_steps,
            job.cfg.e2e_lr,
            job.cfg.e2e_average_from,
            end_to_end_loss(teacher, student, job.batches(2), BalancedLoss(), blocks, job.cfg.feature_weight),
        ),
    }


def _mixer_method(kind: str, options: Callable[[OptimizeConfig], dict[str, int]]) -> OptimizerFn:
    def run(job: Job) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        teacher = job.model.net.eval()
        student = copy.deepcopy(teacher)
        opts = options(job.cfg)
        blocks = replace_attention(student, kind, **opts)
        return student, {"method": kind, **opts}, _distil(job, teacher, student, blocks)

    return run


register_optimizer("meta")(_mixer_method("meta", lambda cfg: {"kernel": cfg.pool}))
register_optimizer("pyra")(_mixer_method("pyra", lambda cfg: {"sr_ratio": cfg.sr_ratio}))


PRUNE_ENGINES = ("auto", "groups", "depgraph")


@register_optimizer("prune", feature_weight=100.0, e2e_average_from=0.5)
def _prune(job: Job) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    teacher = job.model.net.eval()
    engine = job.cfg.prune_engine
    if engine == "auto":
        engine = "groups" if issubclass(source_type(teacher), METER) else "depgraph"
    if engine == "groups":
        student, keep = prune_channels(teacher, job.cfg.ratio)
        log = {"keep_fraction": keep, **_distil(job, teacher, student, [g.name for g in meter_groups(student)])}
        return student, {"method": "prune", "ratio": job.cfg.ratio, "keep_fraction": keep, "channel_multiple": 8}, log
    size = list(job.model.preprocessing.input_size)
    example = torch.zeros(1, 3, *size, device=next(teacher.parameters()).device)
    scope = job.cfg.prune_scope
    student, fraction = prune_graph(teacher, example, job.cfg.ratio, keep=_names(job.cfg.prune_keep), scope=scope)
    # blocks whose input and output keep the teacher's widths are distilled block by block, then the whole network
    # (with the residual streams pruned, scope "all", few blocks keep them; with none, end to end only)
    blocks = kept_width_blocks(teacher, student, example)
    log = {"channel_fraction": fraction, **_distil(job, teacher, student, blocks)}
    step = {"method": "prune", "engine": "depgraph", "scope": scope, "ratio": job.cfg.ratio, "channel_fraction": fraction,
            "channel_multiple": 8, "groups": layer_groups(student), "heads": head_counts(student)}  # fmt: skip
    return student, step, log


@register_optimizer("distill")
def _distill(job: Job) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    if not job.cfg.student:
        raise InputError("--method distill needs --student NAME (e.g. meter-xs, or a registered model to retrain)")
    student_model = load_model(job.cfg.student, pretrained=False, device=job.cfg.device)
    if student_model.preprocessing != job.model.preprocessing:
        raise InputError(
            f"--student {job.cfg.student}: its preprocessing {student_model.preprocessing} differs from the "
            f"teacher's {job.model.preprocessing}; a student must see the same input and predict the same unit"
        )
    job.base, job.prior_steps = job.cfg.student, []
    student = student_model.net.eval()
    log = {"student": job.cfg.student}
    log["end_to_end"] = job.phase(
        "end_to_end",
        student,
        student.parameters(),
        end_to_end_loss(job.model.net.eval(), student, job.batches(), BalancedLoss()),
        job.cfg.steps,
        job.cfg.lr,
    )
    return student, {"method": "distill", "teacher": job.model.name}, log


def _names(option: str) -> list[str]:
    """A comma-separated module list option (``--prune-keep``, ``--keep-float``) as names."""
    return [k for k in option.split(",") if k]


@register_optimizer("int8")
def _int8(job: Job) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    if job.cfg.device != "cpu":
        raise InputError("--method int8 quantises for the CPU (x86 int8 kernels); use --device cpu")
    size = list(job.model.preprocessing.input_size)
    net = job.model.net.eval()
    keep = [*default_keep_float(net), *_names(job.cfg.keep_float)]
    batches = batch_source(job.model, job.images, 1, job.cfg.seed)
    with torch.no_grad():
        if not torch.isfinite(net(batches(0))).all():  # calibrating on NaN gives a checkpoint that says nothing
            raise InputError(
                f"{job.model.name} predicts NaN/Inf on a calibration image (weights: {job.model.weights_record}); "
                "int8 would quantise a broken model: fix its weights first"
            )
    observed = prepare_int8(net, torch.zeros(1, 3, *size), keep)
    n = calibrate(observed, (batches(i) for i in range(job.cfg.calib_images)))
    step = {"method": "int8", "input_size": size, "storage": "pt2e", "keep_float": keep}
    return convert_int8(observed), step, {"calibration_images": n}


def _state_bytes(net: nn.Module) -> int:
    """Bytes of ``net``'s tensors: the size of its weights file, headers aside."""
    return sum(v.numel() * v.element_size() for v in net.state_dict().values() if isinstance(v, torch.Tensor))


def _file_bytes(path: str) -> int:
    return Path(path).stat().st_size


def _costs(net: nn.Module, size: list[int]) -> dict[str, int]:
    x = torch.zeros(1, 3, *size, device=next(net.parameters()).device)
    return {"params": count_params(net), "macs": count_macs(net, x).macs}


def optimize(
    model: str,
    method: str,
    out: str | os.PathLike,
    config: OptimizeConfig | None = None,
    weights: str | os.PathLike | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run ``method`` on ``model`` and write ``out/model.safetensors`` and ``out/optimize.json``.

    Args:
        model: a name :func:`~depthscope.load_model` accepts; an optimised checkpoint (``FILE.safetensors``) has
            its recipe extended by this step.
        method: a registered method (:data:`OPTIMIZERS`: meta, pyra, int8, prune, distill).
        out: the output folder; it also holds the resumable training states (one run writes it at a time).
        config: the methods' options (:class:`OptimizeConfig`); ``options`` override its fields.
        weights: ``model``'s weights from this file instead of the lookup, or an optimised checkpoint made from
            ``model`` (the way to optimise again a checkpoint made from an entry point ``module:function``).

    Returns:
        The content of ``optimize.json``: params, MACs and bytes before and after, the recipe, the training log.
        Rerunning the same call resumes interrupted training.

    Example:
        >>> report = optimize("meter-xxs-nyu", "pyra", "out/pyra", steps=300, e2e_steps=200)  # doctest: +SKIP
    """
    cfg = config or OptimizeConfig()
    unknown = sorted(set(options) - set(asdict(cfg)))
    if unknown:
        raise InputError(f"unknown optimize option(s) {', '.join(unknown)}; valid: {', '.join(asdict(cfg))}")
    cfg = replace(cfg, **options)  # the caller's config is left as it was
    fn = OPTIMIZERS.get(method).run
    cfg = method_config(cfg, method)
    lr_factor(cfg.lr_schedule, 0, 1)  # an unknown schedule fails before a model or an image is loaded
    for name, least in (("steps", 0), ("e2e_steps", 0), ("batch", 1), ("calib_images", 1), ("save_every", 1),
                        ("sr_ratio", 1), ("pool", 1)):  # fmt: skip
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise InputError(f"--{name.replace('_', '-')} must be an integer >= {least}, got {value!r}")
    for name in ("lr", "e2e_lr"):
        if not 0 < getattr(cfg, name) < math.inf:
            raise InputError(f"--{name.replace('_', '-')} must be a finite number > 0, got {getattr(cfg, name)}")
    if not 0 <= cfg.feature_weight < math.inf:
        raise InputError(f"--feature-weight must be a finite number >= 0, got {cfg.feature_weight}")
    average_start(cfg.e2e_average_from, 1)  # likewise a fraction outside [0, 1]
    if weights is not None:
        existing_checkpoint(weights)
    if method == "prune":  # checked before a model or an image is loaded
        if not 0 < cfg.ratio < 1:
            raise InputError(f"--ratio (the share of parameters to prune) must be in (0, 1), got {cfg.ratio}")
        if cfg.prune_engine not in PRUNE_ENGINES:
            raise InputError(f"--prune-engine must be one of {', '.join(PRUNE_ENGINES)}, got {cfg.prune_engine!r}")
        check_scope(cfg.prune_scope)
    out_dir = Path(out)
    with RunLock(out_dir):  # one run writes a folder at a time (training states, checkpoint, report)
        return _optimize(fn, model, weights, method, out_dir, cfg)


def _optimize(
    fn: OptimizerFn, model: str, weights: str | os.PathLike | None, method: str, out_dir: Path, cfg: OptimizeConfig
) -> dict[str, Any]:
    source = str(weights if weights is not None else model)  # the file holding the weights, if any
    optimized = source.endswith(".safetensors") and (weights is None or is_optimized_checkpoint(source))
    if optimized:
        recipe = read_recipe(source)
        base, prior = recipe["base"], recipe["steps"]
    else:
        base, prior = model, []
    teacher = load_model(model, weights=weights, device=cfg.device)  # a base other than ``model``: one error
    files = image_paths(cfg.train_images)
    job = Job(teacher, base, prior, load_images(files), [str(p) for p in files], out_dir, cfg)
    size = list(teacher.preprocessing.input_size)
    before = _costs(teacher.net, size)
    t0 = time.perf_counter()
    net, step, log = fn(job)
    tag = f"prune{cfg.ratio:g}" if method == "prune" else method
    if step.get("engine") == "depgraph":  # another network than METER's groups at the same ratio: another name
        tag += "-depgraph" + ("-internal" if step.get("scope") == "internal" else "")
    name = f"{teacher.name}+{tag}" if method != "distill" else f"{cfg.student}<-{teacher.name}"
    steps = [*job.prior_steps, step]
    path = save_optimized(out_dir / "model.safetensors", net, job.base, steps, name)
    counted = net if method != "int8" else teacher.net
    report = {
        "model": name,
        "checkpoint": str(path),
        "from": str(model) if weights is None else f"{model} --weights {weights}",
        "method": method,
        "recipe": {"base": job.base, "steps": steps},
        "before": before,
        "after": _costs(counted, size),
        "training_images": job.image_files,
        "config": asdict(cfg),
        "log": log,
        "seconds_this_run": time.perf_counter() - t0,
    }
    report["before"]["bytes"] = _file_bytes(source) if optimized else _state_bytes(teacher.net)
    report["after"]["bytes"] = path.stat().st_size
    report["after"]["bytes_ratio"] = report["after"]["bytes"] / report["before"]["bytes"]
    report["after"]["params_ratio"] = report["after"]["params"] / before["params"]
    report["after"]["macs_ratio"] = report["after"]["macs"] / before["macs"]
    write_json(out_dir / "optimize.json", report)
    return report
