"""Seeded simulator of ad impressions and conversions, with each campaign's true incremental conversions.

Model (one day = one conversion opportunity per user):
- every campaign k reaches each user with `daily_rate[k] * activity[user]` impressions per day (Poisson, uniform
  times; `activity` ~ Gamma(2, 0.5) per user, mean 1);
- at the end of each day d the user converts with probability sigmoid(base_logit + S), where the stock
  S = sum over the impressions j of the current journey seen by then of effect[c_j] * exp(-age_j / tau): campaigns
  add to the odds (`effect`), recent touches more than old ones (recency, `tau_days`), and users convert without
  any campaign at the base rate; the day's conversion happens when uniforms[user, d] < that probability;
- a conversion closes the journey (the stock restarts at 0) and is written on the last impression before it
  (`conversion` = 1); a conversion with no impression in its journey is organic and leaves no row.

Ground truth: for each campaign the simulation is re-run with that campaign's impressions removed and the same
random draws (impression times and the daily uniforms); its true incremental conversions are the conversions of
the full run minus those of the run without it (all conversions, organic ones included).

Bundled campaigns: high reach with little effect (c01-c03), middling ones (c04-c11, c09 with no effect at all)
and low reach with a large effect (c12-c15).

Run: python -m pipelines.attribution.simulate [--users 20000] [--days 28] [--seed 7] [--sample-users 2500]
writes impressions.csv, ground_truth.csv, impressions_sample.csv and ground_truth_sample.csv (the first
`--sample-users` users and their share of the ground truth) beside this file.
"""
import argparse
import csv
import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'data', 'attribution')
DAY = 86400
EPOCH = 1704067200  # 2024-01-01T00:00:00Z: timestamp of simulated second 0
# (name, impressions per user per day at activity 1, effect on the daily conversion log-odds)
CAMPAIGNS: List[Tuple[str, float, float]] = [
    ('c01', 0.060, 0.05), ('c02', 0.050, 0.10), ('c03', 0.040, 0.15),
    ('c04', 0.025, 0.60), ('c05', 0.025, 0.90), ('c06', 0.020, 0.40), ('c07', 0.020, 1.20),
    ('c08', 0.015, 0.30), ('c09', 0.015, 0.00), ('c10', 0.012, 0.80), ('c11', 0.012, 1.50),
    ('c12', 0.006, 2.00), ('c13', 0.005, 2.50), ('c14', 0.004, 1.80), ('c15', 0.004, 3.00),
]
BASE_LOGIT = -5.0   # daily conversion log-odds without any campaign (about 0.67% a day)
TAU_DAYS = 2.0      # an impression's effect decays by 1/e every TAU_DAYS


@dataclasses.dataclass(frozen=True)
class Impressions:
  """Impressions in time order: user index, second since the start, campaign index (numpy int arrays)."""
  user: np.ndarray
  time: np.ndarray
  campaign: np.ndarray


def draw(n_users: int, days: int, daily_rates: Sequence[float], seed: int) -> Tuple[Impressions, np.ndarray]:
  """The random draws of one simulation: the impressions and the daily uniforms [n_users, days]."""
  rng = np.random.default_rng(seed)
  activity = rng.gamma(2.0, 0.5, size=n_users)
  users, campaigns = [], []
  for k, rate in enumerate(daily_rates):
    counts = rng.poisson(rate * activity * days)
    users.append(np.repeat(np.arange(n_users), counts))
    campaigns.append(np.full(int(counts.sum()), k))
  user, campaign = np.concatenate(users), np.concatenate(campaigns)
  time = rng.integers(0, days * DAY, size=len(user))
  order = np.lexsort((campaign, user, time))
  uniforms = rng.random((n_users, days))
  return Impressions(user=user[order], time=time[order], campaign=campaign[order]), uniforms


