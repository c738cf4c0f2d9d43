"""Which journal batches are new, which are copies, and whether each chain links up (pure).

A batch is identified by its hash chain (stage, input partition) and its `batch_seq`. Workers send
a batch again after a crash (an identical copy), so per chain only a `batch_seq` beyond the last one
kept is new. A new batch must be the next one and name the last one's hash as `prev_hash`; anything
else is a chain break: it is still written (nothing read is dropped) and reported.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from enum import Enum

from streams.core.hashchain import GENESIS_HASH

Chain = tuple[str, int]  # (stage, input partition)


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    BREAK = "break"  # new, but not linked to the last batch kept: a gap or a wrong prev_hash
    CONFLICT = "conflict"  # a copy of a kept batch_seq with another hash: dropped and reported


def chain_of(batch: dict) -> Chain:
    """The hash chain of a decoded journal batch (-1: a batch of no input partition)."""
    return batch["stage"], -1 if batch["input_partition"] is None else batch["input_partition"]


def chain_label(chain: Chain) -> str:
    return f"{chain[0]}-{chain[1]}"


class ChainTips:
    """The last batch kept per chain: (batch_seq, hash)."""

    def __init__(self, tips: dict[Chain, tuple[int, str]] | None = None) -> None:
        self.tips: dict[Chain, tuple[int, str]] = dict(tips or {})
        # Hashes of recent batches per chain, to tell an identical copy from a conflicting one.
        self._recent: dict[Chain, OrderedDict[int, str]] = {}

    def all_new(self, batches: Iterable[tuple[Chain, int, str, str]]) -> bool:
        """Whether `judge` would find each of these (chain, batch_seq, prev_hash, hash), in this order,
        NEW. Changes nothing."""
        tips: dict[Chain, tuple[int, str]] = {}
        for chain, batch_seq, prev_hash, batch_hash in batches:
            last_seq, last_hash = tips.get(chain) or self.tips.get(chain, (0, GENESIS_HASH))
            if batch_seq != last_seq + 1 or prev_hash != last_hash:
                return False
            tips[chain] = (batch_seq, batch_hash)
        return True

    def judge(self, chain: Chain, batch_seq: int, prev_hash: str, batch_hash: str) -> Verdict:
        """The verdict on a batch, keeping it as the chain's tip if it is new."""
        last_seq, last_hash = self.tips.get(chain, (0, GENESIS_HASH))
        if batch_seq <= last_seq:
            known = self._recent.get(chain, {}).get(batch_seq)
            return Verdict.CONFLICT if known is not None and known != batch_hash else Verdict.DUPLICATE
        verdict = Verdict.NEW
        if batch_seq != last_seq + 1 or prev_hash != last_hash:
            verdict = Verdict.BREAK
        self.tips[chain] = (batch_seq, batch_hash)
        recent = self._recent.get(chain)
        if recent is None:  # not setdefault: that would build an OrderedDict for every batch
            recent = self._recent[chain] = OrderedDict()
        recent[batch_seq] = batch_hash
        if len(recent) > 4096:  # copies arrive close to their originals; bound the memory
            recent.popitem(last=False)
        return verdict
