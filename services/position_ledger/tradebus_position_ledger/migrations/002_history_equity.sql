-- Flags on a booked fill: e.g. 'unknown_strategy' (still booked, and alerted).
ALTER TABLE fills ADD COLUMN flags TEXT NOT NULL DEFAULT '';
-- The market price when the order was sent: execution quality (slippage) per strategy.
ALTER TABLE fills ADD COLUMN arrival_price NUMERIC;
CREATE INDEX fills_event_ts ON fills (event_ts);

-- The current cycle of each position: when it opened and its realized P&L at that moment,
-- so the cycle's own P&L is known when it closes.
ALTER TABLE positions ADD COLUMN opened_at TIMESTAMPTZ;
ALTER TABLE positions ADD COLUMN cycle_realized_base NUMERIC NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN cycle_fill_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN cycle_max_quantity NUMERIC NOT NULL DEFAULT 0;

-- Position history: one row per closed cycle (flat -> open -> flat, or up to a flip).
-- Keyed by the fill that closed it, so a replayed fill can never close it twice.
CREATE TABLE position_cycles (
    closing_fill_id  TEXT PRIMARY KEY REFERENCES fills (fill_id),
    account          TEXT NOT NULL,
    venue            TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    strategy         TEXT NOT NULL,
    direction        TEXT NOT NULL CHECK (direction IN ('long', 'short')),
    max_quantity     NUMERIC NOT NULL,
    realized_pnl     NUMERIC NOT NULL,  -- net of every fee paid during the cycle
    fill_count       INTEGER NOT NULL,
    opened_at        TIMESTAMPTZ NOT NULL,
    closed_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX position_cycles_strategy ON position_cycles (strategy, closed_at);

-- Equity over time, written with every published LedgerSnapshot.
CREATE TABLE equity_snapshots (
    account          TEXT NOT NULL,
    ts               TIMESTAMPTZ NOT NULL,
    equity           NUMERIC NOT NULL,
    cash             NUMERIC NOT NULL,
    realized_pnl     NUMERIC NOT NULL,
    unrealized_pnl   NUMERIC NOT NULL,
    high_water_mark  NUMERIC NOT NULL,
    drawdown         NUMERIC NOT NULL,
    gross_exposure   NUMERIC NOT NULL,
    net_exposure     NUMERIC NOT NULL,
    PRIMARY KEY (account, ts)
);

-- Daily P&L per account and trading day (in the configured timezone and day start).
CREATE TABLE daily_pnl (
    account          TEXT NOT NULL,
    day              DATE NOT NULL,
    open_equity      NUMERIC NOT NULL,
    close_equity     NUMERIC NOT NULL,
    pnl              NUMERIC NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, day)
);

-- The highest TRADING stream sequence booked per consumer, so a consumer can resume and a
-- replay knows how far the live ledger has got.
CREATE TABLE processed_sequence (
    consumer         TEXT PRIMARY KEY,
    stream_seq       BIGINT NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
