-- A market's insurance fund over time, per day, week (from Monday) or month: what came in (top-ups,
-- liquidation penalties), went out (deficit covers), the funding rounding sweep, and the balance at the
-- end of each period (minor units).
SELECT period, asset, funded_minor, penalties_minor, covers_minor, funding_sweep_minor, net_minor,
       sum(net_minor) OVER (PARTITION BY asset ORDER BY period) AS balance_minor
FROM (
    SELECT multiIf({period:String} = 'day', toDate(ts), {period:String} = 'week', toMonday(ts),
                   toStartOfMonth(ts)) AS period,
           asset,
           sumIf(amount, kind = 'insurance_funded') AS funded_minor,
           sumIf(amount, kind = 'liquidation_penalty') AS penalties_minor,
           -sumIf(amount, kind = 'insurance_cover') AS covers_minor,
           sumIf(amount, kind = 'funding_sweep') AS funding_sweep_minor,
           sum(amount) AS net_minor
    FROM {db}.journal_postings FINAL
    WHERE account = concat('market:', {market:String}, ':insurance')
    GROUP BY period, asset
)
ORDER BY asset, period
