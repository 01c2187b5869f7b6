-- The gateway's execution-quality report of each finished order or algo parent
-- (ExecutionQuality, order.quality): time to fill and implementation shortfall per strategy.
CREATE TABLE order_quality (
    client_order_id               TEXT PRIMARY KEY,
    strategy                      TEXT NOT NULL,
    venue                         TEXT NOT NULL,
    symbol                        TEXT NOT NULL,
    side                          TEXT NOT NULL,
    quantity                      NUMERIC NOT NULL,
    filled_quantity               NUMERIC NOT NULL,
    slippage_bps                  NUMERIC,
    fill_rate                     NUMERIC NOT NULL,
    time_to_first_fill_ms         BIGINT,
    time_to_last_fill_ms          BIGINT,
    fees                          NUMERIC NOT NULL,
    implementation_shortfall      NUMERIC,
    implementation_shortfall_bps  NUMERIC,
    children                      INTEGER NOT NULL,
    event_ts                      TIMESTAMPTZ NOT NULL
);
CREATE INDEX order_quality_strategy ON order_quality (strategy, event_ts);
