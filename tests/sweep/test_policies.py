"""Early termination on synthetic metric streams: which trial is cancelled at which interval, for both goals.

A small simulator plays the sweep: at each interval every running trial logs its next value, then the policy judges
each trial that logged one, when due. A cancelled trial logs no more, but its curve so far stays in the comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from mljob.runner.sweep.policies import (
    Bandit,
    MedianStopping,
    Policy,
    PolicyError,
    TruncationSelection,
    make_policy,
)


def simulate(policy: Policy, streams: Mapping[str, Sequence[float]]) -> dict[str, int]:
    """{trial: interval at which it was cancelled}; reasons are checked to be sentences naming the policy."""
    curves: dict[str, list[float]] = {name: [] for name in streams}
    cancelled: dict[str, int] = {}
    for interval in range(1, max(map(len, streams.values())) + 1):
        logged = [name for name in streams if name not in cancelled and len(streams[name]) >= interval]
        for name in logged:
            curves[name].append(streams[name][interval - 1])
        if not policy.due(interval):
            continue
        for name in logged:
            reason = policy.judge(name, interval, curves)
            if reason is not None:
                assert reason.startswith(type_name(policy) + ": ") and f"interval {interval}" in reason
                cancelled[name] = interval
    return cancelled


def type_name(policy: Policy) -> str:
    return {Bandit: "bandit", MedianStopping: "median_stopping", TruncationSelection: "truncation_selection"}[
        type(policy)]


def negated(streams: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    return {name: [-v for v in values] for name, values in streams.items()}


# --- scheduling ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("interval", "delay", "due"), [
    (1, 0, [1, 2, 3, 4, 5, 6]),
    (0, 0, [1, 2, 3, 4, 5, 6]),  # 0 is Azure's "service default": every interval
    (1, 5, [5, 6]),
    (2, 0, [2, 4, 6]),
    (2, 3, [4, 6]),
    (3, 4, [6]),
])
def test_a_policy_is_due_at_multiples_of_the_interval_from_the_delay_on(interval: int, delay: int,
                                                                       due: list[int]) -> None:
    policy = MedianStopping(evaluation_interval=interval, delay_evaluation=delay)
    assert [n for n in range(1, 7) if policy.due(n)] == due


def test_a_trial_that_has_not_reached_the_interval_is_kept() -> None:
    curves = {"a": [1.0, 1.0, 1.0], "b": [0.0]}
    assert Bandit(slack_amount=0.1).judge("b", 3, curves) is None
    assert MedianStopping().judge("b", 3, curves) is None
    assert TruncationSelection(truncation_percentage=50).judge("b", 3, curves) is None


def test_only_values_up_to_the_interval_count() -> None:
    # "a" runs ahead and later reaches 10; at interval 2 it is compared with what it had at 2.
    curves = {"a": [0.5, 0.6, 10.0], "b": [0.5, 0.55]}
    assert Bandit(slack_factor=0.2).judge("b", 2, curves) is None
    assert Bandit(slack_factor=0.2).judge("b", 2, {**curves, "a": [0.5, 0.7]}) is not None


def test_nan_values_are_left_out() -> None:
    curves = {"a": [0.9, float("nan")], "b": [float("nan"), float("nan")], "c": [0.2, 0.3]}
    policy = Bandit(slack_factor=0.1)
    assert policy.judge("b", 2, curves) is None  # nothing to judge
    assert policy.judge("a", 2, curves) is None
    assert "of the best 0.9" in (policy.judge("c", 2, curves) or "")


# --- bandit -------------------------------------------------------------------------------------------------------

RISING = {"A": [0.5, 0.7, 0.8, 0.85], "B": [0.5, 0.65, 0.7, 0.75], "C": [0.1, 0.2, 0.3, 0.9]}
FALLING = {"A": [1.0, 0.7, 0.5, 0.4], "B": [1.0, 0.75, 0.6, 0.5], "C": [2.0, 1.5, 1.2, 0.3]}


def test_bandit_slack_factor_maximize() -> None:
    # n=2: best 0.7, cut 0.7/1.1 = 0.636: C (0.2) goes; n=3: best 0.8, cut 0.727: B (0.7) goes.
    assert simulate(Bandit(slack_factor=0.1, delay_evaluation=2), RISING) == {"C": 2, "B": 3}
    assert simulate(Bandit(slack_factor=0.1), RISING) == {"C": 1, "B": 3}
    assert simulate(Bandit(slack_factor=0.1, evaluation_interval=2), RISING) == {"C": 2, "B": 4}


def test_bandit_slack_factor_minimize_allows_best_times_one_plus_slack() -> None:
    # n=2: best 0.7, cut 0.77: C (1.5) goes; n=3: best 0.5, cut 0.55: B (0.6) goes.
    policy = Bandit(goal="minimize", slack_factor=0.1, delay_evaluation=2)
    assert simulate(policy, FALLING) == {"C": 2, "B": 3}
    curves = {"A": [0.5], "B": [0.55], "C": [0.5501]}
    assert policy.judge("B", 1, curves) is None  # exactly at best * (1 + s): kept
    assert policy.judge("C", 1, curves) == ("bandit: best 0.5501 at interval 1 is above 0.55, outside slack_factor "
                                            "0.1 of the best 0.5")


def test_bandit_slack_amount_both_goals() -> None:
    # maximize: cut best - 0.15: n=1 0.35 (C goes), n=3 0.65, n=4 0.7 (B at 0.75 stays).
    assert simulate(Bandit(slack_amount=0.15), RISING) == {"C": 1}
    assert simulate(Bandit(slack_amount=0.15), negated(FALLING)) == simulate(
        Bandit(goal="minimize", slack_amount=0.15), FALLING) == {"C": 1}
    # minimize: n=3 cut 0.65: B (0.6) stays; with slack 0.05 the cut is 0.55 and B goes at 3.
    assert simulate(Bandit(goal="minimize", slack_amount=0.05), FALLING) == {"C": 1, "B": 3}
    reason = Bandit(slack_amount=0.15).judge("C", 1, {n: v[:1] for n, v in RISING.items()})
    assert reason == "bandit: best 0.1 at interval 1 is below 0.35, outside slack_amount 0.15 of the best 0.5"


@pytest.mark.parametrize("goal", ["maximize", "minimize"])
def test_bandit_never_cancels_the_leader_even_with_a_negative_best(goal: str) -> None:
    sign = 1 if goal == "maximize" else -1
    # maximize with a best of -1.0: Azure's best / (1 + s) = -0.909 is better than the best itself; the slack is
    # kept on the worse side instead: -1 - 1 * 0.1 / 1.1 = -1.0909.
    curves = {"lead": [sign * -1.0], "near": [sign * -1.05], "far": [sign * -1.2]}
    policy = Bandit(goal=goal, slack_factor=0.1)
    assert policy.judge("lead", 1, curves) is None
    assert policy.judge("near", 1, curves) is None
    assert policy.judge("far", 1, curves) is not None


def test_bandit_with_a_best_of_zero_leaves_no_relative_slack() -> None:
    curves = {"lead": [0.0], "tie": [0.0], "worse": [-0.001]}
    policy = Bandit(slack_factor=0.5)
    assert [policy.judge(n, 1, curves) is not None for n in curves] == [False, False, True]


def test_bandit_compares_with_trials_that_have_not_reached_the_interval() -> None:
    # "fast" logged 3 values, "slow" only 1 (0.9): slow's best still sets the bar at interval 3.
    curves = {"fast": [0.1, 0.2, 0.3], "slow": [0.9]}
    assert Bandit(slack_factor=0.1).judge("fast", 3, curves) is not None


# --- median stopping ----------------------------------------------------------------------------------------------

MEDIAN = {"A": [0.9, 0.9, 0.9], "B": [0.5, 0.6, 0.7], "C": [0.2, 0.3, 0.4], "D": [0.6, 0.8, 0.5]}


def test_median_stopping_maximize() -> None:
    # n=2: running averages 0.9, 0.55, 0.25, 0.7 -> median 0.625: B (best 0.6) and C (0.3) go; D (0.8) stays.
    # n=3: A and D remain: averages 0.9 and 0.633 -> median 0.767; D's best 0.8 stays.
    assert simulate(MedianStopping(delay_evaluation=2), MEDIAN) == {"B": 2, "C": 2}
    # n=1: averages 0.9 0.5 0.2 0.6 -> 0.55: B (0.5) and C go.
    assert simulate(MedianStopping(), MEDIAN) == {"B": 1, "C": 1}


def test_median_stopping_minimize() -> None:
    assert simulate(MedianStopping(goal="minimize", delay_evaluation=2), negated(MEDIAN)) == {"B": 2, "C": 2}
    reason = MedianStopping(goal="minimize").judge("C", 1, negated(MEDIAN))
    assert reason == ("median_stopping: best -0.2 at interval 1 is above the median -0.55 of the running averages "
                      "of 4 trials")


def test_median_stopping_uses_the_trials_best_against_running_averages() -> None:
    # B's average (0.5) is below A's (0.6), but its best (0.9) is above the median of averages (0.55).
    curves = {"A": [0.6, 0.6], "B": [0.1, 0.9]}
    assert MedianStopping().judge("B", 2, curves) is None
    assert MedianStopping(goal="minimize").judge("B", 2, curves) is None  # best 0.1 < 0.55


def test_median_stopping_counts_the_trial_itself_and_never_cancels_a_lone_trial() -> None:
    assert simulate(MedianStopping(), {"alone": [0.1, 0.0, -5.0]}) == {}
    assert simulate(MedianStopping(goal="minimize"), {"alone": [0.1, 5.0, 9.0]}) == {}


# --- truncation selection -----------------------------------------------------------------------------------------

LADDER = {"A": [5, 5, 5], "B": [4, 4, 4], "C": [3, 3, 3], "D": [2, 2, 2], "E": [1, 1, 1]}


def test_truncation_selection_cancels_the_worst_percentage_at_each_interval() -> None:
    # n=1: floor(5 * 40%) = 2: D and E; n=2: floor(3 * 40%) = 1: C; n=3: floor(2 * 40%) = 0.
    assert simulate(TruncationSelection(truncation_percentage=40), LADDER) == {"D": 1, "E": 1, "C": 2}
    # 20%: n=1 cancels E; then 4 trials give floor(0.8) = 0.
    assert simulate(TruncationSelection(truncation_percentage=20), LADDER) == {"E": 1}
    assert simulate(TruncationSelection(truncation_percentage=40, delay_evaluation=3), LADDER) == {"D": 3, "E": 3}


def test_truncation_selection_minimize() -> None:
    assert simulate(TruncationSelection(goal="minimize", truncation_percentage=40), negated(LADDER)) == {
        "D": 1, "E": 1, "C": 2}
    reason = TruncationSelection(goal="minimize", truncation_percentage=20).judge("E", 1, negated(LADDER))
    assert reason == "truncation_selection: best -1 at interval 1 is among the worst 20% (1 of 5 trials)"


def test_truncation_selection_ranks_by_the_best_value_so_far() -> None:
    curves = {"A": [5, 0], "B": [1, 2], "C": [3, 3], "D": [4, 4]}
    policy = TruncationSelection(truncation_percentage=25)
    assert [n for n in curves if policy.judge(n, 2, curves)] == ["B"]


def test_truncation_selection_keeps_every_trial_tied_across_the_cut() -> None:
    curves = {"A": [3.0], "B": [1.0], "C": [1.0], "D": [5.0]}
    assert [n for n in curves if TruncationSelection(truncation_percentage=25).judge(n, 1, curves)] == []
    assert [n for n in curves if TruncationSelection(truncation_percentage=50).judge(n, 1, curves)] == ["B", "C"]
    same = {name: [2.0] for name in "ABCDE"}
    assert [n for n in same if TruncationSelection(truncation_percentage=99).judge(n, 1, same)] == []


def test_truncation_selection_needs_two_comparable_trials() -> None:
    assert TruncationSelection(truncation_percentage=99).judge("A", 1, {"A": [0.0]}) is None
    # "B" has not reached interval 2, so "A" has no one to be compared with.
    assert TruncationSelection(truncation_percentage=99).judge("A", 2, {"A": [0.0, 0.0], "B": [9.0]}) is None


# --- make_policy --------------------------------------------------------------------------------------------------

def test_make_policy_reads_azure_settings() -> None:
    assert make_policy(None, "maximize") is None
    assert make_policy({}, "maximize") is None
    bandit = make_policy({"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 1, "delay_evaluation": 5},
                         "Minimize")
    assert bandit == Bandit(goal="minimize", slack_factor=0.1, evaluation_interval=1, delay_evaluation=5)
    assert make_policy({"type": "Median_Stopping"}, "maximize") == MedianStopping()
    truncation = make_policy({"type": "truncation_selection", "truncation_percentage": 20, "evaluation_interval": 0},
                             "maximize")
    assert truncation == TruncationSelection(truncation_percentage=20)
    assert truncation is not None and truncation.evaluation_interval == 1


@pytest.mark.parametrize(("settings", "goal", "message"), [
    ({"type": "hyperband"}, "maximize", r"unknown type 'hyperband'; use one of bandit, median_stopping"),
    ({"type": "bandit"}, "maximize", r"needs exactly one of `slack_factor` .* and `slack_amount`"),
    ({"type": "bandit", "slack_factor": 0.1, "slack_amount": 0.2}, "maximize", r"exactly one of"),
    ({"type": "bandit", "slack_factor": 0}, "maximize", r"slack_factor must be greater than 0, not 0"),
    ({"type": "bandit", "slack_amount": -1}, "maximize", r"slack_amount must be greater than 0"),
    ({"type": "bandit", "slack_factor": "10%"}, "maximize", r"slack_factor must be a number, not '10%'"),
    ({"type": "truncation_selection"}, "maximize", r"needs `truncation_percentage`"),
    ({"type": "truncation_selection", "truncation_percentage": 0}, "maximize", r"between 1 and 99 .* not 0"),
    ({"type": "truncation_selection", "truncation_percentage": 100}, "maximize", r"between 1 and 99"),
    ({"type": "median_stopping", "evaluation_interval": -1}, "maximize", r"evaluation_interval must be a whole"),
    ({"type": "median_stopping", "delay_evaluation": 1.5}, "maximize", r"delay_evaluation must be a whole"),
    ({"type": "median_stopping", "slack_factor": 0.1}, "maximize", r"`median_stopping` does not take `slack_factor`"),
    ({"type": "bandit", "slack_factor": 0.1}, "best", r"objective.goal must be maximize or minimize, not 'best'"),
    ("bandit", "maximize", r"early_termination must be a mapping"),
])
def test_bad_settings_are_refused_with_a_fix(settings: object, goal: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        make_policy(settings, goal)  # type: ignore[arg-type]
