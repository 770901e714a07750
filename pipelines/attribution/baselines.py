"""Classic attribution of conversions to campaigns, on the same journeys as the attention model, and the
comparison of any attribution with ground truth.

A journey is (campaigns in time order, hours of each touch before the journey's last touch, converted).
Rule-based methods split each conversion over its journey's touches: last touch, first touch, linear (equal
shares), time decay (weights 2^(-hours / half life)). The Markov method (first order, Anderl et al. 2016) fits
transition probabilities start -> campaign -> ... -> conversion | null over all journeys and gives each
campaign a share of the conversions proportional to its removal effect, 1 - P(conversion without it) /
P(conversion). Position-based (U-shaped) gives 40% to the first touch, 40% to the last and 20% to those between.
Shapley on conversion rates (Zhao et al. 2018, "Shapley value methods for attribution modeling in online
advertising") values a set of campaigns by the observed conversion rate of the journeys whose campaigns are
exactly that set (0 when no journey has it) and splits each conversion by its set's Shapley values.
Results are {campaign: attributed conversions}; their total is the number of conversions.
"""
import collections
from typing import Dict, Iterable, List, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import stats

from pipelines.attribution.shapley import coalitions, shapley

METHODS = ('last_touch', 'first_touch', 'linear', 'position_based', 'time_decay', 'markov', 'shapley_rates')


class Journey(NamedTuple):
  """One journey's real touches (no padding)."""
  campaigns: Sequence[str]
  hours_before_end: Sequence[float]
  converted: bool


def _split_each_conversion(journeys: Iterable[Journey], shares) -> Dict[str, float]:
  attributed: Dict[str, float] = collections.defaultdict(float)
  for journey in journeys:
    if journey.converted and journey.campaigns:
      weights = np.asarray(shares(journey), float)
      for campaign, weight in zip(journey.campaigns, weights / weights.sum()):
        attributed[campaign] += float(weight)
  return dict(attributed)


def last_touch(journeys: Iterable[Journey]) -> Dict[str, float]:
  """Each conversion to its journey's last touch."""
  return _split_each_conversion(journeys, lambda j: [0.0] * (len(j.campaigns) - 1) + [1.0])


def first_touch(journeys: Iterable[Journey]) -> Dict[str, float]:
  """Each conversion to its journey's first touch."""
  return _split_each_conversion(journeys, lambda j: [1.0] + [0.0] * (len(j.campaigns) - 1))


def linear(journeys: Iterable[Journey]) -> Dict[str, float]:
  """Each conversion in equal shares over its journey's touches."""
  return _split_each_conversion(journeys, lambda j: [1.0] * len(j.campaigns))


def position_based(journeys: Iterable[Journey], first: float = 0.4, last: float = 0.4) -> Dict[str, float]:
  """Each conversion `first` to the first touch, `last` to the last, the rest equally to the touches between;
  a journey of one touch gives it everything, of two touches splits in proportion first : last."""
  def shares(journey: Journey) -> List[float]:
    n = len(journey.campaigns)
    if n <= 2:
      return [1.0] if n == 1 else [first, last]
    return [first] + [(1.0 - first - last) / (n - 2)] * (n - 2) + [last]
  return _split_each_conversion(journeys, shares)


def shapley_on_conversion_rates(journeys: Sequence[Journey], max_exact: int = 8,
                                permutations: int = 64) -> Dict[str, float]:
  """Zhao et al. 2018: v(S) = observed conversion rate of the journeys with exactly the campaign set S (0 for a
  set no journey has, and for the empty set); each set's conversions are split by its members' Shapley values
  under v (exact up to `max_exact` campaigns, else seeded sampled orders)."""
  journeys_of: Dict[frozenset, int] = collections.Counter()
  conversions_of: Dict[frozenset, int] = collections.Counter()
  for journey in journeys:
    if journey.campaigns:
      members = frozenset(journey.campaigns)
      journeys_of[members] += 1
      conversions_of[members] += int(journey.converted)
  attributed: Dict[str, float] = collections.defaultdict(float)
  for members, conversions in sorted(conversions_of.items(), key=lambda item: sorted(item[0])):
    if not conversions:
      continue
    players = sorted(members)
    masks, orders = coalitions(players, max_exact, permutations, '|'.join(players))
    value = {}
    for mask in masks:
      subset = frozenset(p for i, p in enumerate(players) if mask >> i & 1)
      value[mask] = conversions_of[subset] / journeys_of[subset] if journeys_of.get(subset) else 0.0
    phi = shapley(len(players), value, orders)
    for player, share in zip(players, phi):
      attributed[player] += conversions * share / value[(1 << len(players)) - 1]
  return dict(attributed)


