-- A user's trading result per settlement asset (minor units): realized PnL, fees paid (rebates
-- negative), funding (+ received), liquidation penalties paid, their sum (profit), and the current and
-- maximum drawdown of the equity curve (equity_curve.sql, the same definition).
SELECT asset,
       sumIf(amount, kind = 'realized_pnl') AS realized_pnl_minor,
       -sumIf(amount, kind = 'fee') AS fees_paid_minor,
       sumIf(amount, kind = 'funding') AS funding_minor,
       -sumIf(amount, kind = 'liquidation_penalty') AS penalties_paid_minor,
       sum(amount) AS profit_minor,
       any(dd.current_drawdown_minor) AS current_drawdown_minor,
       any(dd.max_drawdown_minor) AS max_drawdown_minor
FROM {db}.journal_postings AS p FINAL
LEFT JOIN (
    SELECT asset,
           argMax(drawdown_minor, (ts, stage, input_partition, batch_seq)) AS current_drawdown_minor,
           max(drawdown_minor) AS max_drawdown_minor
    FROM (
        SELECT asset, ts, stage, input_partition, batch_seq, equity_minor,
               greatest(0, max(equity_minor) OVER w) - equity_minor AS drawdown_minor
        FROM (
            SELECT asset, ts, stage, input_partition, batch_seq,
                   sum(profit_minor) OVER w AS equity_minor
            FROM (
                SELECT asset, ts, stage, input_partition, batch_seq, sum(amount) AS profit_minor
                FROM {db}.journal_postings FINAL
                WHERE startsWith(account, concat('user:', {user:String}, ':margin:'))
                  AND kind IN ('realized_pnl', 'fee', 'funding', 'liquidation_penalty')
                GROUP BY asset, ts, stage, input_partition, batch_seq
            )
            WINDOW w AS (PARTITION BY asset ORDER BY ts, stage, input_partition, batch_seq
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        )
        WINDOW w AS (PARTITION BY asset ORDER BY ts, stage, input_partition, batch_seq
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
    GROUP BY asset
) AS dd ON p.asset = dd.asset
WHERE startsWith(p.account, concat('user:', {user:String}, ':margin:'))
  AND p.kind IN ('realized_pnl', 'fee', 'funding', 'liquidation_penalty')
GROUP BY asset
ORDER BY asset
