"""Early termination: Azure's bandit, median stopping and truncation selection, judged on metric curves.

Each value a trial logs for the primary metric is one interval (the n-th value is interval n, from 1). A policy is
due at interval n when n is a multiple of `evaluation_interval` and n >= `delay_evaluation`; the driver then asks
`judge` about the trial that has just logged its n-th value, handing it every trial's curve so far. Only values up
to interval n count, for every trial, so that a trial that runs ahead is compared at the same point of training.

Choices where Azure's documentation says nothing:
- NaN values are left out (they compare with nothing); a trial with no other value up to n is not judged, nor used.
- bandit with slack_factor keeps the allowed distance on the worse side of the best when the best is negative:
  maximize cancels below best - |best| * s / (1 + s), minimize above best + |best| * s. For a positive best these
  are Azure's best / (1 + s) and best * (1 + s); for a best of 0 no slack is left, so any worse trial is cancelled.
- median stopping and truncation selection compare the trials that have logged at least n values.
- truncation selection ranks by the best value up to n and cancels the floor(count * percentage / 100) worst; trials
  tied with each other across that cut are all kept, so fewer may be cancelled (a cancelled trial cannot come back,
  and picking among equals by name would be arbitrary).
"""

from __future__ import annotations

import math
import statistics
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GOALS = ("maximize", "minimize")
TYPES = ("bandit", "median_stopping", "truncation_selection")


class PolicyError(ValueError):
    """`early_termination` (or `objective.goal`) settings that cannot be used; the message says how to fix them."""


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(f"early_termination.{key} must be a number, not {value!r}.")
    return float(value)


def _whole(value: Any, key: str) -> int:
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value != int(value) or value < 0):
        raise PolicyError(f"early_termination.{key} must be a whole number of intervals, 0 or more, not {value!r}.")
    return int(value)


def _goal(goal: str) -> str:
    normalized = str(goal).strip().lower()
    if normalized not in GOALS:
        raise PolicyError(f"objective.goal must be maximize or minimize, not {goal!r}.")
    return normalized


def _text(value: float) -> str:
    return f"{value:.6g}"


@dataclass(frozen=True, kw_only=True)
class Policy(ABC):
    goal: str = "maximize"  # what "best" means: maximize or minimize
    evaluation_interval: int = 1  # 0, Azure's "service default", is every interval
    delay_evaluation: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "goal", _goal(self.goal))
        object.__setattr__(self, "evaluation_interval", _whole(self.evaluation_interval, "evaluation_interval") or 1)
        object.__setattr__(self, "delay_evaluation", _whole(self.delay_evaluation, "delay_evaluation"))

    def due(self, interval: int) -> bool:
        return interval >= 1 and interval % self.evaluation_interval == 0 and interval >= self.delay_evaluation

    @abstractmethod
    def judge(self, trial: str, interval: int, curves: Mapping[str, Sequence[float]]) -> str | None:
        """curves: every trial's primary-metric values so far (trial id -> values in logged order), including
        `trial`'s own; only values up to `interval` are considered for every trial. Returns None to keep the trial,
        else the reason (a sentence shown to the user). A trial that has not logged `interval` values is kept."""

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.goal == "maximize" else a < b

    def _best(self, values: Sequence[float]) -> float | None:
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return None
        return max(finite) if self.goal == "maximize" else min(finite)

    def _bests(self, interval: int, curves: Mapping[str, Sequence[float]], *, reached: bool) -> dict[str, float]:
        """Each trial's best value up to `interval`; with `reached`, only of trials that logged `interval` values."""
        bests = {}
        for name, values in curves.items():
            if reached and len(values) < interval:
                continue
            best = self._best(values[:interval])
            if best is not None:
                bests[name] = best
        return bests


@dataclass(frozen=True, kw_only=True)
class Bandit(Policy):
    """Cancels a trial whose best value is not within the slack of the best value of all trials."""

    slack_factor: float | None = None
    slack_amount: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.slack_factor is None) == (self.slack_amount is None):
            raise PolicyError("A bandit policy needs exactly one of `slack_factor` (a ratio, e.g. 0.1) and "
                              "`slack_amount` (an absolute distance) to know which trials are far from the best.")
        for key in ("slack_factor", "slack_amount"):
            value = getattr(self, key)
            if value is None:
                continue
            if _number(value, key) <= 0:
                raise PolicyError(f"early_termination.{key} must be greater than 0, not {value!r}.")
            object.__setattr__(self, key, float(value))

    def _threshold(self, best: float) -> float:
        factor = self.slack_factor
        if factor is None:
            distance = float(self.slack_amount or 0.0)
        else:
            distance = abs(best) * (factor / (1 + factor) if self.goal == "maximize" else factor)
        return best - distance if self.goal == "maximize" else best + distance

    def judge(self, trial: str, interval: int, curves: Mapping[str, Sequence[float]]) -> str | None:
        if len(curves.get(trial, ())) < interval:
            return None
        bests = self._bests(interval, curves, reached=False)
        if trial not in bests:
            return None
        best = bests[trial]
        leader = max(bests.values()) if self.goal == "maximize" else min(bests.values())
        threshold = self._threshold(leader)
        if not self._better(threshold, best):
            return None
        slack = (f"slack_amount {self.slack_amount:g}" if self.slack_amount is not None
                 else f"slack_factor {self.slack_factor:g}")
        side = "below" if self.goal == "maximize" else "above"
        return (f"bandit: best {_text(best)} at interval {interval} is {side} {_text(threshold)}, outside "
                f"{slack} of the best {_text(leader)}")


