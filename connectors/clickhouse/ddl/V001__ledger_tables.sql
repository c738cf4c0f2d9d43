-- PerpLedger's ClickHouse projection, version 1. `{db}` is the project's database.
-- Every table is a ReplacingMergeTree whose sorting key is the row's deterministic identity, so a
-- row inserted twice (a sink killed between its insert and its offset commit) is one row in queries
-- that read with FINAL; every view here does. Money, sizes and prices are Int128 in minor units.

CREATE TABLE IF NOT EXISTS {db}.journal_batches
(
    stage LowCardinality(String),
    input_partition Int32,            -- with stage: the hash chain; -1 if the batch had none
    batch_seq UInt64,                 -- position in the chain, from 1
    key String,
    origin_key String,
    event_id String,
    event_type LowCardinality(String),
    ts_us Int64,
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    input_topic LowCardinality(String),
    input_offset Int64,
    payload_json String,
    balances_json String,             -- [[account, asset, balance], ...] after the batch, as hashed
    positions_json String,            -- [[market, user, size, entry_price, state], ...] as hashed
    posting_count UInt32,
    prev_hash String,
    hash String,
    journal_partition Int32,          -- where the sink read it on ledger.journal
    journal_offset Int64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (stage, input_partition, batch_seq);

CREATE TABLE IF NOT EXISTS {db}.journal_postings
(
    account String,
    asset LowCardinality(String),
    stage LowCardinality(String),
    input_partition Int32,
    batch_seq UInt64,
    posting_index UInt16,
    posting_id String,
    key String,
    origin_key String,
    event_id String,
    event_type LowCardinality(String),
    ts_us Int64,
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    input_topic LowCardinality(String),
    input_offset Int64,
    amount Int128,                    -- minor units of asset, + debit / - credit
    kind LowCardinality(String),
    user String DEFAULT if(startsWith(account, 'user:'), splitByChar(':', account)[2], ''),
    market String DEFAULT multiIf(startsWith(account, 'market:'), splitByChar(':', account)[2],
                                  startsWith(account, 'user:') AND splitByChar(':', account)[3] = 'margin',
                                  splitByChar(':', account)[4], '')
)
ENGINE = ReplacingMergeTree
-- account first: balances and per-user queries read a narrow range; the rest is the posting's identity.
ORDER BY (account, asset, stage, input_partition, batch_seq, posting_index);

CREATE VIEW IF NOT EXISTS {db}.balances AS
SELECT account, asset, sum(amount) AS balance_minor, count() AS postings, max(ts) AS updated_at
FROM {db}.journal_postings FINAL
GROUP BY account, asset;

CREATE TABLE IF NOT EXISTS {db}.positions
(
    market String,
    user String,
    stage LowCardinality(String),
    input_partition Int32,
    batch_seq UInt64,
    event_id String,
    event_type LowCardinality(String),
    ts_us Int64,
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    size Int128,                      -- size units, + long / - short / 0 flat
    entry_price Int128,               -- price units
    state LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (market, user, stage, input_partition, batch_seq);

-- A market's positions all come from one chain, so its batch_seq orders them.
CREATE VIEW IF NOT EXISTS {db}.positions_latest AS
SELECT market, user,
       argMax(size, batch_seq) AS size,
       argMax(entry_price, batch_seq) AS entry_price,
       argMax(state, batch_seq) AS state,
       max(ts) AS updated_at
FROM {db}.positions
GROUP BY market, user;

CREATE TABLE IF NOT EXISTS {db}.trades
(
    market String,
    stage LowCardinality(String),
    input_partition Int32,
    batch_seq UInt64,
    user String,
    event_type LowCardinality(String),  -- TradeFill or LiquidationFill
    event_id String,
    trade_id String,
    liquidation_id String,
    role LowCardinality(String),        -- buyer, seller, liquidated, counterparty
    side LowCardinality(String),        -- buy, sell; '' for a liquidated side closed in full (see trades_sided)
    counterparty String,
    ts_us Int64,
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    asset LowCardinality(String),
    price Int128,                       -- price units
    quantity Int128,                    -- size units, unsigned
    fee_minor Int128,                   -- paid by this side (negative: a rebate)
    realized_pnl_minor Int128,          -- realized on this side's closed part
    penalty_minor Int128,               -- liquidation penalty paid by the liquidated side
    position_after Int128               -- this side's position size after the fill
)
ENGINE = ReplacingMergeTree
ORDER BY (market, stage, input_partition, batch_seq, user);

CREATE TABLE IF NOT EXISTS {db}.funding_rates
(
    market String,
    epoch Int64,
    stage LowCardinality(String),
    input_partition Int32,
    batch_seq UInt64,
    event_id String,
    ts_us Int64,
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    rate_ppb Int64,
    price Int128
)
ENGINE = ReplacingMergeTree
ORDER BY (market, epoch);

CREATE TABLE IF NOT EXISTS {db}.funding_payments
(
    market String,
    epoch Int64,
    user String,                      -- '' for the pool's rounding sweep to or from the insurance fund
    stage LowCardinality(String),
    input_partition Int32,
    batch_seq UInt64,
    event_id String,
    ts_us Int64,
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    asset LowCardinality(String),
    amount_minor Int128               -- + received into the margin (or the fund), - paid
)
ENGINE = ReplacingMergeTree
ORDER BY (market, epoch, user);

CREATE TABLE IF NOT EXISTS {db}.liquidation_events
(
    market String,
    liquidation_id String,            -- '' for deficit_uncovered (see the view liquidations)
    step LowCardinality(String),      -- triggered, fill, completed, deficit_uncovered
    batch_seq UInt64,                 -- 0 for steps read from ledger.signals
    user String,
    event_id String,
    ts_us Int64,
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    asset LowCardinality(String),
    counterparty String,
    price Int128,
    quantity Int128,
    penalty_minor Int128,             -- into the insurance fund
    deficit_minor Int128,             -- completed: the part the fund covered; deficit_uncovered: the rest
    insurance_cover_minor Int128,     -- paid by the insurance fund at completion
    uncovered_minor Int128            -- left as debt (from the DeficitUncovered signal)
)
ENGINE = ReplacingMergeTree
ORDER BY (market, liquidation_id, step, batch_seq, event_id);

-- One row per liquidation. The DeficitUncovered signal names no liquidation: it is the one its
-- event (the LiquidationCompleted) completed.
CREATE VIEW IF NOT EXISTS {db}.liquidations AS
SELECT market, liquidation_id,
       any(user) AS user,
       minIf(ts, step = 'triggered') AS triggered_at,
       countIf(step = 'fill') AS fills,
       sumIf(quantity, step = 'fill') AS filled_quantity,
       sumIf(penalty_minor, step = 'fill') AS penalty_minor,
       countIf(step = 'completed') > 0 AS completed,
       maxIf(ts, step = 'completed') AS completed_at,
       sumIf(deficit_minor, step IN ('completed', 'deficit_uncovered')) AS deficit_minor,
       sumIf(insurance_cover_minor, step = 'completed') AS insurance_cover_minor,
       sumIf(uncovered_minor, step = 'deficit_uncovered') AS uncovered_minor
FROM (
    SELECT e.market AS market, if(e.step = 'deficit_uncovered', c.liquidation_id, e.liquidation_id) AS liquidation_id,
           e.user AS user, e.step AS step, e.ts AS ts, e.quantity AS quantity, e.penalty_minor AS penalty_minor,
           e.deficit_minor AS deficit_minor, e.insurance_cover_minor AS insurance_cover_minor,
           e.uncovered_minor AS uncovered_minor
    FROM {db}.liquidation_events AS e FINAL
    LEFT JOIN (SELECT market, event_id, user, liquidation_id FROM {db}.liquidation_events FINAL
               WHERE step = 'completed') AS c
        ON e.market = c.market AND e.event_id = c.event_id AND e.user = c.user
)
GROUP BY market, liquidation_id;

CREATE TABLE IF NOT EXISTS {db}.signals
(
    market String,
    signal_type LowCardinality(String),
    stage LowCardinality(String),
    key String,
    event_id String,
    user String,
    ts_us Int64,
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    liquidation_id String,
    amount_minor Nullable(Int128)
)
ENGINE = ReplacingMergeTree
ORDER BY (market, signal_type, stage, key, event_id, user);

CREATE TABLE IF NOT EXISTS {db}.rejections
(
    input_topic String,
    input_partition Int32,
    input_offset Int64,
    stage LowCardinality(String),
    key String,
    event_id String,
    event_type LowCardinality(String),
    reason LowCardinality(String),
    detail String,
    ts_us Int64,                      -- 0 if the event had none
    ts DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(ts_us, 'UTC'),
    payload_json String
)
ENGINE = ReplacingMergeTree
ORDER BY (input_topic, input_partition, input_offset);

CREATE VIEW IF NOT EXISTS {db}.rejections_by_reason AS
SELECT reason, stage, event_type, count() AS rejections, min(ts) AS first_at, max(ts) AS last_at
FROM {db}.rejections FINAL
GROUP BY reason, stage, event_type;

-- trades with every side known: a liquidated position closed in full has no size left to tell its
-- direction, so it is read from the liquidated user's position before the fill.
CREATE VIEW IF NOT EXISTS {db}.trades_sided AS
SELECT t.market AS market, t.batch_seq AS batch_seq, t.user AS user, t.event_type AS event_type,
       t.event_id AS event_id, t.trade_id AS trade_id, t.liquidation_id AS liquidation_id, t.role AS role,
       if(t.side != '', t.side, if((p.size > 0) = (t.role = 'liquidated'), 'sell', 'buy')) AS side,
       t.counterparty AS counterparty, t.ts AS ts, t.asset AS asset, t.price AS price, t.quantity AS quantity,
       t.fee_minor AS fee_minor, t.realized_pnl_minor AS realized_pnl_minor, t.penalty_minor AS penalty_minor,
       t.position_after AS position_after
FROM (SELECT *, if(role = 'counterparty', counterparty, user) AS liquidated_user FROM {db}.trades FINAL) AS t
ASOF LEFT JOIN (SELECT market, user, batch_seq, size FROM {db}.positions FINAL) AS p
    ON t.market = p.market AND t.liquidated_user = p.user AND t.batch_seq > p.batch_seq;
