"""Greedy Kangaroo chain drafting, simulated from teacher-forced predictions (pure Python; no torch).

Positions are "predicting positions": at position p the context is tokens[0..p] and
  draft[p]   the adapter's argmax for token p+1, conf[p] its softmax probability,
  target[p]  the token the verifier emits at p+1 (the full model's greedy choice).
A round starting at p drafts draft[p], draft[p+1], ...: draft k is taken from position p+k, which is exact as long as
drafts 0..k-1 matched (the context then equals the verified sequence). The round stops drafting
  * at a draft that differs from target (rejected),
  * after a draft whose conf < eta (that draft is still verified: accepted if it matches),
  * after gamma drafts, or when only the verifier's token is left to produce.
tokens = accepted + 1 (the verifier's token); the next round starts at p + tokens.

"drafts" counts drafts up to the first rejected one. A real drafter cannot see the rejection and keeps drafting
until its confidence stop or gamma, in a context that has left the verified sequence, so its draft count is
higher; tokens per round are exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class ChainStats:
    rounds: int = 0
    tokens: int = 0
    drafts: int = 0
    accepted: int = 0

    def add(self, other: "ChainStats") -> None:
        self.rounds += other.rounds
        self.tokens += other.tokens
        self.drafts += other.drafts
        self.accepted += other.accepted

    def summary(self) -> dict:
        r = max(self.rounds, 1)
        return {
            "tokens_per_round": round(self.tokens / r, 4),
            "drafts_per_round": round(self.drafts / r, 4),
            "accepted_per_round": round(self.accepted / r, 4),
            "acceptance_rate": round(self.accepted / max(self.drafts, 1), 4),
            "rounds": self.rounds, "tokens": self.tokens, "drafts": self.drafts, "accepted": self.accepted,
        }


def simulate_chain(draft: Sequence[int], conf: Sequence[float], target: Sequence[int],
                   start: int, end: int, eta: float, gamma: int) -> ChainStats:
    """Rounds producing the tokens of predicting positions [start, end) (see the module docstring)."""
    stats = ChainStats()
    p = start
    while p < end:
        most = min(gamma, end - 1 - p)   # leave the last token of the range to the verifier
        drafted = accepted = 0
        while drafted < most:
            q = p + drafted
            drafted += 1
            if draft[q] != target[q]:
                break
            accepted += 1
            if conf[q] < eta:
                break
        produced = accepted + 1
        stats.rounds += 1
        stats.tokens += produced
        stats.drafts += drafted
        stats.accepted += accepted
        p += produced
    return stats