@dataclass(frozen=True, kw_only=True)
class MedianStopping(Policy):
    """Cancels a trial whose best value is worse than the median of the running averages of the trials."""

    def judge(self, trial: str, interval: int, curves: Mapping[str, Sequence[float]]) -> str | None:
        own = curves.get(trial, ())
        if len(own) < interval:
            return None
        best = self._best(own[:interval])
        if best is None:
            return None
        averages = []
        for values in curves.values():
            finite = [v for v in values[:interval] if not math.isnan(v)]
            if len(values) >= interval and finite:
                averages.append(statistics.fmean(finite))
        median = statistics.median(averages)
        if not self._better(median, best):
            return None
        side = "below" if self.goal == "maximize" else "above"
        return (f"median_stopping: best {_text(best)} at interval {interval} is {side} the median {_text(median)} "
                f"of the running averages of {len(averages)} trials")


@dataclass(frozen=True, kw_only=True)
class TruncationSelection(Policy):
    """Cancels a trial among the lowest `truncation_percentage` percent of the trials at this interval."""

    truncation_percentage: float = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= _number(self.truncation_percentage, "truncation_percentage") <= 99:
            raise PolicyError(f"early_termination.truncation_percentage must be between 1 and 99 (the share of "
                              f"trials cancelled at each interval), not {self.truncation_percentage!r}.")

    def judge(self, trial: str, interval: int, curves: Mapping[str, Sequence[float]]) -> str | None:
        bests = self._bests(interval, curves, reached=True)
        if trial not in bests or len(bests) < 2:
            return None
        cut = math.floor(len(bests) * self.truncation_percentage / 100)
        best = bests[trial]
        worse = sum(self._better(best, other) for other in bests.values())
        tied = sum(other == best for other in bests.values())  # counts the trial itself
        # Cancelled when the trial and every trial equal to it fit among the `cut` worst.
        if worse + tied > cut:
            return None
        return (f"truncation_selection: best {_text(best)} at interval {interval} is among the worst "
                f"{self.truncation_percentage:g}% ({cut} of {len(bests)} trials)")


_POLICIES: dict[str, tuple[type[Policy], tuple[str, ...]]] = {
    "bandit": (Bandit, ("slack_factor", "slack_amount")),
    "median_stopping": (MedianStopping, ()),
    "truncation_selection": (TruncationSelection, ("truncation_percentage",)),
}


def make_policy(early_termination: Mapping[str, Any] | None, goal: str) -> Policy | None:
    """The policy of `early_termination` (None: trials run to the end); PolicyError on bad settings."""
    if not early_termination:
        return None
    if not isinstance(early_termination, Mapping):
        raise PolicyError(f"early_termination must be a mapping with `type`, e.g. {{type: bandit, slack_factor: 0.1}}, "
                          f"not {early_termination!r}.")
    kind = str(early_termination.get("type") or "").strip().lower()
    if kind not in _POLICIES:
        raise PolicyError(f"early_termination: unknown type {early_termination.get('type')!r}; "
                          f"use one of {', '.join(TYPES)}.")
    cls, own = _POLICIES[kind]
    allowed = ("evaluation_interval", "delay_evaluation", *own)
    extra = sorted(str(key) for key in early_termination if key != "type" and key not in allowed)
    if extra:
        raise PolicyError(f"early_termination: `{kind}` does not take {', '.join(f'`{e}`' for e in extra)}; "
                          f"it takes {', '.join(f'`{a}`' for a in allowed)}.")
    if kind == "truncation_selection" and early_termination.get("truncation_percentage") is None:
        raise PolicyError("early_termination: truncation_selection needs `truncation_percentage`, the share of "
                          "trials cancelled at each interval, e.g. truncation_percentage: 20.")
    settings = {key: early_termination[key] for key in allowed if early_termination.get(key) is not None}
    return cls(goal=goal, **settings)
