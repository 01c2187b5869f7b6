-- The reconciler's own tables (its migrations are recorded in reconciler_migrations, apart
-- from the ledger's schema_migrations, so the two services never refuse each other's).

-- Per venue: trades up to here have been compared with the ledger (C2 "since the last
-- checkpoint"; each run looks back trades_overlap_s further).
CREATE TABLE recon_checkpoints (
    venue         TEXT PRIMARY KEY,
    trades_until  TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What the venue account held apart from our fills (deposits, starting cash, coins held
-- before tradebus), fixed by the first run and by an operator's accept, per currency
-- (kind 'balance') and per symbol (kind 'position': a spot venue's position is a balance).
-- Drift = venue - (baseline + what the ledger booked).
CREATE TABLE recon_balance_baseline (
    venue      TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('balance', 'position')),
    currency   TEXT NOT NULL,  -- the currency, or the symbol for kind 'position'
    amount     NUMERIC NOT NULL,
    set_by     TEXT NOT NULL DEFAULT '',
    set_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, kind, currency)
);

-- Every ReconReport, for the end-of-day export.
CREATE TABLE recon_reports (
    report_id  TEXT PRIMARY KEY,
    venue      TEXT NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    trigger    TEXT NOT NULL,
    clean      BOOLEAN NOT NULL,
    resolved   BOOLEAN NOT NULL,
    body       JSONB NOT NULL
);
CREATE INDEX recon_reports_ts ON recon_reports (ts);

-- B7: hash-chain checkpoints over a stream, in sequence order.
CREATE TABLE audit_checkpoints (
    stream      TEXT NOT NULL,
    stream_seq  BIGINT NOT NULL,
    chain_hash  TEXT NOT NULL,
    messages    BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, stream_seq)
);
