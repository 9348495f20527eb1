"""Which Optuna sampler stands for each Azure sampling algorithm.

- random: `RandomSampler`; with `rule: sobol`, a scrambled Sobol sequence (`QMCSampler`) over the whole search space
  from the very first trial (Optuna's own QMCSampler draws the first trial at random, which would spoil the
  sequence's stratification of the first points).
- grid: `GridSampler` over every combination of `space.grid` (choice and randint), each once; `seed` only shuffles
  the order. The driver caps the trial count with `grid_size`: past it, Optuna repeats points.
- bayesian: `TPESampler` (multivariate, Optuna 5's default for one objective, with the constant liar so that
  concurrent trials spread out). Azure's Bayesian sampling is a Gaussian-process Bayesian optimisation; TPE is the
  other standard Bayesian optimiser, a model of good and bad regions fitted to finished trials, and needs nothing
  beyond Optuna, whereas Optuna's GPSampler needs torch, which this package does not install. Like Azure's, it only
  learns from finished trials, which is why Azure refuses early termination with it. Its first 10 trials are random.

Azure accepts only choice, uniform and quniform with bayesian sampling (and only choice with grid). Every dimension
here is drawn as a plain uniform, integer or categorical internal parameter (see `space`), which TPE models well, so
the other types are sampled anyway rather than refused: a local run should not fail where it can work. The driver
can show `azure_caveats` so that the user knows the job needs changing before it is submitted to Azure.

`seed` is Azure's only under `random`; any algorithm here takes it, since it fixes draws (bayesian) or order (grid).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from mljob.runner.sweep.space import Dimension, distributions, grid
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, GridSampler, QMCSampler, RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

ALGORITHMS = ("random", "grid", "bayesian")
RULES = ("random", "sobol")
AZURE_TYPES = {"grid": {"choice"}, "bayesian": {"choice", "uniform", "quniform"}}


class SamplingError(ValueError):
    """`sampling_algorithm` settings that cannot be used; the message says how to fix them."""


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SamplingError(f"sampling_algorithm.seed must be a whole number, e.g. seed: 42, not {value!r}.")
    return value


def _logbase(value: Any) -> float:
    if value is None or (isinstance(value, str) and value.strip().lower() == "e"):
        return math.e
    try:
        base = float(value) if not isinstance(value, bool) else math.nan
    except ValueError:
        base = math.nan
    if not (math.isfinite(base) and base > 0 and base != 1):
        raise SamplingError(f"sampling_algorithm.logbase must be a positive number other than 1, or e, "
                            f"not {value!r}; e.g. logbase: 10.")
    return base


def algorithm_of(sampling_algorithm: str | Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """("random" | "grid" | "bayesian", settings). Settings always hold `seed` (int or None); random's also hold
    `rule` ("random" or "sobol") and `logbase` (a float, e by default). Names are case-insensitive; none is random."""
    if sampling_algorithm is None:
        sampling_algorithm = "random"
    if isinstance(sampling_algorithm, str):
        sampling_algorithm = {"type": sampling_algorithm}
    if not isinstance(sampling_algorithm, Mapping):
        raise SamplingError(f"sampling_algorithm must be random, grid or bayesian, or a mapping with `type`, "
                            f"not {sampling_algorithm!r}.")
    kind = str(sampling_algorithm.get("type") or "").strip().lower()
    if kind not in ALGORITHMS:
        raise SamplingError(f"sampling_algorithm: unknown type {sampling_algorithm.get('type')!r}; "
                            f"use one of {', '.join(ALGORITHMS)}.")
    allowed = {"type", "seed"} | ({"rule", "logbase"} if kind == "random" else set())
    extra = sorted(str(key) for key in sampling_algorithm if key not in allowed)
    if extra:
        raise SamplingError(f"sampling_algorithm: `{kind}` does not take {', '.join(f'`{e}`' for e in extra)}; "
                            "remove it (`rule` and `logbase` belong to random sampling).")
    settings: dict[str, Any] = {"seed": _seed(sampling_algorithm.get("seed"))}
    if kind == "random":
        rule = str(sampling_algorithm.get("rule") or "random").strip().lower()
        if rule not in RULES:
            raise SamplingError(f"sampling_algorithm.rule must be random or sobol, not {sampling_algorithm['rule']!r}.")
        settings["rule"] = rule
        settings["logbase"] = _logbase(sampling_algorithm.get("logbase"))
    return kind, settings


class _SobolSampler(QMCSampler):
    """A QMCSampler that knows the search space before the first trial.

    QMCSampler infers the space from earlier trials, so it draws the study's first trial with its independent
    (random) sampler; the search space of a sweep is fixed, so every trial can take the next Sobol point.
    """

    def __init__(self, search_space: Mapping[str, BaseDistribution], seed: int | None) -> None:
        # QMCSampler is experimental in Optuna; the warning says so at every sweep and is of no use to the user.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # A single process draws the sequence, so the warning about seeding distributed workers does not apply.
            super().__init__(qmc_type="sobol", scramble=True, seed=seed, warn_asynchronous_seeding=False)
        self._fixed_space = dict(search_space)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._fixed_space)


class _GridSampler(GridSampler):
    """GridSampler without its stop at the last point.

    Optuna's calls `study.stop()` once every point is finished; outside `study.optimize` that raises RuntimeError
    from `study.tell` of the last trial. The driver asks and tells, and bounds the trial count itself (`grid_size`).
    """

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        return None


def make_sampler(sampling_algorithm: str | Mapping[str, Any] | None, space: Mapping[str, Dimension]) -> BaseSampler:
    """The sampler for the sweep; raises SamplingError for bad settings, SpaceError if grid meets a continuous type."""
    kind, settings = algorithm_of(sampling_algorithm)
    seed = settings["seed"]
    if kind == "grid":
        return _GridSampler(grid(space), seed=seed)
    if kind == "bayesian":
        return TPESampler(seed=seed)
    if settings["rule"] == "sobol":
        return _SobolSampler(distributions(space), seed=seed)
    return RandomSampler(seed=seed)


def grid_size(space: Mapping[str, Dimension]) -> int:
    """How many points a grid sweep has: its useful max_total_trials. SpaceError if a dimension is continuous."""
    return math.prod(len(values) for values in grid(space).values())


def exhausted(sampler: BaseSampler, study: Study) -> bool:
    """Whether a grid sampler has every point in a finished trial (never true of the other samplers)."""
    return isinstance(sampler, GridSampler) and sampler.is_exhausted(study)


def azure_caveats(sampling_algorithm: str | Mapping[str, Any] | None, space: Mapping[str, Dimension]) -> list[str]:
    """What Azure would refuse in a sweep this module runs anyway, one sentence per dimension."""
    kind, _ = algorithm_of(sampling_algorithm)
    accepted = AZURE_TYPES.get(kind)
    if accepted is None:
        return []
    return [f"search_space.{name}: Azure's {kind} sampling accepts only {', '.join(sorted(accepted))}, not "
            f"{dim.type}; it runs here, but Azure will reject the job." for name, dim in space.items()
            if dim.type not in accepted]
