"""The Ray engine: ``assess`` and ``evaluate`` over worker processes, machines and GPUs.

One actor per worker loads the model once, by name, checkpoint path or entry point (nothing of the caller's
session is pickled but the settings, a :class:`~depthscope.data.DataSpec` and the model's name), and opens the
dataset itself. The unit of work is one (model, image) with all its methods and metrics; the driver alone appends
and fsyncs the results file, so resume, skip-what-is-done and the settings checks are the local engine's. A worker
or node that dies mid-image: the image goes back in the queue for another worker (a replacement actor is started
where the cluster has room), so no row is lost or written twice. Ctrl-C on the driver kills the actors; a local
Ray this engine started is stopped at the end.

Ray is an optional extra (``pip install -e ".[ray]"``): nothing here imports it until an engine is used.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from depthscope.assess.config import AssessConfig
from depthscope.assess.plan import CostPlan, PhaseTimer
from depthscope.data.datasets import DataSpec, DepthDataset
from depthscope.errors import InputError, warn
from depthscope.models import warn_untrained
from depthscope.models.base import RANDOM_WEIGHTS

RAY_EXTRA = 'pip install -e ".[ray]"'
ENV_PASSED = ("DEPTHSCOPE_WEIGHTS", "DEPTHSCOPE_DATA", "DEPTHSCOPE_CACHE")  # the project's lookups, to every worker


def import_ray() -> Any:
    """The ``ray`` module, or one clear error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--engine ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


@dataclass(frozen=True)
class RayEngine:
    """Where and how wide a Ray run is.

    Attributes:
        address: None: start a new Ray on this machine and stop it at the end (even where ``RAY_ADDRESS`` or an
            earlier ``ray start`` names another); ``auto``: the cluster this machine belongs to (``RAY_ADDRESS``
            first); ``ray://HOST:PORT`` (Ray Client) or ``HOST:PORT``: that cluster.
        workers: actors, each with its own copy of the model.
        cpus_per_worker: CPUs Ray reserves per actor (also its torch threads).
        gpus_per_worker: GPUs per actor (0: CPU workers); a worker given one puts its model there.
        retries: how many times one image may lose its worker before the run stops.
        start_timeout: seconds to wait for at least one worker to start (a cluster without room for one).

    Example:
        >>> RayEngine(workers=2).workers, RayEngine(address="ray://10.0.0.5:10001").address
        (2, 'ray://10.0.0.5:10001')
    """

    address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    retries: int = 3
    start_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if not self.cpus_per_worker > 0:
            raise InputError(f"--cpus-per-worker must be > 0, got {self.cpus_per_worker}")
        if self.gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker must be >= 0, got {self.gpus_per_worker}")
        a = self.address
        if a is not None and a != "auto" and not re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d{1,5}", a):
            raise InputError(f"--address must be auto, ray://HOST:PORT or HOST:PORT, got {a!r}")

    def evaluate(self, *args: Any) -> RayEvaluation:
        """``evaluate``'s images on Ray workers (:class:`RayEvaluation`)."""
        return RayEvaluation(self, *args)

    def robustness(self, *args: Any) -> RayRobustness:
        """``robustness``' images on Ray workers (:class:`RayRobustness`)."""
        return RayRobustness(self, *args)

    def runner(self, model: Any, data: Any, device: str = "cpu", weights: str | None = None) -> RayAssessRunner:
        """The assess runner of ``model`` on ``data`` (the interface of :class:`~depthscope.assess.run.LocalRunner`)."""
        return RayAssessRunner(self, model, data, device, weights)


def _check_portable(model: Any, data: Any) -> None:
    if not isinstance(model, str):
        raise InputError("--engine ray: give models by name, checkpoint path or package.module:function (each worker "
                         "loads its own copy), not a DepthModel object")  # fmt: skip
    if isinstance(data, DepthDataset):
        raise InputError("--engine ray: give the data as a path or a depthscope.data.DataSpec (each worker opens it "
                         "itself), not a dataset object")  # fmt: skip


