-- Liquidations per market: how many, their fills, penalties paid into the insurance fund, deficits at
-- completion, what the fund covered and what was left uncovered (minor units of the settlement asset).
SELECT market,
       count() AS liquidations,
       countIf(completed) AS completed,
       sum(fills) AS fills,
       sum(filled_quantity) AS filled_quantity,
       sum(penalty_minor) AS penalty_minor,
       sum(deficit_minor) AS deficit_minor,
       sum(insurance_cover_minor) AS insurance_cover_minor,
       sum(uncovered_minor) AS uncovered_minor
FROM {db}.liquidations
WHERE {market:String} = '' OR market = {market:String}
GROUP BY market
ORDER BY market
