-- A user's profit per day, week (from Monday) or month and settlement asset (minor units): realized PnL,
-- fees paid, funding, penalties paid, the period's profit, and the equity (cumulative profit) at its end.
SELECT period, asset, realized_pnl_minor, fees_paid_minor, funding_minor, penalties_paid_minor, profit_minor,
       sum(profit_minor) OVER (PARTITION BY asset ORDER BY period) AS equity_minor
FROM (
    SELECT multiIf({period:String} = 'day', toDate(ts), {period:String} = 'week', toMonday(ts),
                   toStartOfMonth(ts)) AS period,
           asset,
           sumIf(amount, kind = 'realized_pnl') AS realized_pnl_minor,
           -sumIf(amount, kind = 'fee') AS fees_paid_minor,
           sumIf(amount, kind = 'funding') AS funding_minor,
           -sumIf(amount, kind = 'liquidation_penalty') AS penalties_paid_minor,
           sum(amount) AS profit_minor
    FROM {db}.journal_postings FINAL
    WHERE startsWith(account, concat('user:', {user:String}, ':margin:'))
      AND kind IN ('realized_pnl', 'fee', 'funding', 'liquidation_penalty')
    GROUP BY period, asset
)
ORDER BY asset, period
