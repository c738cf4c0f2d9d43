-- A user's balances: wallets, pending deposits, withdrawal holds and margins, per asset (minor units).
SELECT account, asset, balance_minor
FROM {db}.balances
WHERE startsWith(account, concat('user:', {user:String}, ':'))
ORDER BY account, asset
