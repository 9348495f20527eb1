"""Sampler choice: settings are read as Azure writes them; grid visits every point once; seeds reproduce draws;
Sobol draws stratify from the first trial."""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import optuna
import pytest
from mljob.runner.sweep.sampling import (
    SamplingError,
    algorithm_of,
    azure_caveats,
    exhausted,
    grid_size,
    make_sampler,
)
from mljob.runner.sweep.space import SpaceError, parse_space, sample

optuna.logging.set_verbosity(optuna.logging.WARNING)

MIXED = parse_space({
    "x": {"type": "uniform", "min_value": 0, "max_value": 1},
    "lr": {"type": "loguniform", "min_value": -6, "max_value": -1},
    "w": {"type": "normal", "mu": 0, "sigma": 1},
    "k": {"type": "choice", "values": ["a", "b", "c"]},
    "n": {"type": "randint", "upper": 4},
})


def _objective(values: dict[str, Any]) -> float:
    return (values["x"] - 0.3) ** 2 + values["w"] ** 2 + {"a": 0, "b": 1, "c": 2}[values["k"]] + values["n"]


def _run(sampling_algorithm: Any, space: Any = MIXED, trials: int = 15) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=make_sampler(sampling_algorithm, space), direction="minimize")
    drawn = []
    for _ in range(trials):
        trial = study.ask()
        values = sample(trial, space)
        drawn.append(values)
        study.tell(trial, _objective(values) if "w" in values else 0.0)
    return drawn


@pytest.mark.parametrize(("given", "expected"), [
    (None, ("random", {"seed": None, "rule": "random", "logbase": math.e})),
    ("random", ("random", {"seed": None, "rule": "random", "logbase": math.e})),
    ("Grid", ("grid", {"seed": None})),
    ("BAYESIAN", ("bayesian", {"seed": None})),
    ({"type": "random", "seed": 42, "rule": "sobol"}, ("random", {"seed": 42, "rule": "sobol", "logbase": math.e})),
    ({"type": "random", "logbase": 10}, ("random", {"seed": None, "rule": "random", "logbase": 10.0})),
    ({"type": "random", "logbase": "e"}, ("random", {"seed": None, "rule": "random", "logbase": math.e})),
    ({"type": "grid"}, ("grid", {"seed": None})),
    ({"type": "bayesian", "seed": 7}, ("bayesian", {"seed": 7})),
])
def test_algorithm_of(given: Any, expected: tuple[str, dict]) -> None:
    assert algorithm_of(given) == expected


@pytest.mark.parametrize(("given", "message"), [
    ("hyperband", r"unknown type 'hyperband'; use one of random, grid, bayesian"),
    ({"seed": 1}, r"unknown type None"),
    ({"type": "random", "rule": "halton"}, r"rule must be random or sobol, not 'halton'"),
    ({"type": "random", "seed": "42"}, r"seed must be a whole number"),
    ({"type": "random", "seed": 4.2}, r"seed must be a whole number"),
    ({"type": "grid", "rule": "sobol"}, r"`grid` does not take `rule`"),
    ({"type": "random", "logbase": 1}, r"logbase must be a positive number other than 1"),
    ({"type": "random", "logbase": "ten"}, r"logbase must be a positive number"),
    ({"type": "random", "logbase": -2}, r"logbase must be a positive number"),
    (42, r"sampling_algorithm must be random, grid or bayesian"),
])
def test_bad_settings_are_refused_with_a_fix(given: Any, message: str) -> None:
    with pytest.raises(SamplingError, match=message):
        algorithm_of(given)


def test_each_algorithm_gets_its_sampler() -> None:
    choices = parse_space({"k": {"type": "choice", "values": [1, 2]}})
    assert isinstance(make_sampler(None, MIXED), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler({"type": "random", "rule": "sobol", "seed": 1}, MIXED), optuna.samplers.QMCSampler)
    assert isinstance(make_sampler("bayesian", MIXED), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("grid", choices), optuna.samplers.GridSampler)


def test_sobol_is_made_without_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_sampler({"type": "random", "rule": "sobol", "seed": 3}, MIXED)
        make_sampler({"type": "random", "rule": "sobol"}, MIXED)
    assert caught == []


GRIDS = {
    "3x2 choices": ({"a": {"type": "choice", "values": [1, "two", 3.5]},
                     "b": {"type": "choice", "values": [True, False]}},
                    {"a": [1, "two", 3.5], "b": [True, False]}),
    "choice x randint": ({"a": {"type": "choice", "values": ["x", "y", "z"]}, "r": {"type": "randint", "upper": 2}},
                         {"a": ["x", "y", "z"], "r": [0, 1]}),
}


