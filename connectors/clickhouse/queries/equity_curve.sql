-- A user's trading equity curve per settlement asset: the running sum of realized PnL, fees, funding
-- and liquidation penalties on their margin accounts (deposits and transfers excluded), one point per
-- journal batch, with the peak so far (from 0) and the drawdown below it (minor units).
SELECT ts, asset, market, event_type, event_id, profit_minor, equity_minor,
       greatest(0, max(equity_minor) OVER w) AS peak_minor,
       peak_minor - equity_minor AS drawdown_minor
FROM (
    SELECT ts, asset, market, event_type, event_id, stage, input_partition, batch_seq, profit_minor,
           sum(profit_minor) OVER (PARTITION BY asset ORDER BY ts, stage, input_partition, batch_seq
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS equity_minor
    FROM (
        SELECT ts, asset, market, event_type, event_id, stage, input_partition, batch_seq,
               sum(amount) AS profit_minor
        FROM {db}.journal_postings FINAL
        WHERE startsWith(account, concat('user:', {user:String}, ':margin:'))
          AND kind IN ('realized_pnl', 'fee', 'funding', 'liquidation_penalty')
        GROUP BY ts, asset, market, event_type, event_id, stage, input_partition, batch_seq
    )
)
WINDOW w AS (PARTITION BY asset ORDER BY ts, stage, input_partition, batch_seq
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY asset, ts, stage, input_partition, batch_seq
