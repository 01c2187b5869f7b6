"""The benchmark report's arithmetic: percentiles, ratios and target verdicts."""

from __future__ import annotations

import pytest

from tradebus_common.bench.figures import Figure, percentile
from tradebus_common.bench.run import render


def test_percentile_is_nearest_rank():
    samples = [float(x) for x in range(1, 101)]
    assert percentile(samples, 50) == 50
    assert percentile(samples, 99) == 99
    assert percentile(samples, 99.9) == 100
    assert percentile([7.0], 99) == 7


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_target_is_met_at_the_limit_and_missed_above():
    assert Figure("x", 15.0, "ms", target=15).met is True
    assert Figure("x", 15.01, "ms", target=15).met is False


def test_rate_target_is_met_at_or_above():
    assert Figure("x", 3000, "signals/s", target=3000, higher_is_better=True).met is True
    assert Figure("x", 2999, "signals/s", target=3000, higher_is_better=True).met is False


def test_ratio_against_baseline_and_rendered_row():
    fig = Figure("signal -> ledger p50", 2.0, "ms", baseline=0.5, target=3)
    assert fig.ratio == 4.0
    row = render({"f": fig}).splitlines()[1]
    assert "4.0x" in row and "met" in row and "0.500" in row
    assert Figure("no baseline", 1.0, "ms").ratio is None


def test_risk_check_cost_runs_every_check_on_a_passing_intent():
    from tradebus_common.bench.checks import risk_check_cost

    fig = risk_check_cost(200)  # raises if the bench intent were denied by any check
    assert fig.unit == "us" and 0 < fig.value < 1_000_000
