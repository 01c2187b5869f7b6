-- Fills: the ledger's source of truth. Unique on (venue, trade_id): a replayed fill is a no-op.
CREATE TABLE fills (
    fill_id          TEXT PRIMARY KEY,
    venue            TEXT NOT NULL,
    trade_id         TEXT NOT NULL,
    account          TEXT NOT NULL,
    strategy         TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    client_order_id  TEXT NOT NULL,
    venue_order_id   TEXT NOT NULL DEFAULT '',
    side             TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity         NUMERIC NOT NULL CHECK (quantity > 0),
    price            NUMERIC NOT NULL CHECK (price > 0),
    fee              NUMERIC NOT NULL DEFAULT 0,
    fee_currency     TEXT NOT NULL DEFAULT '',
    liquidity        TEXT NOT NULL DEFAULT '',
    reconciliation   BOOLEAN NOT NULL DEFAULT FALSE,
    correlation_id   TEXT NOT NULL DEFAULT '',
    event_ts         TIMESTAMPTZ NOT NULL,
    stream_seq       BIGINT,
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The position right after this fill, so a redelivery can re-announce it exactly.
    pos_quantity     NUMERIC NOT NULL,
    pos_cost_basis   NUMERIC NOT NULL,
    pos_realized_pnl NUMERIC NOT NULL,
    pos_fees_paid    NUMERIC NOT NULL,
    pos_fill_count   INTEGER NOT NULL,
    UNIQUE (venue, trade_id)
);

-- Current netting position per account, venue, symbol and strategy.
CREATE TABLE positions (
    account       TEXT NOT NULL,
    venue         TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    strategy      TEXT NOT NULL,
    quantity      NUMERIC NOT NULL DEFAULT 0,
    cost_basis    NUMERIC NOT NULL DEFAULT 0,  -- exact; avg_price = cost_basis / |quantity|
    avg_price     NUMERIC NOT NULL DEFAULT 0,
    realized_pnl  NUMERIC NOT NULL DEFAULT 0,
    fees_paid     NUMERIC NOT NULL DEFAULT 0,
    fill_count    INTEGER NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, venue, symbol, strategy)
);
