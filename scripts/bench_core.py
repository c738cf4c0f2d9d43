"""Speed benchmark of the ledger core, in one process (a script, not a timed test).

Two parts:

1. Mark-update scaling: a market with 1k and with 100k open positions (all healthy, plus the same 40
   positions close to their initial-margin line in both), then small mark moves timed one by one.
   The cost of an update must not grow with the number of healthy positions. Also reports memory per
   100k open positions (tracemalloc and RSS) for those ledgers.
2. The realistic mix of streams/workload.py (10 markets, 100k users; ~60% fills, ~30% marks, ~10%
   everything else, with liquidations, duplicates and malformed events): setup and mix timed apart,
   events/s counting the input events submitted, on the CPU time spent inside `Ledger.submit` (CPU
   time, not wall, so other load on the machine skews it less; the wall figures and the generator's
   own time are reported apart). Then rejections by reason (against what the generator intended),
   signals, internal events, memory, invariants (zero-sum per asset including external accounts,
   transit and funding pools at zero, open interest zero per market), and, with `--profile`, the
   same workload again into a fresh ledger with cProfile on inside `submit` during the mix (its final
   hashes must equal the timed run's: the run is deterministic).

    .venv/bin/python scripts/bench_core.py                      # full size: 1M mix events
    .venv/bin/python scripts/bench_core.py --profile --scaling ''
    .venv/bin/python scripts/bench_core.py --gc default --scaling ''  # at Python's GC thresholds
    .venv/bin/python scripts/bench_core.py --events 50000 --users 5000 --scaling 1000,10000

Exit status 1 if an invariant is broken or the profiled run diverges.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from typing import Any

from streams.cli import GC_THRESHOLDS
from streams.core.ledger import Ledger
from streams.workload import MARKETS, T0_US, Workload

TARGET_EVENTS_PER_S = 100_000


# Measurement helpers ------------------------------------------------------------------------------


def _proc_status(field: str) -> int:
    """A /proc/self/status size field in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss() -> int:
    return _proc_status("VmRSS")


def peak_rss() -> int:
    return _proc_status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so each phase reports its own peak."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def core_version() -> str:
    """The commit the core is at, and whether streams/core has uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "streams/core"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in streams/core" if dirty else "")


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


class GcTimer:
    """Time spent in the cyclic garbage collector, by generation, while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections: Counter[int] = Counter()
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def store_census(ledger: Ledger) -> dict[str, int]:
    """Records held by both stages' stores, by kind (balances, dedup entries, positions...)."""
    names = {"b": "balances", "d": "dedup entries", "ts": "max ts", "p": "positions", "mk": "markets",
             "seq": "fill sequences", "fs": "funding snapshots", "lq": "liquidations", "dep": "deposits",
             "wd": "withdrawals"}
    census: Counter[str] = Counter()
    for stage in ledger.stages:
        for record in stage.store.data:  # DictStore
            kind = record[1] if len(record) > 1 and isinstance(record[1], str) else "chain"
            census[f"{stage.stage} {names.get(kind, kind)}"] += 1
    return dict(sorted(census.items()))


# Invariants ---------------------------------------------------------------------------------------


def check_invariants(ledger: Ledger) -> list[str]:
    """Zero-sum per asset (AC-01), transit and funding pools at zero (AC-03, AC-20), OI zero (AC-21)."""
    broken: list[str] = []
    per_asset: Counter[str] = Counter()
    for (account, asset), balance in ledger.balances().items():
        per_asset[asset] += balance
        if account.startswith("system:transit:") and balance:
            broken.append(f"transit {account} holds {balance} {asset}")
        if account.endswith(":funding_pool") and balance:
            broken.append(f"funding pool {account} holds {balance} {asset}")
    broken += [f"asset {asset} sums to {total}, not 0" for asset, total in sorted(per_asset.items()) if total]
    open_interest: Counter[str] = Counter()
    for position in ledger.positions():
        open_interest[position.market] += position.size
    broken += [f"open interest of {m} is {oi}, not 0" for m, oi in sorted(open_interest.items()) if oi]
    return broken


