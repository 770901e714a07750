"""Shapley values of the few players of one journey (or campaign set): exact over every subset when there are
few, else the mean marginal contribution over permutations drawn with a seed. Coalitions are bitmasks
(bit i set: player i in)."""
import functools
import hashlib
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np


def coalitions(campaigns: Sequence[str], max_exact: int, permutations: int, seed: str
               ) -> Tuple[List[int], List[List[int]]]:
  """The bitmasks (bit i: campaigns[i] kept) whose values the credits need, and the orders used for Shapley
  (empty list: exact Shapley over every subset). Always holds the full set, the empty set and every
  leave-one-out set (removal effect)."""
  n = len(campaigns)
  full = (1 << n) - 1
  if n <= max_exact:
    return list(range(full + 1)), []
  rng = np.random.default_rng(int(hashlib.md5(seed.encode('utf-8')).hexdigest()[:8], 16))
  orders = [list(rng.permutation(n)) for _ in range(permutations)]
  needed = {0, full} | {full & ~(1 << i) for i in range(n)}
  for order in orders:
    mask = 0
    for i in order:
      mask |= 1 << int(i)
      needed.add(mask)
  return sorted(needed), orders


@functools.lru_cache(maxsize=None)
def exact_matrix(n: int) -> np.ndarray:
  """[n, 2^n]: exact Shapley values are this matrix times the coalition values in bitmask order."""
  matrix = np.zeros((n, 1 << n))
  for i in range(n):
    bit = 1 << i
    for mask in range(1 << n):
      if not mask & bit:
        size = bin(mask).count('1')
        weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
        matrix[i, mask | bit] += weight
        matrix[i, mask] -= weight
  return matrix


def shapley(n: int, value: Dict[int, float], orders: List[List[int]]) -> np.ndarray:
  """Shapley values of n players from coalition values (bitmask -> value): exact without orders, else the mean
  marginal contribution over the given orders."""
  if not orders:
    return exact_matrix(n) @ np.array([value[mask] for mask in range(1 << n)])
  phi = np.zeros(n)
  for order in orders:
    mask = 0
    for i in order:
      phi[i] += value[mask | (1 << int(i))] - value[mask]
      mask |= 1 << int(i)
  return phi / len(orders)