def time_decay(journeys: Iterable[Journey], half_life_hours: float) -> Dict[str, float]:
  """Each conversion over its journey's touches with weights halving every `half_life_hours` before the end."""
  return _split_each_conversion(
      journeys, lambda j: [2.0 ** (-float(h) / half_life_hours) for h in j.hours_before_end])


def markov_removal_effects(journeys: Iterable[Journey]) -> Dict[str, float]:
  """First-order Markov chain over start, campaigns, conversion and null: each campaign's removal effect
  1 - P(conversion | campaign removed) / P(conversion); removing a campaign sends its incoming transitions to
  null. Repeated touches of one campaign are self-transitions. Empty dict without conversions."""
  transitions: Dict[str, Dict[str, int]] = collections.defaultdict(lambda: collections.defaultdict(int))
  for journey in journeys:
    path = ['(start)'] + list(journey.campaigns) + ['(conversion)' if journey.converted else '(null)']
    for source, target in zip(path[:-1], path[1:]):
      transitions[source][target] += 1
  campaigns = sorted({c for targets in transitions.values() for c in targets} - {'(conversion)', '(null)'})
  states = ['(start)'] + campaigns
  index = {state: i for i, state in enumerate(states)}
  transient = np.zeros((len(states), len(states)))
  to_conversion = np.zeros(len(states))
  for source, targets in transitions.items():
    total = sum(targets.values())
    for target, count in targets.items():
      if target in index:
        transient[index[source], index[target]] = count / total
    to_conversion[index[source]] = targets.get('(conversion)', 0) / total

  def conversion_probability(removed: List[int]) -> float:
    kept = transient.copy()
    kept[:, removed] = 0.0
    return float(np.linalg.solve(np.eye(len(states)) - kept, to_conversion)[0])

  base = conversion_probability([])
  if base <= 0:
    return {}
  return {c: 1.0 - conversion_probability([index[c]]) / base for c in campaigns}


def markov(journeys: Sequence[Journey]) -> Dict[str, float]:
  """The conversions shared out in proportion to the campaigns' Markov removal effects."""
  effects = markov_removal_effects(journeys)
  total_effect = sum(effects.values())
  conversions = sum(1 for j in journeys if j.converted and j.campaigns)
  if total_effect <= 0:
    return {c: 0.0 for c in effects}
  return {c: conversions * effect / total_effect for c, effect in effects.items()}


def all_baselines(journeys: Sequence[Journey], half_life_hours: float) -> Dict[str, Dict[str, float]]:
  """{method: {campaign: attributed conversions}} for every method in METHODS."""
  return {'last_touch': last_touch(journeys), 'first_touch': first_touch(journeys), 'linear': linear(journeys),
          'position_based': position_based(journeys), 'time_decay': time_decay(journeys, half_life_hours),
          'markov': markov(journeys), 'shapley_rates': shapley_on_conversion_rates(journeys)}


def compare(attributed: Mapping[str, float], truth: Mapping[str, float]) -> Dict[str, float]:
  """Spearman rank correlation and total absolute error of an attribution against the true incremental
  conversions, over the campaigns of the ground truth (a campaign without attribution counts 0)."""
  campaigns = sorted(truth)
  estimated = np.array([attributed.get(c, 0.0) for c in campaigns])
  true = np.array([truth[c] for c in campaigns], float)
  rho = stats.spearmanr(estimated, true).correlation if len(campaigns) > 1 else float('nan')
  return {'spearman': float(rho), 'abs_error': float(np.abs(estimated - true).sum())}
