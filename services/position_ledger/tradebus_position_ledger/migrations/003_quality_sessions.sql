-- Exit reasons (S5 exits: stop loss, take profit, trailing stop, time exit), carried on the fill.
ALTER TABLE fills ADD COLUMN exit_reason TEXT;
CREATE INDEX fills_client_order_id ON fills (client_order_id);

-- The lowest and highest price seen while the current cycle is open (its fills' prices and
-- the market ticks): MAE/MFE of the cycle when it closes.
ALTER TABLE positions ADD COLUMN cycle_low NUMERIC;
ALTER TABLE positions ADD COLUMN cycle_high NUMERIC;

-- Per closed cycle: the reason of the fill that closed it, and its excursions.
ALTER TABLE position_cycles ADD COLUMN exit_reason TEXT;
ALTER TABLE position_cycles ADD COLUMN entry_price NUMERIC;  -- average entry of what closed
ALTER TABLE position_cycles ADD COLUMN low_price NUMERIC;
ALTER TABLE position_cycles ADD COLUMN high_price NUMERIC;
ALTER TABLE position_cycles ADD COLUMN mae_pct NUMERIC;  -- max adverse excursion, % of entry, >= 0
ALTER TABLE position_cycles ADD COLUMN mfe_pct NUMERIC;  -- max favourable excursion, % of entry, >= 0

-- Orders the system approved (trading.order.approved.*) or the gateway submitted
-- (trading.order.event.*), read by the same consumer as the fills, in stream order: a fill
-- whose client_order_id is not here is an unknown order. Also the base of the fill rate.
CREATE TABLE ledger_orders (
    client_order_id     TEXT PRIMARY KEY,
    strategy            TEXT NOT NULL DEFAULT '',
    venue               TEXT NOT NULL DEFAULT '',
    symbol              TEXT NOT NULL DEFAULT '',
    side                TEXT NOT NULL DEFAULT '',
    approved_quantity   NUMERIC,  -- NULL: never seen approved (e.g. a flatten order)
    submitted_quantity  NUMERIC,
    reference_price     NUMERIC,
    status              TEXT NOT NULL,  -- approved | submitted | accepted | closed
    close_reason        TEXT NOT NULL DEFAULT '',  -- rejected | canceled | expired | unknown
    first_ts            TIMESTAMPTZ NOT NULL,
    stream_seq          BIGINT
);
CREATE INDEX ledger_orders_strategy ON ledger_orders (strategy, first_ts);

-- One row per run of the ledger service (a session), with each account's equity at its start.
CREATE TABLE ledger_sessions (
    session_id   TEXT PRIMARY KEY,
    instance     TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL
);
CREATE TABLE session_accounts (
    session_id     TEXT NOT NULL REFERENCES ledger_sessions (session_id),
    account        TEXT NOT NULL,
    start_equity   NUMERIC NOT NULL,
    PRIMARY KEY (session_id, account)
);

-- Cash reported by the venues (trading.recon.report balances), per account, venue and
-- currency. With [ledger] cash_source = "venue" the first observation fixes the starting
-- capital: starting cash = first_balance - first_offset, summed over the account's venues.
CREATE TABLE venue_balances (
    account        TEXT NOT NULL,
    venue          TEXT NOT NULL,
    currency       TEXT NOT NULL,
    first_balance  NUMERIC NOT NULL,
    first_offset   NUMERIC NOT NULL,  -- the ledger's cash change (realized - open cost) then
    balance        NUMERIC NOT NULL,
    report_id      TEXT NOT NULL,
    observed_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account, venue, currency)
);
