"""Classic attribution of conversions to campaigns, on the same journeys as the attention model, and the
comparison of any attribution with ground truth.

A journey is (campaigns in time order, hours of each touch before the journey's last touch, converted).
Rule-based methods split each conversion over its journey's touches: last touch, first touch, linear (equal
shares), time decay (weights 2^(-hours / half life)). The Markov method (first order, Anderl et al. 2016) fits
transition probabilities start -> campaign -> ... -> conversion | null over all journeys and gives each
campaign a share of the conversions proportional to its removal effect, 1 - P(conversion without it) /
P(conversion). Results are {campaign: attributed conversions}; their total is the number of conversions.
"""
import collections
from typing import Dict, Iterable, List, Mapping, NamedTuple, Sequence

import numpy as np
from scipy import stats

METHODS = ('last_touch', 'first_touch', 'linear', 'time_decay', 'markov')


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
          'time_decay': time_decay(journeys, half_life_hours), 'markov': markov(journeys)}


def compare(attributed: Mapping[str, float], truth: Mapping[str, float]) -> Dict[str, float]:
  """Spearman rank correlation and total absolute error of an attribution against the true incremental
  conversions, over the campaigns of the ground truth (a campaign without attribution counts 0)."""
  campaigns = sorted(truth)
  estimated = np.array([attributed.get(c, 0.0) for c in campaigns])
  true = np.array([truth[c] for c in campaigns], float)
  rho = stats.spearmanr(estimated, true).correlation if len(campaigns) > 1 else float('nan')
  return {'spearman': float(rho), 'abs_error': float(np.abs(estimated - true).sum())}