class _RaySession:
    """``ray.init`` unless Ray is already up in this process; ``close`` stops it only if this session started it."""

    def __init__(self, engine: RayEngine) -> None:
        self.ray = ray = import_ray()
        self.started = False
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in ENV_PASSED if k in os.environ}
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
            if engine.address is None:  # a Ray of this machine's own, wide enough for the workers asked for
                need = engine.workers * engine.cpus_per_worker
                kwargs |= {"num_cpus": max(os.cpu_count() or 1, math.ceil(need))}
                if torch.cuda.is_available():
                    kwargs["num_gpus"] = torch.cuda.device_count()
            if engine.address not in (None, "auto"):
                _check_reachable(engine.address)
            # "local" starts a new Ray even where RAY_ADDRESS or a `ray start` of another session is found:
            # ray.init(address=None) would join that cluster (and refuse num_cpus).
            address = "local" if engine.address is None else engine.address
            try:
                ray.init(address=address, runtime_env={"env_vars": env} if env else None, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                what = (
                    "cannot start a Ray on this machine"
                    if engine.address is None
                    else (f"--address {engine.address}: cannot connect to Ray")
                )
                raise InputError(f"{what} ({str(e).splitlines()[0]})") from None
            self.started = True

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """One clear error for a cluster address nothing answers at (``ray.init`` would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise InputError(
            f"--address {address}: nothing answers there ({e.strerror or e}); is the Ray head running?"
        ) from None


def _cause(error: BaseException) -> BaseException:
    """The exception a Ray task raised inside depthscope's code, unwrapped (an InputError stays one line)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, InputError) else error


class _Worker:
    """What every actor does first: its torch threads, its device (a GPU if Ray gave it one: Ray has set
    CUDA_VISIBLE_DEVICES to the actor's GPUs), and an ``InputError`` of loading kept for the first call to raise,
    so the driver gets it as one line."""

    def __init__(self, threads: float, device: str) -> None:
        import ray

        torch.set_num_threads(max(1, int(threads)))
        self.device = "cuda" if ray.get_gpu_ids() else device
        self.error: InputError | None = None

    def _ok(self) -> None:
        if self.error is not None:
            raise self.error


class _AssessWorker(_Worker):
    """The actor of ``assess``: one model and the dataset, loaded once; scores one image per call."""

    def __init__(self, model: str, weights: str | None, data: DataSpec | str, device: str, threads: float) -> None:
        from depthscope.assess.run import LocalRunner

        super().__init__(threads, device)
        try:
            self.local = LocalRunner(model, data, self.device, weights)
        except InputError as e:
            self.error = e

    def info(self) -> dict[str, Any]:
        self._ok()
        loc = self.local
        return {"name": loc.name, "weights": loc.weights_record, "device": loc.device, "keys": loc.keys(None),
                "identity": loc.identity}  # fmt: skip

    def tune(self) -> int:
        self._ok()
        return self.local.tune()

    def plan(self, config: dict[str, Any], limit: int | None, images: int, chunk: int) -> CostPlan:
        self._ok()
        return self.local.plan(AssessConfig.from_dict(config), limit, images, chunk)

    def image(self, i: int, config: dict[str, Any], whole: bool, seed: int, chunk: int) -> tuple[list, dict, bool]:
        self._ok()
        self.local.timer = PhaseTimer()
        rows = list(self.local.run([(i, AssessConfig.from_dict(config), whole)], seed, chunk, lambda text: None))
        return rows, self.local.timer.totals, whole


class _ActorPool:
    """Actors of one class, started where the cluster has room, and a queue of jobs mapped over them: a job whose
    actor dies goes back in the queue (a replacement actor is started), at most ``retries`` times."""

    def __init__(self, engine: RayEngine, session: _RaySession, worker: type, args: tuple) -> None:
        self.engine, self.ray = engine, session.ray
        self.actor_class = self.ray.remote(worker).options(
            num_cpus=engine.cpus_per_worker, num_gpus=engine.gpus_per_worker, max_restarts=0, max_task_retries=0
        )
        self.args = args
        if engine.address is None:  # a Ray of this machine's own cannot grow: a worker that cannot fit never will
            have = self.ray.cluster_resources()
            if engine.cpus_per_worker > have.get("CPU", 0) or engine.gpus_per_worker > have.get("GPU", 0):
                raise InputError(self._no_room(waited=False))
        self.starting: dict[Any, Any] = {}  # info() ref -> actor not known to be up yet
        self.idle: list[Any] = []
        self.all: list[Any] = []
        for _ in range(engine.workers):
            self._spawn()
        self.info = self._wait_for_one()

    def _spawn(self) -> None:
        actor = self.actor_class.remote(*self.args)
        self.all.append(actor)
        self.starting[actor.info.remote()] = actor

    def _started(self, ref: Any) -> dict[str, Any] | None:
        """The info of the actor whose start ``ref`` is, now up and idle; None if it died starting."""
        actor = self.starting.pop(ref)
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:
            return None
        except self.ray.exceptions.RayTaskError as e:
            raise _cause(e) from None
        self.idle.append(actor)
        return info

    def _wait_for_one(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.engine.start_timeout
        while self.starting:
            ready, _ = self.ray.wait(list(self.starting), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            info = self._started(ready[0])
            if info is not None:
                return info
        raise InputError(self._no_room())

    def _no_room(self, waited: bool = True) -> str:
        e = self.engine
        have = self.ray.cluster_resources()
        when = f"no Ray worker started within {e.start_timeout:.0f} s" if waited else "no Ray worker can start here"
        return (f"{when}: each needs {e.cpus_per_worker:g} CPU(s) and "
                f"{e.gpus_per_worker:g} GPU(s); the cluster has {have.get('CPU', 0):g} CPU(s) and "
                f"{have.get('GPU', 0):g} GPU(s) (--cpus-per-worker, --gpus-per-worker)")  # fmt: skip

    def call(self, method: str, *args: Any) -> Any:
        """``method(*args)`` on one started actor, waited for."""
        try:
            return self.ray.get(getattr(self.idle[0], method).remote(*args))
        except self.ray.exceptions.RayTaskError as e:
            raise _cause(e) from None

    def map(
        self, jobs: Sequence[Any], submit: Callable[[Any, Any], Any], name: Callable[[Any], str],
        status: Callable[[str], None],
    ) -> Iterator[Any]:  # fmt: skip
        """The result of ``submit(actor, job)`` (an object ref) for every job, in completion order."""
        ray, queue = self.ray, deque(enumerate(jobs))  # (position, job): a retried job keeps its position
        lost: dict[int, int] = {}
        pending: dict[Any, tuple[Any, tuple[int, Any]]] = {}
        last_progress = time.monotonic()
        while queue or pending:
            while self.idle and queue:
                actor, (k, job) = self.idle.pop(), queue.popleft()
                pending[submit(actor, job)] = (actor, (k, job))
            status(f"{len(pending)} image(s) on {len(pending) + len(self.idle)} worker(s), {len(queue)} queued")
            ready, _ = ray.wait([*pending, *self.starting], num_returns=1, timeout=5.0)
            if not ready:
                if not pending and time.monotonic() - last_progress > self.engine.start_timeout:
                    raise InputError(self._no_room())
                continue
            ref = ready[0]
            if ref in self.starting:
                self._started(ref)
                continue
            actor, (k, job) = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:  # the worker or its node died: the job goes to another
                lost[k] = lost.get(k, 0) + 1
                if lost[k] > self.engine.retries:
                    raise InputError(f"image {name(job)} lost its Ray worker {lost[k]} times; giving up") from None
                warn(f"a Ray worker died while scoring {name(job)}; retrying it on another worker")
                queue.appendleft((k, job))
                self._spawn()  # a replacement, used once the cluster has room for it
                continue
            except ray.exceptions.RayTaskError as e:
                raise _cause(e) from None
            last_progress = time.monotonic()
            self.idle.append(actor)
            yield result

    def close(self) -> None:
        for actor in self.all:
            with contextlib.suppress(Exception):  # already dead, or its node gone
                self.ray.kill(actor)
        self.all = []


class _Workers:
    """A Ray session and an actor pool, closed together (the actors killed, a Ray this started stopped)."""

    def __init__(self, engine: RayEngine, worker: type, args: tuple) -> None:
        self.session = _RaySession(engine)
        try:
            self.pool = _ActorPool(engine, self.session, worker, args)
        except BaseException:
            self.session.close()
            raise

    def close(self) -> None:
        self.pool.close()
        self.session.close()


class RayAssessRunner:
    """One model's assessment on Ray actors, with the interface of :class:`~depthscope.assess.run.LocalRunner`."""

    def __init__(self, engine: RayEngine, model: Any, data: Any, device: str, weights: str | None) -> None:
        _check_portable(model, data)
        self.workers = engine.workers
        spec = data if isinstance(data, DataSpec) else str(data)
        self.ray = _Workers(engine, _AssessWorker, (model, weights, spec, device, engine.cpus_per_worker))
        info = self.ray.pool.info  # the first worker's: every worker loads the same model and data
        self.name, self.weights_record, self.device = info["name"], info["weights"], info["device"]
        self._keys: list[str] = info["keys"]
        self.identity: dict[str, Any] = info["identity"]
        self.timer = PhaseTimer()
        if self.weights_record == RANDOM_WEIGHTS:
            warn_untrained(self.name, "its maps explain no trained model")

    def keys(self, limit: int | None) -> list[str]:
        return self._keys if limit is None else self._keys[:limit]

    def tune(self) -> int:
        return self.ray.pool.call("tune")

    def plan(self, config: AssessConfig, limit: int | None, images: int, chunk: int) -> CostPlan:
        cost = self.ray.pool.call("plan", config.to_dict(), limit, images, chunk)
        cost.workers = self.workers
        return cost

    def run(
        self, jobs: Sequence[tuple[int, AssessConfig, bool]], seed: int, chunk: int, status: Callable[[str], None]
    ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Rows of every job, an image's rows together as its worker finishes it (completion order)."""
        submit = lambda actor, job: actor.image.remote(job[0], job[1].to_dict(), job[2], seed, chunk)  # noqa: E731
        for rows, totals, whole in self.ray.pool.map(jobs, submit, lambda job: self._keys[job[0]], status):
            for phase, seconds in totals.items():
                self.timer.totals[phase] = self.timer.totals.get(phase, 0.0) + seconds
            self.timer.images += whole
            yield from rows

    def close(self) -> None:
        """Kill this runner's actors; stop the local Ray if this runner started it."""
        self.ray.close()


class _EvaluateWorker(_Worker):
    """The actor of ``evaluate``: one model and the dataset; predicts and scores one image per call."""

    def __init__(self, model: str, weights: str | None, data: DataSpec, device: str, threads: float) -> None:
        from depthscope.models import load_model

        super().__init__(threads, device)
        try:
            self.model = load_model(model, weights=weights, device=self.device)
            self.ds = data.open(self.model.info.eval.dataset)
        except InputError as e:
            self.error = e

    def info(self) -> dict[str, Any]:
        self._ok()
        m = self.model
        return {"name": m.name, "weights": m.weights_record, "device": self.device}

    def image(self, i: int, settings: dict[str, Any]) -> tuple[str, dict[str, Any] | None, Any]:
        from depthscope.metrics.evaluate import check_prediction, score_prediction

        s = self.ds[i]
        with torch.no_grad():
            pred = self.model(s.image[None].to(self.device))[0, 0].cpu()
        if i == 0:
            check_prediction(self.model, pred, s.name)
        row = score_prediction(s.name, pred, s.depth, settings, s)
        return s.name, row, pred.numpy() if row is None else None


class RayEvaluation:
    """Images ``0..n-1`` of ``evaluate`` on Ray workers: ``info`` (the model's ``name``, ``weights`` record and
    ``device`` on the workers), then iterating gives ``(image, row or None, prediction or None)`` in completion order
    (a row for an image with ground truth, else its prediction ``(H, W)`` in metres for the caller to save);
    :meth:`close` stops the workers."""

    def __init__(
        self, engine: RayEngine, model: str, weights: str | None, data: DataSpec, device: str, n: int,
        scoring: dict[str, Any], status: Callable[[str], None],
    ) -> None:  # fmt: skip
        _check_portable(model, data)
        self.workers = _Workers(engine, _EvaluateWorker, (model, weights, data, device, engine.cpus_per_worker))
        self.info = self.workers.pool.info
        self.n, self.scoring, self.status = n, scoring, status

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any] | None, Any]]:
        submit = lambda actor, i: actor.image.remote(i, self.scoring)  # noqa: E731
        return self.workers.pool.map(range(self.n), submit, lambda i: f"#{i}", self.status)

    def close(self) -> None:
        self.workers.close()


class _RobustnessWorker(_Worker):
    """The actor of ``robustness``: the model (and the reference) and the dataset; one whole image per call."""

    def __init__(self, model: str, reference: str | None, data: Any, device: str, threads: float) -> None:
        from depthscope.data.datasets import as_dataset
        from depthscope.models import load_model

        super().__init__(threads, device)
        try:
            self.model = load_model(model, device=self.device)
            self.ref = None if reference is None else load_model(reference, device=self.device)
            self.ds = as_dataset(data, self.model.info.eval.dataset)
        except InputError as e:
            self.error = e

    def info(self) -> dict[str, Any]:
        self._ok()
        return {"name": self.model.name, "weights": self.model.weights_record, "device": self.device}

    def image(self, i: int, job: dict[str, Any]) -> tuple[int, list, list]:
        from depthscope.robustness.run import robustness_image

        self._ok()
        return (i, *robustness_image(self.model, self.ref, self.ds[i], i, job))


class RayRobustness:
    """The images of ``robustness`` on Ray workers; iterating gives ``(index, rows, figure panels)`` in completion
    order; :meth:`close` stops the workers."""

    def __init__(
        self, engine: RayEngine, model: str, reference: str | None, data: Any, device: str, jobs: Sequence[int],
        job: dict[str, Any], status: Callable[[str], None],
    ) -> None:  # fmt: skip
        _check_portable(model, data)
        self.workers = _Workers(engine, _RobustnessWorker, (model, reference, data, device, engine.cpus_per_worker))
        self.jobs, self.job, self.status = list(jobs), job, status

    def __iter__(self) -> Iterator[tuple[int, list, list]]:
        submit = lambda actor, i: actor.image.remote(i, self.job)  # noqa: E731
        return self.workers.pool.map(self.jobs, submit, lambda i: f"#{i}", self.status)

    def close(self) -> None:
        self.workers.close()
