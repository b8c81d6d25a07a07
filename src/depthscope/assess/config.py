"""``AssessConfig``: everything that defines an assessment run, as one JSON-serialisable, picklable dataclass that
``assess``, ``assess_image``, the CLI and ``settings.json`` share (and that a worker process can be sent)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from depthscope.assess.fidelity import DEFAULT_N_PERTURBATIONS, check_draws
from depthscope.assess.perturbation import DEFAULT_FRACTIONS, parse_region
from depthscope.assess.registry import METRICS, AssessmentMetric
from depthscope.config import group_options, to_jsonable
from depthscope.errors import InputError
from depthscope.explain.attribution import METHODS

DEFAULT_METHODS = ("saliency", "integrated_gradients", "attention_rollout", "random")
DEFAULT_METRICS = ("curves", "af_depth_correlation", "infidelity", "faithfulness_correlation")
# Methods run with their own defaults: Integrated Gradients converges to a 2 % completeness error, as in explain
# (an unconverged IG was scored before 2026-12-06: 16 fixed nodes left a median completeness error of 79 %).
DEFAULT_METHOD_OPTIONS: dict[str, dict[str, Any]] = {}
# Named protocols: the perturbation settings of a study in one word (``--protocol NAME``), recorded in settings.json.
# "paper": SPEC §4's reading of the paper (pixels replaced by the image mean, fractions 0-50 % in 5 % steps).
# "recommended": 8-pixel patches replaced by a blur of the image, 0-50 %: chosen by benchmarks/paper_protocol.py
# (README, "Which protocol"): of the 15 protocols it leaves the least of the depth change explained by the global
# colour shift on both NYU and KITTI (R^2 0.004 and 0.001), keeps the random map at ~0 (NYU -0.03 [-0.10, 0.05])
# and separates the methods from it with the narrowest intervals.
_PAPER = {"replacement": "mean", "patch": 1, "fractions": list(DEFAULT_FRACTIONS)}
_RECOMMENDED = {"replacement": "blur", "patch": 8, "fractions": list(DEFAULT_FRACTIONS)}
PROTOCOLS: dict[str, dict[str, dict[str, Any]]] = {  # the matched control perturbs as the curves do
    "paper": {"curves": _PAPER, "matched_control": _PAPER},
    "recommended": {"curves": _RECOMMENDED, "matched_control": _RECOMMENDED},
}
DEFAULT_PROTOCOL = "recommended"
DEFAULT_REGION = "crop"


@dataclass(frozen=True)
class AssessConfig:
    """The settings of an assessment run.

    Attributes:
        methods: attribution methods to assess (``depthscope.explain.METHODS``).
        metrics: assessment metrics to compute (``depthscope.assess.METRICS``); those not named cost nothing.
        metric_options: per metric, its options (fields of its ``Config``), e.g. ``{"infidelity": {"sigma": 0.02}}``.
        method_options: per method, its options, e.g. ``{"integrated_gradients": {"n_steps": 32}}``.
        n_perturbations: Monte-Carlo draws of every sampling metric that does not set its own.
        seed: image ``i`` of a dataset uses seed ``seed + i``; each method and metric draws from its own stream.
        protocol: a named preset of metric options (:data:`PROTOCOLS`: ``paper``, ``recommended``); options given
            in ``metric_options`` override it.
        perturb_region: the pixels every perturbation metric may perturb (curves rank within them):
            ``crop`` (default: the evaluation crop of the model's protocol, Eigen on NYU, which leaves out the
            white frame METER-XXS-NYU reads its global depth from; ``depthscope probe``), ``full`` or
            ``x0,y0,x1,y1`` (pixels, end-exclusive).

    Example:
        >>> cfg = AssessConfig(methods=("saliency", "random")).with_options(["infidelity.sigma=0.02"])
        >>> cfg.metric_config("infidelity").sigma, AssessConfig.from_dict(cfg.to_dict()) == cfg
        (0.02, True)
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    metrics: tuple[str, ...] = DEFAULT_METRICS
    metric_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: dict(DEFAULT_METHOD_OPTIONS))
    n_perturbations: int = DEFAULT_N_PERTURBATIONS
    seed: int = 0
    protocol: str = DEFAULT_PROTOCOL
    perturb_region: str = DEFAULT_REGION

    def __post_init__(self) -> None:
        parse_region(self.perturb_region)  # its form now; a box's bounds against each image
        if self.protocol not in PROTOCOLS:
            raise InputError(f"unknown protocol {self.protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
        object.__setattr__(self, "methods", _names(self.methods, "methods"))
        object.__setattr__(self, "metrics", _names(self.metrics, "metrics"))
        for m in self.methods:
            METHODS.get(m)  # unknown names fail before any work, listing the valid ones
        for m in self.metrics:
            METRICS.get(m)
        if not self.methods or not self.metrics:
            raise InputError("an assessment needs at least one method and one metric")
        check_draws("n_perturbations", self.n_perturbations)
        stray = sorted(set(self.metric_options) - set(self.metrics))
        if stray:
            raise InputError(f"options given for metrics not requested: {', '.join(stray)}")
        for name in self.metrics:
            self.metric_config(name)  # every option checked now, not after the first image
        for name, opts in self.method_options.items():
            METHODS.get(name).check_options(opts)  # unknown options and wrong types fail before any work

    def metric_config(self, name: str) -> Any:
        """Metric ``name``'s ``Config`` with this run's options; ``n_perturbations`` left unset is the run's."""
        config = METRICS.get(name).configure(self._options(name))
        if getattr(config, "n_perturbations", 0) is None:
            config = dataclasses.replace(config, n_perturbations=self.n_perturbations)
        return config

    def build_metrics(self) -> dict[str, AssessmentMetric]:
        """``{name: metric instance}`` for the chosen metrics, in order."""
        return {name: METRICS.get(name)(self.metric_config(name)) for name in self.metrics}

    def with_options(self, options: Iterable[str]) -> AssessConfig:
        """A copy with ``NAME.KEY=VALUE`` options applied; NAME is a method or a metric (the CLI's ``--option``)."""
        methods = {k: dict(v) for k, v in self.method_options.items()}
        metrics = {k: dict(v) for k, v in self.metric_options.items()}
        for owner, values in group_options(options).items():
            if owner in METRICS:
                metrics.setdefault(owner, {}).update(values)
            elif owner in METHODS:
                methods.setdefault(owner, {}).update(values)
            else:
                valid = ", ".join([*METHODS.names(), *METRICS.names()])
                raise InputError(f"option {owner}.{next(iter(values))}: {owner!r} is neither a method nor a metric; "
                                 f"valid: {valid}")  # fmt: skip
        return dataclasses.replace(self, method_options=methods, metric_options=metrics)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (what ``settings.json`` records)."""
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AssessConfig:
        """The config :meth:`to_dict` wrote."""
        return cls(**{k: tuple(v) if k in ("methods", "metrics") else v for k, v in d.items()})

    def settings(self) -> dict[str, Any]:
        """What must match for a rerun to append to the same results: everything but the methods (a rerun may add
        methods), with every metric's config spelled out (its defaults too, so a changed default is noticed)."""
        d = self.to_dict()
        del d["methods"], d["metric_options"]
        d["method_options"] = {k: v for k, v in d["method_options"].items() if k in self.methods}
        d["metric_configs"] = {
            name: to_jsonable(METRICS.get(name).configure(self._options(name))) for name in self.metrics
        }
        return d

    def _options(self, name: str) -> dict[str, Any]:
        """Metric ``name``'s options: the protocol's preset, overridden by ``metric_options``."""
        return {**PROTOCOLS[self.protocol].get(name, {}), **self.metric_options.get(name, {})}

    def cli_args(self) -> list[str]:
        """The ``depthscope assess`` options that rebuild this config (``--option`` for every option set).

        Example:
            >>> AssessConfig(methods=("saliency",), metrics=("curves",), method_options={}).cli_args()
            ['--methods', 'saliency', '--metrics', 'curves', '--n-perturbations', '256', '--seed', '0', '--protocol', 'recommended']
        """
        args = ["--methods", ",".join(self.methods), "--metrics", ",".join(self.metrics)]
        args += ["--n-perturbations", str(self.n_perturbations), "--seed", str(self.seed), "--protocol", self.protocol]
        if self.perturb_region != DEFAULT_REGION:
            args += ["--perturb-region", self.perturb_region]
        for owner, opts in (*self.method_options.items(), *self.metric_options.items()):
            if owner in self.methods or owner in self.metrics:
                for key, value in opts.items():
                    text = value if isinstance(value, str) else json.dumps(to_jsonable(value))
                    args += ["--option", f"{owner}.{key}={text}"]
        return args

    def descriptions(self) -> dict[str, str]:
        """``{score: one-sentence definition}`` of the chosen metrics' columns, and of the runner's timing."""
        out = {c.name: c.description for c in self.columns() if c.description}
        return out | {"seconds_per_map": "wall time of one map (the method alone, without scoring)"}

    def columns(self) -> list[Any]:
        """The results columns of the chosen metrics, in order."""
        return [c for name in self.metrics for c in METRICS.get(name).columns]


def _names(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
    if len(names) != len([n for n in items if str(n).strip()]):
        raise InputError(f"{what} lists a name twice: {', '.join(items)}")
    return names