@pytest.mark.parametrize("case", GRIDS)
def test_grid_visits_every_point_exactly_once_then_has_no_new_point(case: str) -> None:
    spec, axes = GRIDS[case]
    space = parse_space(spec)
    points = {tuple((type(v), v) for v in combo) for combo in itertools.product(*axes.values())}
    assert grid_size(space) == len(points) == 6
    sampler = make_sampler({"type": "grid", "seed": 5}, space)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    seen = []
    for _ in range(6):
        assert not exhausted(sampler, study)
        trial = study.ask()
        values = sample(trial, space)
        seen.append(tuple((type(v), v) for v in values.values()))
        study.tell(trial, 1.0)  # Optuna's own GridSampler raises RuntimeError at the last one outside optimize()
    assert sorted(seen, key=repr) == sorted(points, key=repr)
    assert exhausted(sampler, study)
    trial = study.ask()  # past the grid Optuna repeats a point (the driver stops at grid_size)
    assert tuple((type(v), v) for v in sample(trial, space).values()) in points


def test_grid_hands_out_distinct_points_to_concurrent_trials() -> None:
    space = parse_space(GRIDS["3x2 choices"][0])
    sampler = make_sampler("grid", space)
    study = optuna.create_study(sampler=sampler)
    trials = [study.ask() for _ in range(6)]
    drawn = {tuple((type(v), v) for v in sample(trial, space).values()) for trial in trials}
    assert len(drawn) == 6
    assert not exhausted(sampler, study)  # every point running, none finished
    for trial in trials:
        study.tell(trial, 0.0)
    assert exhausted(sampler, study)


def test_grid_order_follows_the_seed() -> None:
    space = parse_space({"a": {"type": "choice", "values": list(range(10))}})
    assert _run({"type": "grid", "seed": 1}, space, 10) == _run({"type": "grid", "seed": 1}, space, 10)
    assert _run({"type": "grid", "seed": 1}, space, 10) != _run({"type": "grid", "seed": 2}, space, 10)


def test_grid_refuses_continuous_dimensions() -> None:
    with pytest.raises(SpaceError, match=r"search_space\.x: grid sampling"):
        make_sampler("grid", MIXED)
    with pytest.raises(SpaceError, match=r"search_space\.x"):
        grid_size(MIXED)


def test_other_samplers_are_never_exhausted() -> None:
    sampler = make_sampler("random", MIXED)
    assert not exhausted(sampler, optuna.create_study(sampler=sampler))


@pytest.mark.parametrize("algorithm", ["random", "sobol", "bayesian"])
def test_a_seed_reproduces_the_draws_and_another_seed_changes_them(algorithm: str) -> None:
    def settings(seed: int) -> dict[str, Any]:
        if algorithm == "sobol":
            return {"type": "random", "rule": "sobol", "seed": seed}
        return {"type": algorithm, "seed": seed}

    # 15 trials: past TPE's 10 random start-up trials, so the model's own proposals are compared too.
    first, again, other = _run(settings(11)), _run(settings(11)), _run(settings(12))
    assert first == again
    assert all(a != b for a, b in zip(first, other, strict=True))


def test_bayesian_learns_from_finished_trials() -> None:
    space = parse_space({"x": {"type": "uniform", "min_value": 0, "max_value": 1},
                         "w": {"type": "normal", "mu": 0, "sigma": 1},
                         "k": {"type": "choice", "values": ["a", "b", "c"]},
                         "n": {"type": "randint", "upper": 4}})
    drawn = _run({"type": "bayesian", "seed": 3}, space, 60)
    early = sum(_objective(v) for v in drawn[:10]) / 10
    late = sum(_objective(v) for v in drawn[-10:]) / 10
    assert late < early / 2


@pytest.mark.parametrize("count", [8, 16])
def test_sobol_stratifies_every_dimension_from_the_first_trial(count: int) -> None:
    sampler = make_sampler({"type": "random", "rule": "sobol", "seed": 2}, MIXED)
    study = optuna.create_study(sampler=sampler)
    for _ in range(count):
        trial = study.ask()
        sample(trial, MIXED)
        study.tell(trial, 0.0)
    trials = study.get_trials(deepcopy=False)
    # Each dimension's internal draw, scaled to [0, 1): the first 2^m Sobol points fill the 2^m slices once each.
    unit = {
        "x": [t.params["x"] for t in trials],
        "lr": [(t.params["lr"] + 6) / 5 for t in trials],
        "w": [t.params["w"] for t in trials],
    }
    for name, values in unit.items():
        assert sorted(int(v * count) for v in values) == list(range(count)), name
    # randint and choice map the unit slices onto their values evenly.
    assert sorted(t.params["n"] for t in trials) == sorted(list(range(4)) * (count // 4))
    assert sorted(t.params["k"] for t in trials).count("a") in (count // 3, count // 3 + 1)


def test_azure_caveats_name_what_azure_would_refuse() -> None:
    assert azure_caveats("random", MIXED) == []
    caveats = azure_caveats("bayesian", MIXED)
    assert [c.split(":")[0] for c in caveats] == ["search_space.lr", "search_space.w", "search_space.n"]
    assert "accepts only choice, quniform, uniform, not loguniform" in caveats[0]
    grid_space = parse_space(GRIDS["choice x randint"][0])
    assert [c.split(":")[0] for c in azure_caveats("grid", grid_space)] == ["search_space.r"]