# Part 1: mark updates against 1k vs 100k open positions -------------------------------------------


class _Feeder:
    """Submits hand-made events with fresh ids and rising timestamps; fails on any rejection."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.n = 0
        self.ts_us = T0_US

    def __call__(self, type_: str, **fields: Any) -> list:
        self.n += 1
        self.ts_us += 10
        event = {"type": type_, "event_id": f"s{self.n}", "source": fields.pop("source", "bench"),
                 "ts_us": self.ts_us, **fields}
        outcomes = self.ledger.submit(event)
        for outcome in outcomes:
            if outcome.status != "applied":
                raise SystemExit(f"scaling setup: {type_} {outcome.status} {outcome.reason} {outcome.detail}")
        return outcomes


EDGE_PAIRS = 20  # positions near their initial-margin line, the same number at every size


def build_market(n_positions: int, seed: int) -> tuple[Ledger, int, dict[str, Any]]:
    """One BTC-PERP market with `n_positions` open positions: healthy ones at ~0.5x leverage, and
    2 * EDGE_PAIRS within 0.05% to 0.3% of the reduce-only line. Returns (ledger, mark, info)."""
    spec = MARKETS[0]
    rng = random.Random(seed)
    ledger = Ledger()
    feed = _Feeder(ledger)
    market, asset = spec.name, spec.asset
    usdt = 10**spec.settlement_decimals
    price = round(spec.price * 10**spec.price_decimals)
    feed("MarketListed", market=market, settlement_asset=asset, settlement_decimals=spec.settlement_decimals,
         price_decimals=spec.price_decimals, size_decimals=spec.size_decimals,
         initial_margin_ppm=spec.initial_margin_ppm, maintenance_margin_ppm=spec.maintenance_margin_ppm,
         liquidation_fee_ppm=spec.liquidation_fee_ppm)
    feed("InsuranceFunded", market=market, amount=10_000_000 * usdt)
    feed("MarkPriceUpdate", market=market, price=price, price_seq=1)
    seq = 0

    def fund(user: str, amount: int) -> None:
        feed("DepositConfirmed", deposit_id=f"d-{user}", user=user, asset=asset, amount=amount)
        feed("MarginTransferRequested", transfer_id=f"m-{user}", user=user, market=market, asset=asset,
             amount=amount)

    def trade(buyer: str, seller: str, quantity: int) -> None:
        nonlocal seq
        seq += 1
        feed("TradeFill", source="me", market=market, trade_id=f"t{seq}", seq=seq, price=price, quantity=quantity,
             buyer=buyer, seller=seller, buyer_fee=0, seller_fee=0)

    healthy_pairs = max(0, n_positions // 2 - EDGE_PAIRS)
    for i in range(healthy_pairs):
        long, short = f"h{2 * i:06d}", f"h{2 * i + 1:06d}"
        fund(long, 10_000 * usdt)
        fund(short, 10_000 * usdt)
        trade(long, short, rng.randint(50, 100))  # 0.05 to 0.1 BTC: 3,250 to 6,500 USDT, ~0.5x
    im = spec.initial_margin_ppm
    for i in range(EDGE_PAIRS):
        long, short = f"e{2 * i:03d}", f"e{2 * i + 1:03d}"
        quantity = 100  # 0.1 BTC
        notional = quantity * price * usdt // 10 ** (spec.price_decimals + spec.size_decimals)
        margin = notional * (im + rng.randint(500, 3_000)) // 1_000_000  # 0.05% to 0.3% above the line
        fund(long, margin)
        fund(short, margin)
        trade(long, short, quantity)
    open_positions = sum(1 for _ in ledger.positions())
    return ledger, price, {"open_positions": open_positions, "events": feed.n, "ts_us": feed.ts_us}


def time_marks(ledger: Ledger, start_price: int, moves: int, seed: int, *, full_scan: bool,
               price_seq: int, ts_us: int) -> dict[str, Any]:
    """Time `moves` small mark moves (1 bp steps, mean-reverting), one submit each."""
    rng = random.Random(seed)
    market = MARKETS[0].name
    ledger.market.full_scan = full_scan
    index = ledger.market.risk(market)
    signals: Counter[str] = Counter()
    candidates = 0
    elapsed = 0.0
    price = start_price
    for n in range(moves):
        price = max(1, price + round(price * rng.gauss(0, 1e-4)) - (price - start_price) // 50)
        price_seq += 1
        ts_us += 10
        event = {"type": "MarkPriceUpdate", "event_id": f"mv{price_seq}", "source": "oracle", "ts_us": ts_us,
                 "market": market, "price": price, "price_seq": price_seq}
        candidates += len(index.candidates(price))  # what the update will check (not timed)
        started = time.process_time()
        outcomes = ledger.submit(event)
        elapsed += time.process_time() - started
        if outcomes[0].status != "applied":
            raise SystemExit(f"mark move {n} {outcomes[0].status} {outcomes[0].reason}")
        for signal in outcomes[0].signals:
            signals[signal.type] += 1
    ledger.market.full_scan = False
    return {"moves": moves, "us_per_update": elapsed / moves * 1e6, "signals": dict(signals),
            "mean_candidates": candidates / moves, "last_price_seq": price_seq, "ts_us": ts_us}


def scaling_part(sizes: list[int], moves: int, full_scan_moves: int, seed: int,
                 use_tracemalloc: bool) -> dict[str, Any]:
    print(f"== mark-update cost vs open positions (BTC-PERP; {EDGE_PAIRS * 2} positions near the line at every "
          f"size; {moves} moves of ~1 bp)")
    results: dict[str, Any] = {}
    for size in sizes:
        gc.collect()
        rss_before = rss()
        reset_peak_rss()
        started = time.perf_counter()
        ledger, price, info = build_market(size, seed)
        build_s = time.perf_counter() - started
        gc.collect()
        rss_delta = rss() - rss_before
        peak_delta = peak_rss() - rss_before
        positions = info["open_positions"]
        row: dict[str, Any] = {**info, "build_s": build_s, "rss_delta": rss_delta, "peak_rss_delta": peak_delta}
        row["index"] = time_marks(ledger, price, moves, seed, full_scan=False, price_seq=1, ts_us=info["ts_us"])
        if full_scan_moves:
            row["full_scan"] = time_marks(ledger, price, full_scan_moves, seed + 1, full_scan=True,
                                          price_seq=row["index"]["last_price_seq"], ts_us=row["index"]["ts_us"])
        census = store_census(ledger)
        del ledger
        traced = (0, 0)
        if use_tracemalloc:  # a second, identical build, measured by tracemalloc (which costs RSS itself)
            gc.collect()
            tracemalloc.start()
            ledger, _, _ = build_market(size, seed)
            traced = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del ledger
        row.update(traced=traced[0], traced_peak=traced[1], store=census)
        results[str(size)] = row
        per100k = 100_000 / positions
        print(f"  {positions:>7,} open positions: built from {info['events']:,} events in {build_s:.1f} s")
        print(f"      memory: RSS +{mib(rss_delta)} (peak +{mib(peak_delta)})"
              + (f", tracemalloc {mib(traced[0])} (peak {mib(traced[1])})" if use_tracemalloc else "")
              + f"  => per 100k positions: RSS {mib(rss_delta * per100k)}"
              + (f", traced {mib(traced[0] * per100k)}" if use_tracemalloc else ""))
        ix = row["index"]
        print(f"      mark update (risk index): {ix['us_per_update']:.1f} us/update, "
              f"{ix['mean_candidates']:.2f} candidates checked on average, signals {ix['signals']}")
        if full_scan_moves:
            fs = row["full_scan"]
            print(f"      mark update (full_scan reference, {full_scan_moves} moves): "
                  f"{fs['us_per_update']:,.0f} us/update")
        print(f"      store: {census}")
    if len(sizes) >= 2:
        small, large = results[str(sizes[0])], results[str(sizes[-1])]
        ratio = large["index"]["us_per_update"] / small["index"]["us_per_update"]
        print(f"  => cost ratio {sizes[-1]:,} vs {sizes[0]:,} positions: x{ratio:.2f} with the index"
              + (f", x{large['full_scan']['us_per_update'] / small['full_scan']['us_per_update']:.0f} with a full scan"
                 if full_scan_moves else ""))
        if use_tracemalloc:
            marginal = ((large["traced"] - small["traced"])
                        / (large["open_positions"] - small["open_positions"]) * 100_000)
            print(f"  => marginal memory per 100k positions (each with its user's deposit, margin transfer, "
                  f"fill and their dedup entries): traced {mib(marginal)}")
            results["marginal_traced_per_100k"] = marginal
        results["cost_ratio"] = ratio
    gc.collect()
    return results


# Part 2: the realistic mix ------------------------------------------------------------------------


def run_workload(workload: Workload, ledger: Ledger, *, profiler: cProfile.Profile | None = None,
                 gc_mode: str = "default") -> dict[str, Any]:
    """Drive the ledger with the workload, timing only `Ledger.submit`; collect what happened.

    With a profiler, it runs only inside `submit` during the mix. `gc_mode` applies to the mix:
    "freeze" moves everything the setup left to the permanent generation, "off" disables the GC.
    """
    submit = ledger.submit
    clock, cpu_clock = time.perf_counter, time.process_time
    setup_s = mix_s = mix_wall_in_submit = 0.0
    setup_events = setup_internal = mix_events = 0
    per_type: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    status: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    internal_reasons: Counter[str] = Counter()
    internal_types: Counter[str] = Counter()
    signals: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    examples: list[str] = []
    setup_rejected = 0
    wall_started = clock()
    setup_wall = 0.0
    gc_timer = GcTimer()
    while True:
        event = workload.next_event()
        if event is None:
            break
        in_setup = workload.in_setup
        if profiler is not None and not in_setup:
            profiler.enable()
            outcomes = submit(event)
            profiler.disable()
            elapsed = wall_elapsed = 0.0
        else:
            started, cpu_started = clock(), cpu_clock()
            outcomes = submit(event)
            elapsed = cpu_clock() - cpu_started
            wall_elapsed = clock() - started
        workload.observe(outcomes)
        if in_setup:
            setup_s += elapsed
            setup_events += 1
            setup_internal += len(outcomes) - 1
            setup_rejected += sum(1 for o in outcomes if o.status != "applied")
            setup_wall = clock() - wall_started
            continue
        if mix_events == 0:
            if gc_mode == "freeze":
                gc.collect()
                gc.freeze()
            elif gc_mode == "off":
                gc.disable()
            gc_timer.__enter__()
            mix_wall_started = clock()
        mix_s += elapsed
        mix_wall_in_submit += wall_elapsed
        mix_events += 1
        row = per_type[event.get("type") if isinstance(event.get("type"), str) else "?"]
        row[0] += 1
        row[1] += elapsed
        categories[workload.category] += 1
        first = outcomes[0]
        status[first.status] += 1
        want, want_internal = workload.expected
        got = first.reason if first.status == "rejected" else ("duplicate" if first.status == "duplicate" else None)
        if first.status == "rejected":
            reasons[first.reason] += 1
        if got != want:
            unexpected[f"{first.event_type}: got {got}, meant {want}"] += 1
            if len(examples) < 10:
                examples.append(f"{event} -> {first.status} {first.reason} {first.detail}")
        for outcome in outcomes[1:]:
            internal_types[outcome.event_type] += 1
            if outcome.status == "rejected":
                internal_reasons[outcome.reason] += 1
                if outcome.reason != want_internal:
                    unexpected[f"internal {outcome.event_type}: got {outcome.reason}, meant {want_internal}"] += 1
        for outcome in outcomes:
            for signal in outcome.signals:
                signals[signal.type] += 1
    mix_wall = clock() - mix_wall_started if mix_events else 0.0
    if mix_events:
        gc_timer.__exit__()
    gc.enable()
    gc.unfreeze()
    return {
        "setup_events": setup_events, "setup_internal": setup_internal, "setup_core_s": setup_s,
        "setup_wall_s": setup_wall, "setup_not_applied": setup_rejected,
        "mix_events": mix_events, "mix_core_s": mix_s, "mix_core_wall_s": mix_wall_in_submit, "mix_wall_s": mix_wall,
        "per_type": {k: tuple(v) for k, v in per_type.items()},
        "status": dict(status), "reasons": dict(reasons), "internal_reasons": dict(internal_reasons),
        "internal_types": dict(internal_types), "signals": dict(signals), "categories": dict(categories),
        "unexpected": dict(unexpected), "examples": examples,
        "gc_s": gc_timer.seconds, "gc_collections": dict(gc_timer.collections),
        "abandoned_liquidations": workload.abandoned_liquidations,
    }


def mix_part(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    print(f"== realistic mix: seed {args.seed}, {args.events:,} mix events, {args.markets} markets, "
          f"{args.users:,} users, gc {args.gc}")
    gc.collect()
    rss_before = rss()
    reset_peak_rss()
    workload = Workload(args.seed, args.events, args.markets, args.users)
    ledger = Ledger()
    result = run_workload(workload, ledger, gc_mode=args.gc)
    n, core_s = result["mix_events"], result["mix_core_s"]
    eps = n / core_s if core_s else 0.0
    internal = sum(result["internal_types"].values())
    setup_eps = result["setup_events"] / max(result["setup_core_s"], 1e-9)
    print(f"  setup: {result['setup_events']:,} events (+{result['setup_internal']:,} internal) in "
          f"{result['setup_core_s']:.1f} s CPU in submit ({setup_eps:,.0f} events/s; "
          f"{result['setup_wall_s']:.1f} s with the generator); not applied: {result['setup_not_applied']}")
    print(f"  mix:   {n:,} input events (+{internal:,} internal: {result['internal_types']}) in {core_s:.1f} s "
          f"of CPU inside Ledger.submit ({result['mix_core_wall_s']:.1f} s wall)")
    verdict = "MET" if eps >= TARGET_EVENTS_PER_S else f"NOT MET, x{TARGET_EVENTS_PER_S / max(eps, 1):.1f} short"
    print(f"  ==> {eps:,.0f} input events/s on one core ({(n + internal) / core_s:,.0f} incl. internal); "
          f"target {TARGET_EVENTS_PER_S:,}: {verdict}")
    print(f"      {n / result['mix_core_wall_s']:,.0f} events/s by wall time inside submit; "
          f"{n / result['mix_wall_s']:,.0f} events/s wall with the generator; "
          f"GC {result['gc_s']:.1f} s wall of it ({result['gc_collections']})")
    print("  mix by category: " + ", ".join(f"{k} {v:,} ({v / n:.2%})" for k, v in
                                            sorted(result["categories"].items(), key=lambda kv: -kv[1])))
    print("  cost by input type (count, share of events, us/event mean, share of core time):")
    for type_, (count, seconds) in sorted(result["per_type"].items(), key=lambda kv: -kv[1][1]):
        print(f"      {type_:<26} {count:>9,} {count / n:>7.2%} {seconds / count * 1e6:>10.1f} us "
              f"{seconds / core_s:>7.1%}")
    rejected = result["status"].get("rejected", 0)
    print(f"  outcomes: {result['status']}; rejection rate {rejected / n:.2%}")
    print(f"  rejections by reason: {dict(sorted(result['reasons'].items(), key=lambda kv: -kv[1]))}")
    print(f"  internal refusals (refunded): {result['internal_reasons']}")
    print(f"  unintended outcomes: {sum(result['unexpected'].values())} {result['unexpected'] or ''}")
    for example in result["examples"]:
        print(f"      e.g. {example}")
    print(f"  signals: {result['signals']}; liquidations abandoned by the driver: "
          f"{result['abandoned_liquidations']}")

    positions = list(ledger.positions())
    by_market = Counter(p.market for p in positions)
    held = rss() - rss_before
    peak = peak_rss() - rss_before
    print(f"  open positions at the end: {len(positions):,} ({dict(by_market.most_common())})")
    census = store_census(ledger)
    print(f"  store: {census}")
    per100k = 100_000 / max(1, len(positions))
    print(f"  memory: RSS +{mib(held)} (peak +{mib(peak)}; process peak {mib(peak_rss())}) for the ledger and the "
          f"driver => {mib(held * per100k)} per 100k open positions, dominated by the "
          f"{sum(v for k, v in census.items() if 'dedup' in k):,} dedup entries (7-day window, none expired)")
    broken = check_invariants(ledger)
    if broken:
        print("  !!! INVARIANTS BROKEN:")
        for line in broken:
            print(f"      {line}")
    else:
        print("  invariants: zero-sum per asset incl. external accounts, transit and funding pools at zero, "
              "open interest zero per market: OK")
    hashes = ledger.final_hashes()
    result.update({"events_per_s": eps, "open_positions": len(positions), "rss_delta": held, "peak_rss_delta": peak,
                   "store": census, "invariants_broken": broken, "final_hashes": hashes})
    ok = not broken
    del ledger, workload, positions
    gc.collect()
    if args.profile:
        ok &= profile_part(args, hashes)
    return result, ok


def profile_part(args: argparse.Namespace, expected_hashes: dict[str, str]) -> bool:
    print(f"== profile: the same workload into a fresh ledger, cProfile on inside Ledger.submit for the "
          f"{args.events:,} mix events")
    profiler = cProfile.Profile()
    ledger = Ledger()
    run_workload(Workload(args.seed, args.events, args.markets, args.users), ledger, profiler=profiler,
                 gc_mode=args.gc)
    hashes = ledger.final_hashes()
    ok = hashes == expected_hashes
    print(f"  determinism: final hashes {'equal to the timed run' if ok else 'DIFFER: ' + str(hashes)}")
    del ledger
    for sort, limit in (("tottime", 25), ("cumulative", 30)):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(sort).print_stats(limit)
        text = out.getvalue()
        print(f"  -- top {limit} by {sort} --")
        print(text[text.index("   ncalls"):].rstrip() if "   ncalls" in text else text)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the timed mix")
    parser.add_argument("--markets", type=int, default=10)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--scaling", default="1000,100000",
                        help="open-position counts for the mark-update test, comma-separated ('' to skip)")
    parser.add_argument("--moves", type=int, default=2000, help="timed mark moves per size")
    parser.add_argument("--full-scan-moves", type=int, default=20,
                        help="mark moves timed with full_scan=True for reference (0 to skip)")
    parser.add_argument("--no-tracemalloc", action="store_true", help="measure the scaling ledgers by RSS only")
    parser.add_argument("--skip-mix", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="run the workload again under cProfile: top 25 by tottime, top 30 by cumulative")
    parser.add_argument("--gc", choices=("perpledger", "default", "freeze", "off"), default="perpledger",
                        help="the garbage collector: at the thresholds the `perpledger` command sets, at "
                             "Python's defaults, frozen after the setup, or off during the mix")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.gc != "default":
        gc.set_threshold(*GC_THRESHOLDS)

    version = core_version()
    print(f"bench_core: core at {version}; Python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, gc thresholds {gc.get_threshold()}")
    results: dict[str, Any] = {"args": vars(args), "core": version}
    ok = True
    sizes = [int(s) for s in args.scaling.split(",") if s.strip()]
    if sizes:
        results["scaling"] = scaling_part(sizes, args.moves, args.full_scan_moves, args.seed,
                                          not args.no_tracemalloc)
    if not args.skip_mix:
        results["mix"], ok = mix_part(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=1, default=str)
    if not ok:
        print("bench_core: FAILED (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
