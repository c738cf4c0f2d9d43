-- A user's open positions: size in size units (+ long, - short), entry price in price units.
SELECT market, size, entry_price, state, updated_at
FROM {db}.positions_latest
WHERE user = {user:String} AND size != 0
ORDER BY market
