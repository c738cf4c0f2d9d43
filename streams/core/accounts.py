"""Account names (ledger-spec §2). Shared accounts carry the stage key's share in each partition."""


def wallet(user: str, asset: str) -> str:
    return f"user:{user}:wallet:{asset}"


def deposit_pending(user: str, asset: str) -> str:
    return f"user:{user}:deposit_pending:{asset}"


def withdrawal_hold(user: str, asset: str) -> str:
    return f"user:{user}:withdrawal_hold:{asset}"


def margin(user: str, market: str) -> str:
    return f"user:{user}:margin:{market}"


def market_fees(market: str) -> str:
    return f"market:{market}:fees"


def market_settlement(market: str) -> str:
    return f"market:{market}:settlement"


def funding_pool(market: str) -> str:
    return f"market:{market}:funding_pool"


def insurance(market: str) -> str:
    return f"market:{market}:insurance"


def transit(asset: str) -> str:
    return f"system:transit:{asset}"


def custody(asset: str) -> str:
    return f"external:custody:{asset}"


def treasury(asset: str) -> str:
    return f"external:treasury:{asset}"
