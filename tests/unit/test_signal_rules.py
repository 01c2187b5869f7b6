"""Signal meaning checks (bracket, sizing, TTL), exit rules and strategy-run plans, as pure
functions at their edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tradebus_common.config import Config, StrategyConfig, VenueConfig
from tradebus_common.errors import ErrorCode, PermanentError
from tradebus_common.events import (
    Bracket,
    ExitReason,
    PositionChanged,
    Side,
    Signal,
    SignalRejectReason,
    SizingHint,
    SizingMode,
    StrategyAction,
    StrategyCommand,
    StrategyRunState,
)
from tradebus_signal.exits import (
    ExitSet,
    default_bracket,
    evaluate,
    exit_intent,
    on_position,
    replacement,
)
from tradebus_signal.handlers import by_priority
from tradebus_signal.runs import RunRecord, effective_config, plan, refusal
from tradebus_signal.validation import check_bracket, is_expired, validate

D = Decimal
T0 = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
CONFIG = Config(
    venues={"paper": VenueConfig(symbols=["BTC/USDT"])},
    strategies={"demo": StrategyConfig(), "stops": StrategyConfig(stop_loss_pct=D("2"))},
)


def signal(**overrides: Any) -> Signal:
    fields: dict[str, Any] = {
        "id": "s1",
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "quantity": D("1"),
        "ts": T0,
    }
    fields.update(overrides)
    return Signal(**fields)


def code_of(fn: Any, *args: Any) -> ErrorCode:
    with pytest.raises(PermanentError) as info:
        fn(*args)
    return info.value.code


# --- validation -------------------------------------------------------------------------


def test_a_long_with_stop_below_and_target_above_entry_passes() -> None:
    assert (
        check_bracket(Bracket(stop_loss=D("49000"), take_profit=D("52000")), Side.BUY, D("50000"))
        is None
    )


def test_a_longs_stop_above_entry_is_inconsistent() -> None:
    bracket = Bracket(stop_loss=D("51000"))
    assert code_of(check_bracket, bracket, Side.BUY, D("50000")) is ErrorCode.INCONSISTENT_BRACKET


def test_a_shorts_stop_below_entry_is_inconsistent() -> None:
    bracket = Bracket(stop_loss=D("49000"))
    assert code_of(check_bracket, bracket, Side.SELL, D("50000")) is ErrorCode.INCONSISTENT_BRACKET


def test_a_shorts_target_below_and_stop_above_passes() -> None:
    bracket = Bracket(stop_loss=D("51000"), take_profit=D("48000"))
    assert check_bracket(bracket, Side.SELL, D("50000")) is None


def test_stop_at_entry_is_a_zero_stop_distance() -> None:
    bracket = Bracket(stop_loss=D("50000"))
    assert code_of(check_bracket, bracket, Side.BUY, D("50000")) is ErrorCode.ZERO_STOP_DISTANCE


def test_without_entry_stop_and_target_are_still_compared() -> None:
    bracket = Bracket(stop_loss=D("53000"), take_profit=D("52000"))
    assert code_of(check_bracket, bracket, Side.BUY, None) is ErrorCode.INCONSISTENT_BRACKET


@pytest.mark.parametrize("field", ["stop_loss", "take_profit", "trailing_distance"])
def test_non_positive_bracket_prices_are_rejected(field: str) -> None:
    sig = signal(bracket=Bracket(**{field: D("0")}))
    assert code_of(validate, sig, CONFIG) is ErrorCode.INCONSISTENT_BRACKET


def test_no_quantity_no_sizing_no_target_is_invalid() -> None:
    assert code_of(validate, signal(quantity=None), CONFIG) is ErrorCode.INVALID_SIZING


def test_target_position_alone_is_enough() -> None:
    assert validate(signal(quantity=None, target_position=D("0")), CONFIG) is None


def test_sizing_mode_that_needs_a_value_without_one_is_invalid() -> None:
    sig = signal(quantity=None, sizing=SizingHint(mode=SizingMode.FIXED_NOTIONAL))
    assert code_of(validate, sig, CONFIG) is ErrorCode.INVALID_SIZING


def test_percent_over_100_is_invalid() -> None:
    sig = signal(sizing=SizingHint(mode=SizingMode.EQUITY_PCT, value=D("100.01")))
    assert code_of(validate, sig, CONFIG) is ErrorCode.INVALID_SIZING


def test_risk_per_trade_without_any_stop_is_invalid() -> None:
    sig = signal(sizing=SizingHint(mode=SizingMode.RISK_PER_TRADE, value=D("1")))
    assert code_of(validate, sig, CONFIG) is ErrorCode.INVALID_SIZING


def test_risk_per_trade_with_the_strategys_default_stop_passes() -> None:
    sig = signal(strategy="stops", sizing=SizingHint(mode=SizingMode.RISK_PER_TRADE))
    assert validate(sig, CONFIG) is None


def test_non_positive_ttl_is_a_schema_violation() -> None:
    assert code_of(validate, signal(ttl_s=0), CONFIG) is ErrorCode.SCHEMA_VIOLATION


def test_ttl_expires_exactly_at_ts_plus_ttl() -> None:
    sig = signal(ttl_s=5)
    assert not is_expired(sig, T0 + timedelta(seconds=4.999))
    assert is_expired(sig, T0 + timedelta(seconds=5))


def test_expires_at_and_ttl_the_earlier_wins() -> None:
    sig = signal(ttl_s=60, expires_at=T0 + timedelta(seconds=10))
    assert is_expired(sig, T0 + timedelta(seconds=10))


def test_no_ttl_never_expires_unless_a_default_is_configured() -> None:
    later = T0 + timedelta(days=1)
    assert not is_expired(signal(), later)
    assert is_expired(signal(), later, default_ttl_s=30)


# --- priority ---------------------------------------------------------------------------


def test_by_priority_orders_high_first_then_oldest() -> None:
    from tradebus_common.bus import BatchItem, Delivery

    def item(seq: int, prio: int, ts: datetime) -> BatchItem:
        return BatchItem(signal(id=f"s{seq}", priority=prio, ts=ts), Delivery("x", seq, 1))

    items = [item(1, 0, T0), item(2, 5, T0 + timedelta(1)), item(3, 5, T0), item(4, -1, T0)]
    assert by_priority(items) == [2, 1, 0, 3]


# --- exits ------------------------------------------------------------------------------


def exit_set(**overrides: Any) -> ExitSet:
    fields: dict[str, Any] = {
        "strategy": "demo",
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "bracket_id": "b1",
        "signal_id": "s1",
        "position": D("0.5"),
        "opened_at": T0,
    }
    fields.update(overrides)
    return ExitSet(**fields)


def test_stop_loss_fires_at_the_stop_not_above() -> None:
    xs = exit_set(stop_loss=D("49000"))
    assert evaluate(xs, D("49000.01"), T0)[1] is None
    assert evaluate(xs, D("49000"), T0)[1] is ExitReason.STOP_LOSS


def test_take_profit_fires_at_the_target() -> None:
    xs = exit_set(take_profit=D("52000"))
    assert evaluate(xs, D("51999.99"), T0)[1] is None
    assert evaluate(xs, D("52000"), T0)[1] is ExitReason.TAKE_PROFIT


def test_short_exits_mirror_a_long() -> None:
    xs = exit_set(side=Side.SELL, position=D("-1"), stop_loss=D("51000"), take_profit=D("48000"))
    assert evaluate(xs, D("51000"), T0)[1] is ExitReason.STOP_LOSS
    assert evaluate(xs, D("48000"), T0)[1] is ExitReason.TAKE_PROFIT
    assert evaluate(xs, D("50000"), T0)[1] is None


def test_trailing_stop_ratchets_with_the_high_and_never_back() -> None:
    xs = exit_set(trailing_distance=D("100"))
    xs, hit = evaluate(xs, D("50000"), T0)
    xs, hit = evaluate(xs, D("50300"), T0)  # new high: the stop moves to 50200
    assert (xs.extreme, hit) == (D("50300"), None)
    xs, hit = evaluate(xs, D("50250"), T0)  # a dip keeps the high
    assert (xs.extreme, hit) == (D("50300"), None)
    assert evaluate(xs, D("50200"), T0)[1] is ExitReason.TRAILING_STOP


def test_time_exit_fires_after_max_holding() -> None:
    xs = exit_set(max_holding_s=60)
    assert evaluate(xs, D("50000"), T0 + timedelta(seconds=59))[1] is None
    assert evaluate(xs, D("50000"), T0 + timedelta(seconds=60))[1] is ExitReason.TIME_EXIT


def test_stop_is_checked_before_take_profit_on_a_gap() -> None:
    xs = exit_set(stop_loss=D("49000"), take_profit=D("48000"), side=Side.BUY)
    assert evaluate(xs, D("47000"), T0)[1] is ExitReason.STOP_LOSS


def test_exit_intent_is_reduce_only_closes_all_and_has_one_id_per_bracket() -> None:
    intent = exit_intent(exit_set(), ExitReason.STOP_LOSS)
    again = exit_intent(exit_set(position=D("0.4")), ExitReason.TIME_EXIT)
    assert intent.reduce_only and intent.exit_reason is ExitReason.STOP_LOSS
    assert (intent.side, intent.quantity) == (Side.SELL, D("0.5"))
    assert intent.id == again.id
    assert intent.id != exit_intent(exit_set(bracket_id="b2"), ExitReason.STOP_LOSS).id


def test_a_new_bracket_replaces_the_old_and_keeps_the_position() -> None:
    old = exit_set(stop_loss=D("49000"))
    new = exit_set(bracket_id="b2", position=D("0"), opened_at=None, stop_loss=D("49500"))
    chosen = replacement(old, new, explicit=True)
    assert chosen is not None
    assert (chosen.bracket_id, chosen.stop_loss, chosen.position) == ("b2", D("49500"), D("0.5"))


def test_the_same_bracket_again_changes_nothing() -> None:
    assert replacement(exit_set(), exit_set(), explicit=True) is None


def test_a_fired_set_is_not_replaced_until_flat() -> None:
    fired = exit_set(fired=ExitReason.STOP_LOSS)
    assert replacement(fired, exit_set(bracket_id="b2"), explicit=True) is None


def test_a_signal_without_its_own_bracket_leaves_an_open_positions_exits() -> None:
    assert replacement(exit_set(), exit_set(bracket_id="b2", side=Side.SELL), False) is None
    assert replacement(exit_set(), exit_set(bracket_id="b2"), explicit=False) is None


def test_strategy_defaults_fill_in_while_nothing_is_open() -> None:
    pending = exit_set(position=D("0"), opened_at=None)
    chosen = replacement(pending, exit_set(bracket_id="b2", position=D("0")), explicit=False)
    assert chosen is not None and chosen.bracket_id == "b2"


def test_position_change_arms_then_flat_removes() -> None:
    pending = exit_set(position=D("0"), opened_at=None)
    change = PositionChanged(
        venue="paper",
        symbol="BTC/USDT",
        strategy="demo",
        quantity=D("0.5"),
        avg_price=D("50000"),
        realized_pnl=D("0"),
        ts=T0,
    )
    armed = on_position(pending, change)
    assert armed is not None and armed.armed and armed.opened_at == T0
    flat = msgspec_replace(change, quantity=D("0"))
    assert on_position(armed, flat) is None
    assert on_position(pending, flat) == pending  # an older flat does not drop a new entry


def msgspec_replace(obj: Any, **changes: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(obj, **changes)


def test_default_bracket_from_percentages_around_entry() -> None:
    cfg = StrategyConfig(stop_loss_pct=D("2"), take_profit_pct=D("4"), trailing_stop_pct=D("1"))
    long = default_bracket(cfg, Side.BUY, D("100"))
    short = default_bracket(cfg, Side.SELL, D("100"))
    assert long == Bracket(stop_loss=D("98"), take_profit=D("104"), trailing_distance=D("1"))
    assert short is not None and (short.stop_loss, short.take_profit) == (D("102"), D("96"))
    assert default_bracket(StrategyConfig(), Side.BUY, D("100")) is None


# --- strategy runs ----------------------------------------------------------------------

S, A = StrategyRunState, StrategyAction


def cmd(action: StrategyAction, **kw: Any) -> StrategyCommand:
    return StrategyCommand(strategy="demo", action=action, request_id="r1", **kw)


@pytest.mark.parametrize(
    ("action", "state", "path"),
    [
        (A.START, S.STOPPED, [S.STARTING, S.RUNNING]),
        (A.START, S.ERROR, [S.STARTING, S.RUNNING]),
        (A.PAUSE, S.RUNNING, [S.PAUSED]),
        (A.RESUME, S.PAUSED, [S.RUNNING]),
        (A.STOP, S.RUNNING, [S.STOPPING, S.STOPPED]),
        (A.STOP, S.PAUSED, [S.STOPPING, S.STOPPED]),
    ],
)
def test_run_transitions(action: StrategyAction, state: StrategyRunState, path: list) -> None:
    assert plan(cmd(action), RunRecord(strategy="demo", state=state), StrategyConfig()) == (
        path,
        "",
    )


@pytest.mark.parametrize(
    ("action", "state"),
    [(A.PAUSE, S.PAUSED), (A.RESUME, S.RUNNING), (A.START, S.RUNNING), (A.PAUSE, S.STOPPED)],
)
def test_run_commands_that_do_not_apply_are_refused(
    action: StrategyAction, state: StrategyRunState
) -> None:
    states, why = plan(cmd(action), RunRecord(strategy="demo", state=state), StrategyConfig())
    assert states == [] and state.value in why


def test_start_with_bad_overrides_ends_in_error() -> None:
    states, why = plan(
        cmd(A.START, overrides={"no_such_key": "1"}), RunRecord(strategy="demo"), StrategyConfig()
    )
    assert states == [S.STARTING, S.ERROR] and "no_such_key" in why


def test_overrides_apply_over_the_strategy_config() -> None:
    cfg = effective_config(StrategyConfig(), {"allocation_weight": "0.3", "quantity": "0.5"})
    assert (cfg.allocation_weight, cfg.quantity) == (D("0.3"), D("0.5"))


def test_only_running_trades_and_paused_says_so() -> None:
    assert refusal(S.RUNNING) is None
    assert refusal(S.PAUSED) is SignalRejectReason.STRATEGY_PAUSED
    for state in (S.STOPPED, S.STARTING, S.STOPPING, S.ERROR):
        assert refusal(state) is SignalRejectReason.STRATEGY_NOT_RUNNING


def test_a_denied_exit_re_arms_with_a_new_intent_id() -> None:
    from tradebus_common.events import DenyReason, OrderDenied
    from tradebus_signal.exits import on_denied

    fired = exit_set(fired=ExitReason.STOP_LOSS, exit_intent_id="x1")
    deny = OrderDenied(
        intent_id="x1", strategy="demo", venue="paper", symbol="BTC/USDT", reason=DenyReason.HALTED
    )
    rearmed = on_denied(fired, deny)
    assert rearmed is not None and rearmed.armed and rearmed.attempt == 1
    assert (
        exit_intent(rearmed, ExitReason.STOP_LOSS).id != exit_intent(fired, ExitReason.STOP_LOSS).id
    )
    assert on_denied(fired, msgspec_replace(deny, intent_id="other")) is None
    assert on_denied(exit_set(), deny) is None  # not fired: nothing to re-arm


# --- config checked at start ------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"quantity": D("0")},
        {"sizing_mode": "kelly"},
        {"allocation_weight": D("0")},
        {"allocation_weight": D("1.5")},
        {"stop_loss_pct": D("100")},
        {"trailing_stop_pct": D("0")},
    ],
)
def test_a_strategy_config_that_would_size_wrong_stops_the_service(bad: dict) -> None:
    from tradebus_common.errors import ConfigError
    from tradebus_signal.service import check_sizing

    config = Config(strategies={"s": StrategyConfig(**bad)})
    with pytest.raises(ConfigError, match="strategies.s."):
        check_sizing(config)


def test_a_sound_strategy_config_starts() -> None:
    from tradebus_signal.service import check_sizing

    good = StrategyConfig(
        allocation_weight=D("0.3"), sizing_mode="risk_per_trade", stop_loss_pct=D("2")
    )
    assert check_sizing(Config(strategies={"s": good})) is None