def simulate(impressions: Impressions, uniforms: np.ndarray, effects: Sequence[float], base_logit: float,
             tau_days: float, keep: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
  """Runs the conversion process over the impressions where `keep` (default all) is true.

  Returns (conversions per user, a bool per impression: a conversion followed it, i.e. it is the journey's last).
  """
  n_users, days = uniforms.shape
  keep = np.ones(len(impressions.user), bool) if keep is None else keep
  effects = np.asarray(effects, float)
  stock = np.zeros(n_users)
  last = np.full(n_users, -1)  # index of the current journey's latest impression, -1: none yet
  conversions = np.zeros(n_users, int)
  converted_after = np.zeros(len(impressions.user), bool)
  day_of = impressions.time // DAY
  for day in range(days):
    stock *= np.exp(-1.0 / tau_days)
    today = np.flatnonzero((day_of == day) & keep)
    age_days = ((day + 1) * DAY - impressions.time[today]) / DAY
    stock += np.bincount(impressions.user[today], effects[impressions.campaign[today]] * np.exp(-age_days / tau_days),
                         minlength=n_users)
    np.maximum.at(last, impressions.user[today], today)  # impressions are in time order: larger index = later
    converts = uniforms[:, day] < 1.0 / (1.0 + np.exp(-(base_logit + stock)))
    conversions += converts
    converted_after[last[converts & (last >= 0)]] = True
    stock[converts] = 0.0
    last[converts] = -1
  return conversions, converted_after


def incremental_conversions(impressions: Impressions, uniforms: np.ndarray, effects: Sequence[float],
                            base_logit: float, tau_days: float) -> np.ndarray:
  """[n_campaigns, n_users]: conversions of the full run minus those without each campaign (same draws)."""
  full, _ = simulate(impressions, uniforms, effects, base_logit, tau_days)
  return np.stack([full - simulate(impressions, uniforms, effects, base_logit, tau_days,
                                   keep=impressions.campaign != k)[0] for k in range(len(effects))])


def _write_impressions(path: str, impressions: Impressions, converted_after: np.ndarray, names: Sequence[str],
                       users: np.ndarray) -> int:
  rows = np.flatnonzero(np.isin(impressions.user, users))
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['uid', 'timestamp', 'campaign', 'conversion'])
    for i in rows:
      writer.writerow([f'u{impressions.user[i]:06d}', EPOCH + int(impressions.time[i]),
                       names[impressions.campaign[i]], int(converted_after[i])])
  return len(rows)


def _write_truth(path: str, incremental: np.ndarray, impressions: Impressions, users: np.ndarray) -> None:
  in_users = np.isin(impressions.user, users)
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['campaign', 'true_incremental_conversions', 'impressions', 'daily_rate', 'effect'])
    for k, (name, rate, effect) in enumerate(CAMPAIGNS):
      writer.writerow([name, int(incremental[k, users].sum()), int(np.sum(in_users & (impressions.campaign == k))),
                       rate, effect])


def main() -> None:
  """Simulates the bundled data set and writes it with its ground truth (see the module docstring)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--users', type=int, default=20000)
  parser.add_argument('--days', type=int, default=28)
  parser.add_argument('--seed', type=int, default=7)
  parser.add_argument('--sample-users', type=int, default=2500)
  parser.add_argument('--output', default=DATA_DIR)
  args = parser.parse_args()
  names, rates, effects = zip(*CAMPAIGNS)
  impressions, uniforms = draw(args.users, args.days, rates, args.seed)
  conversions, converted_after = simulate(impressions, uniforms, effects, BASE_LOGIT, TAU_DAYS)
  incremental = incremental_conversions(impressions, uniforms, effects, BASE_LOGIT, TAU_DAYS)
  for suffix, users in (('', np.arange(args.users)), ('_sample', np.arange(args.sample_users))):
    rows = _write_impressions(os.path.join(args.output, f'impressions{suffix}.csv'), impressions, converted_after,
                              names, users)
    _write_truth(os.path.join(args.output, f'ground_truth{suffix}.csv'), incremental, impressions, users)
    print(f'impressions{suffix}.csv: {len(users)} users, {rows} impressions, '
          f'{int(converted_after[np.isin(impressions.user, users)].sum())} observed conversions '
          f'({int(conversions[users].sum())} in all, organic included)')
  print('true incremental conversions:', dict(zip(names, incremental.sum(axis=1).tolist())))


if __name__ == '__main__':
  main()
