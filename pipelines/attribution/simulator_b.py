"""A second impressions simulator with ground truth, built from a funnel description (not from simulate.py's).

The world, one step a day per user:
- a user has a latent `engagement` (normal) that raises both site visits and purchases (a confounder);
- exogenous campaigns reach users at random (Poisson, `activity`-scaled): upper-funnel video / display / podcast /
  CTV with a large effect that decays slowly (tau 10-21 days), mid-funnel social / native / email / generic
  search with smaller, shorter effects;
- every campaign k keeps a stock S_k (each impression adds exp(-age / tau_k), the stock decays by exp(-1 / tau_k)
  a day) and adds effect_k * (1 - exp(-S_k)) to the purchase log-odds: saturation, a second impression adds less;
- endogenous campaigns answer the user's behaviour: "Search - Brand" on the days the user searches (more often
  when engaged or already persuaded; a small effect), "Affiliate/Coupons" on some visit days (small effect), and
  "Retargeting - Display" on the three days after a site visit (NO effect): it reaches engaged users late in
  their journeys, right before the purchases they were going to make anyway;
- at the end of each day the user buys when uniform < sigmoid(base + 0.6 engagement + sum_k contributions); a
  purchase empties the stocks and stops retargeting; it is written on the journey's last impression, and one
  without impressions in its journey is organic and leaves no row.

Ground truth: the run is repeated with one campaign's impressions withheld under the same random draws (exposure
times, visit / search / coupon / purchase uniforms); a campaign's true incremental conversions are the full
run's purchases minus that run's. Withholding an upper-funnel campaign also changes visits, hence retargeting.

Run: python -m pipelines.attribution.simulator_b OUT_DIR [--users 12000] [--days 28] [--seed 11]
writes OUT_DIR/impressions.csv (uid,timestamp,campaign,conversion) and OUT_DIR/ground_truth.csv
(campaign,true_incremental_conversions,impressions,kind,effect).
"""
import argparse
import csv
import dataclasses
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

DAY = 86400
EPOCH = 1717200000  # 2024-06-01T00:00:00Z


class Campaign(NamedTuple):
  """name; kind: 'exogenous' (random reach), 'search', 'coupon' or 'retargeting' (answers behaviour);
  rate: impressions a day per user at activity 1 (exogenous only); effect on the purchase log-odds at
  saturation; tau_days: how long an impression's effect lasts."""
  name: str
  kind: str
  rate: float
  effect: float
  tau_days: float


CAMPAIGNS: List[Campaign] = [
    Campaign('Video - YouTube Prospecting', 'exogenous', 0.050, 1.40, 21.0),
    Campaign('Display - Prospecting', 'exogenous', 0.080, 0.90, 14.0),
    Campaign('CTV - Streaming', 'exogenous', 0.015, 1.20, 14.0),
    Campaign('Podcast Sponsorship', 'exogenous', 0.010, 0.80, 21.0),
    Campaign('Social - Facebook Prospecting', 'exogenous', 0.060, 0.45, 7.0),
    Campaign('Social - Instagram Stories', 'exogenous', 0.040, 0.20, 3.0),
    Campaign('Native - Taboola', 'exogenous', 0.070, 0.05, 2.0),
    Campaign('Email - Newsletter', 'exogenous', 0.030, 0.30, 2.0),
    Campaign('Search - Generic', 'exogenous', 0.020, 0.60, 1.0),
    Campaign('Search - Brand', 'search', 0.0, 0.25, 1.0),
    Campaign('Affiliate/Coupons', 'coupon', 0.0, 0.15, 0.5),
    Campaign('Retargeting - Display', 'retargeting', 0.0, 0.00, 1.0),
]


@dataclasses.dataclass(frozen=True)
class World:
  """Everything random in one simulation, drawn once and shared by the full run and every removal run.
  exposures: exogenous impressions (user, second, campaign index) in time order; the [users, days] arrays are
  the daily uniforms and the times (second of the day) an endogenous impression would take; retarget_times
  [users, days, slots] with NaN for no slot."""
  engagement: np.ndarray
  exposure_user: np.ndarray
  exposure_time: np.ndarray
  exposure_campaign: np.ndarray
  purchase_uniform: np.ndarray
  visit_uniform: np.ndarray
  search_uniform: np.ndarray
  coupon_uniform: np.ndarray
  search_time: np.ndarray
  coupon_time: np.ndarray
  retarget_times: np.ndarray


@dataclasses.dataclass(frozen=True)
class Rules:
  """The behaviour's constants (log-odds a day) and the campaigns."""
  campaigns: Sequence[Campaign] = tuple(CAMPAIGNS)
  purchase_base: float = -5.8
  purchase_engagement: float = 0.6
  visit_base: float = -4.0
  visit_gain: float = 1.0       # persuaded users (high contribution) visit more
  search_base: float = -4.5
  search_engagement: float = 0.8
  coupon_probability: float = 0.3
  retarget_days: int = 3


