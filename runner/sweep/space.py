"""Azure ML search spaces: the ten parameter expressions, parsed, and drawn through an Optuna trial.

The distributions are Azure's (they follow hyperopt), not Optuna's:

    choice(values)              one of the values, each equally likely (any scalar: str, int, float, bool)
    randint(upper)              an integer in [0, upper)
    uniform(min, max)           uniform on [min, max]
    quniform(min, max, q)       round(uniform(min, max) / q) * q
    loguniform(min, max)        exp(uniform(min, max))            -- the bounds are exponents
    qloguniform(min, max, q)    round(exp(uniform(min, max)) / q) * q
    normal(mu, sigma)           normal
    qnormal(mu, sigma, q)       round(normal(mu, sigma) / q) * q
    lognormal(mu, sigma)        exp(normal(mu, sigma))
    qlognormal(mu, sigma, q)    round(exp(normal(mu, sigma)) / q) * q

Every dimension is drawn as one *internal* Optuna parameter named like the dimension, and the Azure value is a
function of it: the unrounded uniform for uniform/quniform, the exponent for loguniform/qloguniform, a uniform
probability u in [0, 1] for the normal family (the value is the inverse normal CDF at u; Optuna has no normal
distribution), the integer for randint and the value itself for choice. So `trial.params` and stored studies show the
internal draw, while `suggest`/`sample` return the Azure value; `from_params` turns stored params back into Azure
values (to resume a sweep). Keeping the draw internal leaves samplers a plain box to work in (Sobol stratifies u,
TPE models the exponent), and the transform is exact.

Rounding: `round` is Python's, half to even (numpy's `round`, used by hyperopt, does the same); the halfway points
have probability zero anyway. The result keeps q's type: an int q gives ints, a float q gives floats tidied to q's
decimal places (3 * 0.1 is written 0.3, not 0.30000000000000004).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from statistics import NormalDist
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

# Arguments of each type, in the order Azure documents them.
ARGUMENTS: dict[str, tuple[str, ...]] = {
    "choice": ("values",),
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "loguniform": ("min_value", "max_value"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"),
    "qlognormal": ("mu", "sigma", "q"),
}
TYPES = tuple(ARGUMENTS)
_LOG = {"loguniform", "qloguniform", "lognormal", "qlognormal"}
_NORMAL = {"normal", "qnormal", "lognormal", "qlognormal"}
_BOUNDED = {"uniform", "quniform", "loguniform", "qloguniform"}

# inv_cdf is undefined at 0 and 1, and samplers may return either end of [0, 1]. The clamp cuts the tails at about
# 8.2 sigma, where the normal has mass 1e-16: no sample of any realistic sweep could tell the difference.
_EPSILON = 2.0**-53
# The largest exponent math.exp accepts; a bound above it could only ever give inf.
_MAX_EXPONENT = math.log(1.7976931348623157e308)


class SpaceError(ValueError):
    """A search-space entry that cannot be sampled; the message names the key and says how to fix it."""


@dataclass(frozen=True)
class Dimension:
    name: str
    type: str  # one of TYPES
    # Normalized: floats for bounds/mu/sigma, int or float q (q's type is the result's), int upper, list values,
    # and `base` (the logarithm's base, e unless the sampling algorithm sets logbase) for the four log types.
    args: dict[str, Any] = field(hash=False)


def _where(name: str) -> str:
    return f"search_space.{name}"


def _number(name: str, kind: str, spec: Mapping[str, Any], arg: str) -> float | int:
    if arg not in spec or spec[arg] is None:
        hint = ", ".join(f"{a}: ..." for a in ARGUMENTS[kind])
        raise SpaceError(f"{_where(name)}: `{kind}` needs `{arg}`; write it as {{type: {kind}, {hint}}}.")
    value = spec[arg]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpaceError(f"{_where(name)}: `{arg}` must be a number, not {value!r}; write it without quotes.")
    if not math.isfinite(value):
        raise SpaceError(f"{_where(name)}: `{arg}` must be a finite number, not {value!r}.")
    return value


def _choice_values(name: str, spec: Mapping[str, Any]) -> list[Any]:
    values = spec.get("values")
    if values is None:
        raise SpaceError(f"{_where(name)}: `choice` needs `values`, the list to choose from, "
                         "e.g. values: [16, 32, 64].")
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple):
        raise SpaceError(f"{_where(name)}: `values` must be a list, e.g. values: [{values!r}], not {values!r}.")
    if not values:
        raise SpaceError(f"{_where(name)}: `values` is empty; list at least one value to choose from.")
    for value in values:
        if value is None:
            raise SpaceError(f"{_where(name)}: `values` holds null, which a trial cannot receive as an argument; "
                             "remove it, or quote it ('null') to pass the text.")
        if not isinstance(value, str | int | float | bool):
            raise SpaceError(f"{_where(name)}: `values` may hold only strings, numbers and booleans, not {value!r} "
                             "(nested search spaces are not supported); list plain values.")
    return list(values)


def _dimension(name: str, spec: Any, logbase: float) -> Dimension:
    if not isinstance(spec, Mapping):
        raise SpaceError(f"{_where(name)} must be a parameter expression such as {{type: choice, values: [1, 2]}} "
                         f"or {{type: uniform, min_value: 0, max_value: 1}}, not {spec!r}.")
    kind = spec.get("type")
    if kind is None:
        raise SpaceError(f"{_where(name)}: add `type`, one of {', '.join(TYPES)}.")
    kind = str(kind).lower()
    if kind not in ARGUMENTS:
        raise SpaceError(f"{_where(name)}: unknown type `{spec.get('type')}`; use one of {', '.join(TYPES)}.")
    extra = sorted(str(key) for key in spec if key != "type" and key not in ARGUMENTS[kind])
    if extra:
        allowed = ", ".join(f"`{a}`" for a in ARGUMENTS[kind])
        raise SpaceError(f"{_where(name)}: `{kind}` takes {allowed}; remove {', '.join(f'`{e}`' for e in extra)}.")

    args: dict[str, Any] = {}
    if kind == "choice":
        args["values"] = _choice_values(name, spec)
    elif kind == "randint":
        upper = _number(name, kind, spec, "upper")
        if upper != int(upper):
            raise SpaceError(f"{_where(name)}: `upper` must be a whole number (randint draws integers), not {upper}.")
        if upper < 1:
            raise SpaceError(f"{_where(name)}: `upper` must be at least 1: randint draws from 0 to upper-1.")
        args["upper"] = int(upper)
    if kind in _BOUNDED:
        low, high = float(_number(name, kind, spec, "min_value")), float(_number(name, kind, spec, "max_value"))
        if low >= high:
            raise SpaceError(f"{_where(name)}: `max_value` ({high:g}) must be greater than `min_value` ({low:g}); "
                             "swap them or widen the range.")
        if kind in _LOG and high * math.log(logbase) > _MAX_EXPONENT:
            raise SpaceError(f"{_where(name)}: the bounds of `{kind}` are exponents, so max_value {high:g} gives "
                             f"{logbase:g}^{high:g}, beyond the largest float; use the logarithm of the bound.")
        args["min_value"], args["max_value"] = low, high
    if kind in _NORMAL:
        args["mu"], args["sigma"] = float(_number(name, kind, spec, "mu")), float(_number(name, kind, spec, "sigma"))
        if args["sigma"] <= 0:
            raise SpaceError(f"{_where(name)}: `sigma` must be greater than 0 (a standard deviation), "
                             f"not {args['sigma']:g}.")
    if "q" in ARGUMENTS[kind]:
        q = _number(name, kind, spec, "q")
        if q <= 0:
            raise SpaceError(f"{_where(name)}: `q` must be greater than 0 (it is the step values are rounded to), "
                             f"not {q:g}.")
        args["q"] = q
    if kind in _LOG:
        args["base"] = logbase
    return Dimension(name, kind, args)


def parse_space(search_space: Mapping[str, Any], *, logbase: float = math.e) -> dict[str, Dimension]:
    """The dimensions of `search_space`, in its order. `logbase` is `sampling_algorithm.logbase` (random only):
    the base the four log types raise to, in place of e."""
    if not isinstance(search_space, Mapping):
        raise SpaceError(f"search_space must be a mapping of names to parameter expressions, not {search_space!r}.")
    if not search_space:
        raise SpaceError("search_space is empty; add at least one hyperparameter, e.g. "
                         "lr: {type: loguniform, min_value: -6, max_value: -1}.")
    if not (logbase > 0 and logbase != 1):
        raise SpaceError(f"sampling_algorithm.logbase must be a positive number other than 1, not {logbase!r}.")
    return {str(name): _dimension(str(name), spec, logbase) for name, spec in search_space.items()}


def _indexed(dim: Dimension) -> bool:
    """Whether a choice is drawn by position rather than by value.

    Optuna stores a categorical by `choices.index(value)`, which cannot tell 1 from True or 1.0: stored params (and so
    TPE's model and a resumed sweep) would take True for 1. Such rare lists are drawn by index instead.
    """
    types: dict[Any, set[type]] = {}
    for value in dim.args["values"]:
        types.setdefault(value, set()).add(type(value))  # 1, 1.0 and True share one key: they are equal
    return any(len(kinds) > 1 for kinds in types.values())


def _choices(dim: Dimension) -> list[Any]:
    values = dim.args["values"]
    return list(range(len(values))) if _indexed(dim) else list(values)


def distribution(dim: Dimension) -> BaseDistribution:
    """The Optuna distribution of the dimension's internal parameter (the one `suggest` asks the trial for)."""
    if dim.type == "choice":
        return CategoricalDistribution(_choices(dim))
    if dim.type == "randint":
        return IntDistribution(0, dim.args["upper"] - 1)
    if dim.type in _BOUNDED:
        return FloatDistribution(dim.args["min_value"], dim.args["max_value"])
    return FloatDistribution(0.0, 1.0)


def distributions(space: Mapping[str, Dimension]) -> dict[str, BaseDistribution]:
    """Every dimension's internal distribution: the fixed search space, for samplers that want it up front."""
    return {name: distribution(dim) for name, dim in space.items()}


def _power(dim: Dimension, exponent: float) -> float:
    base = dim.args["base"]
    try:
        return math.exp(exponent) if base == math.e else math.pow(base, exponent)
    except OverflowError:  # lognormal's far tail with a large mu or sigma
        return math.inf


def _quantize(value: float, q: int | float) -> int | float:
    if not math.isfinite(value):
        return value
    steps = round(value / q)  # half to even, as numpy's round in hyperopt
    if isinstance(q, int):
        return steps * q
    exponent = Decimal(repr(q)).as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return float(round(steps * q, places))


def to_azure(dim: Dimension, internal: Any) -> Any:
    """The Azure value of the dimension for its internal draw."""
    kind, args = dim.type, dim.args
    if kind == "choice":
        return args["values"][internal] if _indexed(dim) else internal
    if kind == "randint":
        return int(internal)
    if kind in _NORMAL:
        u = min(max(float(internal), _EPSILON), 1.0 - _EPSILON)
        value = NormalDist(args["mu"], args["sigma"]).inv_cdf(u)
    else:
        value = float(internal)
    if kind in _LOG:
        value = _power(dim, value)
    return _quantize(value, args["q"]) if "q" in args else value


def suggest(trial: optuna.trial.BaseTrial, dim: Dimension) -> Any:
    """Draw the dimension through the trial; returns the Azure value (the trial records the internal draw)."""
    if dim.type == "choice":
        internal: Any = trial.suggest_categorical(dim.name, _choices(dim))
    elif dim.type == "randint":
        internal = trial.suggest_int(dim.name, 0, dim.args["upper"] - 1)
    elif dim.type in _BOUNDED:
        internal = trial.suggest_float(dim.name, dim.args["min_value"], dim.args["max_value"])
    else:
        internal = trial.suggest_float(dim.name, 0.0, 1.0)
    return to_azure(dim, internal)


def sample(trial: optuna.trial.BaseTrial, space: Mapping[str, Dimension]) -> dict[str, Any]:
    """Every dimension's Azure value, drawn in the space's order."""
    return {name: suggest(trial, dim) for name, dim in space.items()}


def from_params(params: Mapping[str, Any], space: Mapping[str, Dimension]) -> dict[str, Any]:
    """The Azure values of a recorded trial, from its Optuna params (the internal draws), e.g. to resume a sweep."""
    return {name: to_azure(dim, params[name]) for name, dim in space.items()}


def grid(space: Mapping[str, Dimension]) -> dict[str, list[Any]]:
    """The candidates of each dimension for grid sampling, as the internal values `suggest` asks for."""
    points: dict[str, list[Any]] = {}
    for name, dim in space.items():
        if dim.type == "choice":
            points[name] = _choices(dim)
        elif dim.type == "randint":
            points[name] = list(range(dim.args["upper"]))
        else:
            why = ("it has no finite set of values" if "q" not in dim.args
                   else "its rounded values are not equally likely, so a grid would misrepresent it")
            raise SpaceError(f"{_where(name)}: grid sampling tries every combination, so it needs discrete values, "
                             f"and `{dim.type}` cannot be listed ({why}); use `type: choice` with `values: [...]`, "
                             "or `sampling_algorithm: random`.")
    return points


def format_value(value: Any) -> str:
    """The text of a sampled value as an MLflow param or on a command line, as Azure writes it (Python's str)."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalars: repr would give "np.float64(0.1)"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)
