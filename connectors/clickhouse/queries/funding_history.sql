-- Funding payments per epoch and user (+ received, - paid, minor units), with the epoch's rate and price;
-- for one user, one market, or both ('' = any).
SELECT p.ts AS settled_at, p.market AS market, p.epoch AS epoch, p.user AS user, p.asset AS asset,
       p.amount_minor AS amount_minor, r.rate_ppb AS rate_ppb, r.price AS price
FROM {db}.funding_payments AS p FINAL
LEFT JOIN (SELECT market, epoch, rate_ppb, price FROM {db}.funding_rates FINAL) AS r
    ON p.market = r.market AND p.epoch = r.epoch
WHERE p.user != ''
  AND ({user:String} = '' OR p.user = {user:String})
  AND ({market:String} = '' OR p.market = {market:String})
ORDER BY settled_at, market, epoch, user