def random_reach(rng: np.random.Generator, activity: np.ndarray, reach: Sequence[Tuple[int, float]], days: int
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Impressions of campaigns that reach users at random: (user, second, campaign index) in time order, a
  Poisson count per user and campaign (index, impressions a day at activity 1), times uniform over the days."""
  users, campaigns = [], []
  for k, rate in reach:
    counts = rng.poisson(rate * activity * days)
    users.append(np.repeat(np.arange(len(activity)), counts))
    campaigns.append(np.full(int(counts.sum()), k))
  user, campaign = np.concatenate(users), np.concatenate(campaigns)
  time = rng.integers(0, days * DAY, size=len(user))
  order = np.lexsort((campaign, user, time))
  return user[order], time[order], campaign[order]


def draw(n_users: int, days: int, seed: int, rules: Rules = Rules()) -> World:
  """The random draws of one world (see World)."""
  rng = np.random.default_rng(seed)
  activity = rng.gamma(2.0, 0.5, size=n_users)
  engagement = rng.normal(0.0, 1.0, size=n_users)
  user, time, campaign = random_reach(rng, activity, [(k, c.rate) for k, c in enumerate(rules.campaigns)
                                                      if c.kind == 'exogenous'], days)
  slots = rng.poisson(0.8, size=(n_users, days))
  retarget = rng.integers(0, DAY, size=(n_users, days, 4)).astype(float)
  retarget[np.arange(4)[None, None, :] >= slots[:, :, None]] = np.nan
  return World(engagement=engagement, exposure_user=user, exposure_time=time,
               exposure_campaign=campaign, purchase_uniform=rng.random((n_users, days)),
               visit_uniform=rng.random((n_users, days)), search_uniform=rng.random((n_users, days)),
               coupon_uniform=rng.random((n_users, days)), search_time=rng.integers(0, DAY, (n_users, days)),
               coupon_time=rng.integers(0, DAY, (n_users, days)), retarget_times=retarget)


def _sigmoid(x: np.ndarray) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-x))


class Outcome(NamedTuple):
  """One run: purchases per user, the impressions shown (user, second, campaign index; time order) and the
  purchases as (user, day)."""
  purchases: np.ndarray
  user: np.ndarray
  time: np.ndarray
  campaign: np.ndarray
  purchase_events: List[Tuple[int, int]]


def simulate(world: World, rules: Rules = Rules(), withheld: Optional[int] = None) -> Outcome:
  """Runs the days with campaign `withheld` (index) never shown (None: every campaign); see the module docstring."""
  n_users, days = world.purchase_uniform.shape
  effect = np.array([c.effect for c in rules.campaigns])
  tau = np.array([c.tau_days for c in rules.campaigns])
  decay = np.exp(-1.0 / tau)
  kind_index = {c.kind: k for k, c in enumerate(rules.campaigns) if c.kind != 'exogenous'}
  stock = np.zeros((n_users, len(rules.campaigns)))
  retarget_until = np.full(n_users, -1)  # last day retargeting may show (after a visit, before a purchase)
  purchases = np.zeros(n_users, int)
  shown: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
  events: List[Tuple[int, int]] = []
  exposure_day = world.exposure_time // DAY
  everyone = np.arange(n_users)
  for day in range(days):
    stock *= decay
    persuaded = (effect * (1.0 - np.exp(-stock))).sum(axis=1)  # at the start of the day
    today_user, today_time, today_campaign = [], [], []
    exo = np.flatnonzero(exposure_day == day)
    today_user.append(world.exposure_user[exo])
    today_time.append(world.exposure_time[exo] % DAY)
    today_campaign.append(world.exposure_campaign[exo])
    searches = world.search_uniform[:, day] < _sigmoid(
        rules.search_base + rules.search_engagement * world.engagement + persuaded)
    visits = world.visit_uniform[:, day] < _sigmoid(
        rules.visit_base + world.engagement + rules.visit_gain * persuaded)
    coupons = visits & (world.coupon_uniform[:, day] < rules.coupon_probability)
    for kind, who, when in (('search', searches, world.search_time[:, day]),
                            ('coupon', coupons, world.coupon_time[:, day])):
      if kind in kind_index:
        today_user.append(everyone[who])
        today_time.append(when[who])
        today_campaign.append(np.full(int(who.sum()), kind_index[kind]))
    if 'retargeting' in kind_index:
      slots = world.retarget_times[:, day, :]
      eligible = (retarget_until >= day)[:, None] & ~np.isnan(slots)
      rows, columns = np.nonzero(eligible)
      today_user.append(rows)
      today_time.append(slots[rows, columns].astype(int))
      today_campaign.append(np.full(len(rows), kind_index['retargeting']))
    retarget_until[visits] = day + rules.retarget_days
    user, time, campaign = (np.concatenate(a) for a in (today_user, today_time, today_campaign))
    if withheld is not None:
      keep = campaign != withheld
      user, time, campaign = user[keep], time[keep], campaign[keep]
    age_days = (DAY - time) / DAY
    np.add.at(stock, (user, campaign), np.exp(-age_days / tau[campaign]))
    contribution = (effect * (1.0 - np.exp(-stock))).sum(axis=1)
    buys = world.purchase_uniform[:, day] < _sigmoid(
        rules.purchase_base + rules.purchase_engagement * world.engagement + contribution)
    purchases += buys
    events += [(int(u), day) for u in np.flatnonzero(buys)]
    stock[buys] = 0.0
    retarget_until[buys] = -1
    shown.append((user, day * DAY + time, campaign))
  return outcome(purchases, shown, events)


def outcome(purchases: np.ndarray, shown: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
            events: List[Tuple[int, int]]) -> Outcome:
  """The Outcome of a run from its days' impressions (user, second, campaign), sorted by user and time."""
  user, time, campaign = (np.concatenate([s[i] for s in shown]) for i in range(3))
  order = np.lexsort((campaign, time, user))
  return Outcome(purchases, user[order], time[order], campaign[order], events)


def truth_by_withholding(run: Callable[[Optional[int]], Outcome], campaigns: int) -> Tuple[Outcome, np.ndarray]:
  """(the full run, each campaign's true incremental purchases: the full run's minus those of the run without
  it); run(k) simulates with campaign k withheld (None: none)."""
  full = run(None)
  total = int(full.purchases.sum())
  return full, np.array([total - int(run(k).purchases.sum()) for k in range(campaigns)])


def converting_impressions(outcome: Outcome) -> np.ndarray:
  """A bool per impression of the outcome: a purchase followed it in its journey (it is the journey's last)."""
  marked = np.zeros(len(outcome.user), bool)
  previous_end: Dict[int, int] = {}
  for user, day in sorted(outcome.purchase_events):
    end = (day + 1) * DAY  # purchases happen at the end of the day
    lo, hi = np.searchsorted(outcome.user, user, 'left'), np.searchsorted(outcome.user, user, 'right')
    last = lo + np.searchsorted(outcome.time[lo:hi], end, 'left') - 1
    if last >= lo and outcome.time[last] >= previous_end.get(user, 0):
      marked[last] = True
    previous_end[user] = end
  return marked


def ground_truth(world: World, rules: Rules = Rules()) -> Tuple[Outcome, np.ndarray]:
  """(the full run, true incremental purchases per campaign: full run minus the run without it)."""
  return truth_by_withholding(lambda k: simulate(world, rules, k), len(rules.campaigns))


def write_outcome(directory: str, full: Outcome, truth: np.ndarray, campaigns: Sequence[Any]) -> Dict[str, int]:
  """Writes a run's impressions.csv and ground_truth.csv (campaigns: NamedTuples with name, kind and effect, in
  index order) into `directory`; returns the truth by name."""
  os.makedirs(directory, exist_ok=True)
  converted = converting_impressions(full)
  with open(os.path.join(directory, 'impressions.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['uid', 'timestamp', 'campaign', 'conversion'])
    for u, t, c, y in zip(full.user, full.time, full.campaign, converted):
      writer.writerow([f'user-{u:06d}', EPOCH + int(t), campaigns[c].name, int(y)])
  with open(os.path.join(directory, 'ground_truth.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['campaign', 'true_incremental_conversions', 'impressions', 'kind', 'effect'])
    for k, campaign in enumerate(campaigns):
      writer.writerow([campaign.name, int(truth[k]), int(np.sum(full.campaign == k)), campaign.kind,
                       campaign.effect])
  return {c.name: int(t) for c, t in zip(campaigns, truth)}


def write(directory: str, world: World, rules: Rules = Rules()) -> Dict[str, int]:
  """Simulates and writes impressions.csv and ground_truth.csv into `directory`; returns the truth by name."""
  full, truth = ground_truth(world, rules)
  return write_outcome(directory, full, truth, rules.campaigns)


def main(argv: Optional[Sequence[str]] = None) -> None:
  """CLI: simulates a world and writes it with its ground truth (module docstring)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('output')
  parser.add_argument('--users', type=int, default=12000)
  parser.add_argument('--days', type=int, default=28)
  parser.add_argument('--seed', type=int, default=11)
  args = parser.parse_args(argv)
  truth = write(args.output, draw(args.users, args.days, args.seed))
  print('true incremental conversions:', truth)


if __name__ == '__main__':
  main()
