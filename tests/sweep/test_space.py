"""Search spaces: each of Azure's ten distributions drawn through Optuna matches its exact definition
(Kolmogorov–Smirnov for continuous ones, chi-square for discrete ones, 3000 draws, fixed seed), and bad entries
are refused with a message that names the key and the fix."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import optuna
import pytest
from mljob.runner.sweep.space import (
    SpaceError,
    distributions,
    format_value,
    from_params,
    grid,
    parse_space,
    sample,
    suggest,
    to_azure,
)
from scipy import stats

optuna.logging.set_verbosity(optuna.logging.WARNING)

DRAWS = 3000
P_MIN = 0.001  # the seed is fixed, so this only guards against a sampler that changes its stream

SPACE = {
    "B": {"type": "choice", "values": ["hello", "world", 3, 1.5, True]},
    "n": {"type": "randint", "upper": 7},
    "C": {"type": "uniform", "min_value": 0.1, "max_value": 1.0},
    "qu": {"type": "quniform", "min_value": 0, "max_value": 10, "q": 1},
    "lr": {"type": "loguniform", "min_value": -6, "max_value": -1},
    "qlu": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 2},
    "no": {"type": "normal", "mu": 10, "sigma": 3},
    "qno": {"type": "qnormal", "mu": 10, "sigma": 3, "q": 2},
    "lno": {"type": "lognormal", "mu": 0, "sigma": 0.5},
    "qlno": {"type": "qlognormal", "mu": 1, "sigma": 0.5, "q": 0.5},
}


@pytest.fixture(scope="module")
def study_draws() -> tuple[optuna.Study, list[dict]]:
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=20240611))
    draws = []
    for _ in range(DRAWS):
        trial = study.ask()
        draws.append(sample(trial, space))
        study.tell(trial, 0.0)
    return study, draws


@pytest.fixture(scope="module")
def draws(study_draws: tuple[optuna.Study, list[dict]]) -> dict[str, list]:
    return {name: [d[name] for d in study_draws[1]] for name in SPACE}


CONTINUOUS: dict[str, Callable[[float], float]] = {
    "C": stats.uniform(0.1, 0.9).cdf,
    "lr": stats.loguniform(math.exp(-6), math.exp(-1)).cdf,
    "no": stats.norm(10, 3).cdf,
    "lno": stats.lognorm(s=0.5, scale=math.exp(0)).cdf,
}


@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_distributions_match_their_definition(draws: dict[str, list], name: str) -> None:
    values = draws[name]
    assert all(type(v) is float for v in values)
    assert stats.kstest(values, CONTINUOUS[name]).pvalue > P_MIN


def test_bounded_draws_stay_within_their_bounds(draws: dict[str, list]) -> None:
    assert all(0.1 <= v <= 1.0 for v in draws["C"])
    assert all(math.exp(-6) <= v <= math.exp(-1) for v in draws["lr"])
    assert all(0 <= v <= 10 for v in draws["qu"])


def _chi_square(observed: Counter, expected: dict, total: int) -> float:
    """p-value of observed counts against expected probabilities; bins expected fewer than 5 times are pooled."""
    keys = [k for k, p in expected.items() if p * total >= 5]
    f_obs = [observed.get(k, 0) for k in keys]
    f_exp = [expected[k] * total for k in keys]
    rest_obs, rest_exp = total - sum(f_obs), total - sum(f_exp)
    if rest_exp > 1e-9:
        f_obs.append(rest_obs)
        f_exp.append(rest_exp)
    else:
        assert rest_obs == 0
    return stats.chisquare(f_obs, f_exp).pvalue


# Unrounded variable's CDF, q, and the range of k (value = k * q) that has any probability.
QUANTIZED = {
    "qu": (stats.uniform(0, 10).cdf, 1, range(0, 11)),
    "qlu": (stats.loguniform(1, math.exp(3)).cdf, 2, range(0, 12)),
    "qno": (stats.norm(10, 3).cdf, 2, range(-20, 30)),
    "qlno": (stats.lognorm(s=0.5, scale=math.exp(1)).cdf, 0.5, range(0, 200)),
}


@pytest.mark.parametrize("name", QUANTIZED)
def test_quantized_distributions_are_multiples_of_q_rounded_from_their_definition(
        draws: dict[str, list], name: str) -> None:
    cdf, q, ks = QUANTIZED[name]
    values = draws[name]
    # q's type is the result's: ints for q: 1 and q: 2, floats for q: 0.5.
    assert all(type(v) is type(q) for v in values)
    assert all(math.isclose(v / q, round(v / q), abs_tol=1e-9) for v in values)
    # round(x / q) = k exactly when x is in [(k - 1/2) q, (k + 1/2) q]
    expected = {k: cdf((k + 0.5) * q) - cdf((k - 0.5) * q) for k in ks}
    observed = Counter(round(v / q) for v in values)
    assert sum(expected.values()) == pytest.approx(1, abs=1e-6)
    assert _chi_square(observed, expected, DRAWS) > P_MIN


def test_quniform_gives_its_bounds_half_the_weight_of_the_inner_values(draws: dict[str, list]) -> None:
    counts = Counter(draws["qu"])
    assert set(counts) == set(range(11))
    assert counts[0] + counts[10] == pytest.approx(counts[5], rel=0.35)


def test_randint_is_uniform_over_zero_to_upper_minus_one(draws: dict[str, list]) -> None:
    values = draws["n"]
    assert all(type(v) is int for v in values)
    counts = Counter(values)
    assert set(counts) == set(range(7))
    assert _chi_square(counts, dict.fromkeys(range(7), 1 / 7), DRAWS) > P_MIN


def test_choice_is_uniform_and_keeps_each_value_and_its_type(draws: dict[str, list]) -> None:
    values = draws["B"]
    counts = Counter((type(v), v) for v in values)
    choices = SPACE["B"]["values"]
    assert set(counts) == {(type(v), v) for v in choices}
    assert _chi_square(counts, {(type(v), v): 1 / 5 for v in choices}, DRAWS) > P_MIN


def test_optuna_records_the_internal_draw_under_the_dimension_name(study_draws: tuple[optuna.Study, list]) -> None:
    study, sampled = study_draws
    space = parse_space(SPACE)
    trials = study.get_trials(deepcopy=False)
    trial = trials[0]
    assert list(trial.params) == list(SPACE)
    assert trial.distributions == distributions(space)
    assert trial.params["lr"] == pytest.approx(math.log(sampled[0]["lr"]))  # the exponent
    assert 0 <= trial.params["no"] <= 1  # the normal's probability
    assert all(from_params(t.params, space) == values for t, values in zip(trials, sampled, strict=True))


def test_choices_that_python_finds_equal_keep_their_identity() -> None:
    # 1 == 1.0 == True; Optuna's stored index could not tell them apart, so such lists are drawn by position.
    space = parse_space({"m": {"type": "choice", "values": [1, True, 1.0, "1"]}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    drawn = []
    for _ in range(200):
        trial = study.ask()
        drawn.append(sample(trial, space)["m"])
        study.tell(trial, 0.0)
    assert {(type(v), v) for v in drawn} == {(int, 1), (bool, True), (float, 1.0), (str, "1")}
    stored = [from_params(t.params, space)["m"] for t in study.get_trials(deepcopy=False)]
    assert [(type(v), v) for v in stored] == [(type(v), v) for v in drawn]
    assert grid(space) == {"m": [0, 1, 2, 3]}


def test_suggest_honours_a_fixed_trial() -> None:
    space = parse_space(SPACE)
    trial = optuna.trial.FixedTrial({"lr": -2.0, "qu": 2.5, "B": "world", "no": 0.5})
    assert suggest(trial, space["lr"]) == pytest.approx(math.exp(-2))
    assert suggest(trial, space["qu"]) == 2  # half to even
    assert suggest(trial, space["B"]) == "world"
    assert suggest(trial, space["no"]) == pytest.approx(10)


@pytest.mark.parametrize(("spec", "internal", "value"), [
    ({"type": "quniform", "min_value": 0, "max_value": 10, "q": 1}, 2.5, 2),
    ({"type": "quniform", "min_value": 0, "max_value": 10, "q": 1}, 3.5, 4),
    ({"type": "quniform", "min_value": 0, "max_value": 10, "q": 0.1}, 0.31, 0.3),  # not 0.30000000000000004
    ({"type": "quniform", "min_value": 0, "max_value": 10, "q": 0.5}, 2.1, 2.0),
    ({"type": "quniform", "min_value": 0, "max_value": 10, "q": 1e-05}, 0.123456, 0.12346),
    ({"type": "qloguniform", "min_value": 0, "max_value": 5, "q": 10}, math.log(26), 30),
    ({"type": "loguniform", "min_value": -6, "max_value": -1}, -2.0, math.exp(-2)),
    ({"type": "normal", "mu": 1, "sigma": 2}, 0.5, 1.0),
    ({"type": "lognormal", "mu": 1, "sigma": 2}, 0.5, math.e),
])
def test_transforms(spec: dict, internal: float, value: float) -> None:
    result = to_azure(parse_space({"x": spec})["x"], internal)
    assert type(result) is type(value)
    assert result == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("u", [0.0, 1.0])
def test_normal_ends_of_the_unit_interval_stay_finite(u: float) -> None:
    dim = parse_space({"x": {"type": "qnormal", "mu": 0, "sigma": 1, "q": 1}})["x"]
    assert abs(to_azure(dim, u)) <= 9


def test_logbase_changes_the_base_of_the_log_types() -> None:
    space = parse_space({"lr": {"type": "loguniform", "min_value": -3, "max_value": -1},
                         "ln": {"type": "lognormal", "mu": 2, "sigma": 1}}, logbase=10)
    assert to_azure(space["lr"], -2) == pytest.approx(0.01)
    assert to_azure(space["ln"], 0.5) == pytest.approx(100)


@pytest.mark.parametrize(("value", "text"), [
    (3, "3"), (-7, "-7"), (2.0, "2.0"), (0.1, "0.1"), (1e-05, "1e-05"), (0.30000000000000004, "0.30000000000000004"),
    (True, "True"), (False, "False"), ("hello", "hello"), ("", ""),
])
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_format_value_writes_numpy_scalars_as_python_numbers() -> None:
    import numpy as np

    assert format_value(np.float64(0.1)) == "0.1"
    assert format_value(np.int64(4)) == "4"
    assert format_value(np.bool_(True)) == "True"


def test_parse_normalizes_arguments_and_keeps_the_order() -> None:
    space = parse_space(SPACE)
    assert list(space) == list(SPACE)
    assert space["C"].args == {"min_value": 0.1, "max_value": 1.0}
    assert space["qu"].args == {"min_value": 0.0, "max_value": 10.0, "q": 1}
    assert space["lr"].args == {"min_value": -6.0, "max_value": -1.0, "base": math.e}
    assert space["n"].args == {"upper": 7}
    assert space["B"].type == "choice" and space["B"].name == "B"


def test_grid_lists_choice_and_randint_values() -> None:
    space = parse_space({"a": {"type": "choice", "values": ["x", 2, False]}, "r": {"type": "randint", "upper": 3}})
    assert grid(space) == {"a": ["x", 2, False], "r": [0, 1, 2]}


@pytest.mark.parametrize("kind", ["uniform", "quniform", "normal", "qlognormal"])
def test_grid_refuses_non_discrete_dimensions_naming_the_key(kind: str) -> None:
    spec = {"type": kind, "min_value": 0, "max_value": 1, "mu": 0, "sigma": 1, "q": 1}
    args = {"uniform": ("min_value", "max_value"), "quniform": ("min_value", "max_value", "q"),
            "normal": ("mu", "sigma"), "qlognormal": ("mu", "sigma", "q")}[kind]
    space = parse_space({"ok": {"type": "choice", "values": [1]}, "lr": {k: spec[k] for k in ("type", *args)}})
    with pytest.raises(SpaceError, match=rf"search_space\.lr: grid sampling .* `{kind}` .*type: choice"):
        grid(space)


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "gaussian", "mu": 0}, r"search_space\.x: unknown type `gaussian`; use one of choice, randint"),
    ({"values": [1]}, r"search_space\.x: add `type`"),
    ("uniform", r"search_space\.x must be a parameter expression"),
    ({"type": "uniform", "min_value": 0}, r"search_space\.x: `uniform` needs `max_value`"),
    ({"type": "normal", "sigma": 1}, r"`normal` needs `mu`"),
    ({"type": "qnormal", "mu": 0, "sigma": 1}, r"`qnormal` needs `q`"),
    ({"type": "uniform", "min_value": 2, "max_value": 1}, r"`max_value` \(1\) must be greater than `min_value` \(2\)"),
    ({"type": "loguniform", "min_value": -1, "max_value": -1}, r"must be greater than `min_value`"),
    ({"type": "normal", "mu": 0, "sigma": 0}, r"search_space\.x: `sigma` must be greater than 0"),
    ({"type": "lognormal", "mu": 0, "sigma": -1}, r"`sigma` must be greater than 0"),
    ({"type": "quniform", "min_value": 0, "max_value": 1, "q": 0}, r"`q` must be greater than 0"),
    ({"type": "qlognormal", "mu": 0, "sigma": 1, "q": -0.5}, r"`q` must be greater than 0"),
    ({"type": "randint", "upper": 0}, r"`upper` must be at least 1: randint draws from 0 to upper-1"),
    ({"type": "randint", "upper": 2.5}, r"`upper` must be a whole number"),
    ({"type": "randint"}, r"`randint` needs `upper`"),
    ({"type": "choice", "values": []}, r"search_space\.x: `values` is empty; list at least one value"),
    ({"type": "choice"}, r"`choice` needs `values`"),
    ({"type": "choice", "values": "abc"}, r"`values` must be a list"),
    ({"type": "choice", "values": [1, None]}, r"`values` holds null"),
    ({"type": "choice", "values": [{"a": 1}]}, r"nested search spaces are not supported"),
    ({"type": "uniform", "min_value": "0", "max_value": 1}, r"`min_value` must be a number, not '0'"),
    ({"type": "uniform", "min_value": True, "max_value": 1}, r"`min_value` must be a number"),
    ({"type": "uniform", "min_value": 0, "max_value": math.inf}, r"`max_value` must be a finite number"),
    ({"type": "uniform", "min": 0, "max": 1}, r"`uniform` takes `min_value`, `max_value`; remove `max`, `min`"),
    ({"type": "loguniform", "min_value": 0, "max_value": 1000}, r"bounds of `loguniform` are exponents"),
])
def test_bad_entries_are_refused_with_the_key_and_a_fix(spec: object, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        parse_space({"x": spec})


def test_an_empty_space_is_refused() -> None:
    with pytest.raises(SpaceError, match="search_space is empty"):
        parse_space({})


def test_type_names_are_case_insensitive() -> None:
    assert parse_space({"x": {"type": "Uniform", "min_value": 0, "max_value": 1}})["x"].type == "uniform"
