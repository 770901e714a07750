"""A third impressions simulator with ground truth: a funnel of user states, written from the issue's description
(engagement-driven retargeting without effect, upper-funnel campaigns far from the conversion, saturation,
arbitrary names), not from simulate.py's or simulator_b.py's mechanics.

The world, one step a day per user:
- a user is `unaware`, `aware` or `in_market`; what drives purchases is the state, which changes over time (in
  simulator_b it is a fixed engagement);
- exogenous campaigns reach users at random (Poisson, scaled by the user's `activity`): upper-funnel ones raise
  only the chance of becoming aware (their effect reaches a purchase two steps and days later), mid-funnel ones
  the chance of going in market from aware, one ("Native - Outbrain") does nothing;
- every campaign keeps a stock per user (an impression adds 1, the stock decays by exp(-1 / tau) a day) that acts
  through 1 - exp(-stock): saturation;
- endogenous campaigns answer the state: in-market users search ("Search - Brand", a small purchase effect) and
  visit the site; a visit may bring a coupon ("Affiliate/Coupons", a small effect) and brings "Retargeting -
  Display" impressions on the next days, also to aware users who visit now and then: retargeting has NO effect
  and comes late in journeys that were going to convert;
- in-market users buy with a daily chance (raised by the small effects), or drop back to aware; a purchase
  sends the user back to aware and empties the mid-funnel and endogenous stocks. A purchase is written on the
  journey's last impression; one without impressions in its journey is organic and leaves no row.

Ground truth: the run repeated with one campaign withheld under the same random draws (exposures, every daily
uniform, retargeting slots); a campaign's true incremental conversions are the full run's purchases minus that
run's. Withholding an upper-funnel campaign also removes the searches, visits and retargeting it led to.

Run: python -m pipelines.attribution.simulator_c OUT_DIR [--users 12000] [--days 28] [--seed 21]
writes OUT_DIR/impressions.csv and OUT_DIR/ground_truth.csv as simulator_b does.
"""
import argparse
import dataclasses
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from pipelines.attribution import simulator_b
from pipelines.attribution.simulator_b import DAY, Outcome

UNAWARE, AWARE, IN_MARKET = 0, 1, 2


class Campaign(NamedTuple):
  """name; kind: 'awareness' or 'consideration' (exogenous: which step it moves), 'purchase' (an endogenous
  campaign with a purchase effect) or 'none'; rate: impressions a day per user at activity 1 (exogenous);
  effect: log-odds at saturation on the step it moves; tau_days: how long an impression counts."""
  name: str
  kind: str
  rate: float
  effect: float
  tau_days: float


CAMPAIGNS: List[Campaign] = [
    Campaign('CTV - Streaming Prospecting', 'awareness', 0.020, 1.6, 18.0),
    Campaign('YouTube - Brand Video', 'awareness', 0.050, 1.2, 14.0),
    Campaign('Display - Programmatic Prospecting', 'awareness', 0.090, 0.7, 10.0),
    Campaign('Podcast - Host Read', 'awareness', 0.012, 1.0, 20.0),
    Campaign('Social - Paid Meta', 'consideration', 0.060, 0.9, 5.0),
    Campaign('Email - Promotions', 'consideration', 0.040, 0.5, 3.0),
    Campaign('Search - Nonbrand', 'consideration', 0.025, 1.1, 2.0),
    Campaign('Social - TikTok Reach', 'awareness', 0.070, 0.4, 7.0),
    Campaign('Native - Outbrain', 'none', 0.060, 0.0, 3.0),
    Campaign('Search - Brand', 'purchase', 0.0, 0.25, 1.0),
    Campaign('Affiliate/Coupons', 'purchase', 0.0, 0.15, 1.0),
    Campaign('Retargeting - Display', 'none', 0.0, 0.0, 1.0),
]
BRAND_SEARCH, COUPONS, RETARGETING = (next(k for k, c in enumerate(CAMPAIGNS) if c.name == name)
                                      for name in ('Search - Brand', 'Affiliate/Coupons', 'Retargeting - Display'))


@dataclasses.dataclass(frozen=True)
class Rules:
  """Daily log-odds and chances of the funnel's steps."""
  aware_base: float = -4.3
  in_market_base: float = -3.6
  in_market_from_awareness: float = 0.3   # upper-funnel stocks also help the second step a little
  purchase_base: float = -1.7
  drop_out: float = 0.10                  # in market -> aware, a day
  forget: float = 0.02                    # aware -> unaware, a day
  search: float = 0.35                    # in-market users who search, a day
  visit_in_market: float = 0.5
  visit_aware: float = 0.04
  coupon: float = 0.25                    # of visits
  retarget_days: int = 4


class World(NamedTuple):
  """Every random draw of one simulation, shared by the full run and every withheld run."""
  exposure_user: np.ndarray
  exposure_time: np.ndarray
  exposure_campaign: np.ndarray
  uniforms: np.ndarray        # [7, users, days]: aware, in market, purchase, drop, search, visit, coupon
  event_time: np.ndarray      # [3, users, days]: second of the day of a search, a coupon, retargeting's first
  retarget_slots: np.ndarray  # [users, days]: retargeting impressions a day while eligible


def draw(n_users: int, days: int, seed: int) -> World:
  """The random draws of one world."""
  rng = np.random.default_rng(seed)
  activity = rng.gamma(2.0, 0.5, size=n_users)
  user, time, campaign = simulator_b.random_reach(rng, activity, [(k, c.rate) for k, c in enumerate(CAMPAIGNS)
                                                                  if c.rate > 0], days)
  return World(user, time, campaign, rng.random((7, n_users, days)),
               rng.integers(0, DAY - 3600, size=(3, n_users, days)), rng.poisson(1.0, size=(n_users, days)))


def _saturated(stock: np.ndarray, effect: np.ndarray, columns: np.ndarray) -> np.ndarray:
  return (effect[columns] * (1.0 - np.exp(-stock[:, columns]))).sum(axis=1)


def simulate(world: World, rules: Rules = Rules(), withheld: Optional[int] = None) -> Outcome:
  """Runs the days with campaign `withheld` (index) never shown (None: every campaign)."""
  n_users, days = world.uniforms.shape[1:]
  effect = np.array([c.effect for c in CAMPAIGNS])
  decay = np.exp(-1.0 / np.array([c.tau_days for c in CAMPAIGNS]))
  kinds = np.array([c.kind for c in CAMPAIGNS])
  awareness, consideration, purchase = (np.flatnonzero(kinds == s) for s in ('awareness', 'consideration',
                                                                              'purchase'))
  reset = np.concatenate([consideration, purchase, [RETARGETING]])
  sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
  state = np.full(n_users, UNAWARE)
  stock = np.zeros((n_users, len(CAMPAIGNS)))
  retarget_until = np.full(n_users, -1)
  purchases = np.zeros(n_users, int)
  shown: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
  events: List[Tuple[int, int]] = []
  exposure_day = world.exposure_time // DAY
  aware_u, market_u, buy_u, drop_u, search_u, visit_u, coupon_u = world.uniforms
  for day in range(days):
    stock *= decay
    exo = np.flatnonzero(exposure_day == day)
    parts = [(world.exposure_user[exo], world.exposure_time[exo] % DAY, world.exposure_campaign[exo])]
    market = state == IN_MARKET
    searches = market & (search_u[:, day] < rules.search)
    visits = np.where(market, visit_u[:, day] < rules.visit_in_market,
                      (state == AWARE) & (visit_u[:, day] < rules.visit_aware))
    coupons = visits & (coupon_u[:, day] < rules.coupon)
    retargeted = (retarget_until >= day) & (world.retarget_slots[:, day] > 0)
    for campaign, who, offset in ((BRAND_SEARCH, searches, 0), (COUPONS, coupons, 1), (RETARGETING, retargeted, 2)):
      users = np.flatnonzero(who)
      slots = world.retarget_slots[users, day] if campaign == RETARGETING else np.ones(len(users), int)
      users = np.repeat(users, slots)
      spread = np.concatenate([np.arange(n) for n in slots]) if len(slots) else np.zeros(0, int)
      parts.append((users, (world.event_time[offset, users, day] + 3600 * spread) % DAY, np.full(len(users), campaign)))
    retarget_until[visits] = day + rules.retarget_days
    user, time, campaign = (np.concatenate([p[i] for p in parts]) for i in range(3))
    if withheld is not None:
      keep = campaign != withheld
      user, time, campaign = user[keep], time[keep], campaign[keep]
    np.add.at(stock, (user, campaign), 1.0)
    # the day's steps, each user at most one: unaware -> aware, aware -> in market, in market -> bought or out
    becomes_aware = (state == UNAWARE) & (aware_u[:, day] < sigmoid(
        rules.aware_base + _saturated(stock, effect, awareness)))
    goes_in_market = (state == AWARE) & (market_u[:, day] < sigmoid(
        rules.in_market_base + _saturated(stock, effect, consideration)
        + rules.in_market_from_awareness * _saturated(stock, effect, awareness)))
    buys = market & (buy_u[:, day] < sigmoid(rules.purchase_base + _saturated(stock, effect, purchase)))
    drops = market & ~buys & (drop_u[:, day] < rules.drop_out)
    forgets = (state == AWARE) & ~goes_in_market & (drop_u[:, day] < rules.forget)
    state[becomes_aware] = AWARE
    state[goes_in_market] = IN_MARKET
    state[buys | drops] = AWARE
    state[forgets] = UNAWARE
    purchases += buys
    events += [(int(u), day) for u in np.flatnonzero(buys)]
    stock[np.ix_(buys, reset)] = 0.0
    retarget_until[buys] = -1
    shown.append((user, day * DAY + time, campaign))
  return simulator_b.outcome(purchases, shown, events)


def ground_truth(world: World, rules: Rules = Rules()) -> Tuple[Outcome, np.ndarray]:
  """(the full run, true incremental purchases per campaign: full run minus the run without it)."""
  return simulator_b.truth_by_withholding(lambda k: simulate(world, rules, k), len(CAMPAIGNS))


def main(argv: Optional[Sequence[str]] = None) -> None:
  """CLI: simulates a world and writes it with its ground truth (module docstring)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('output')
  parser.add_argument('--users', type=int, default=12000)
  parser.add_argument('--days', type=int, default=28)
  parser.add_argument('--seed', type=int, default=21)
  args = parser.parse_args(argv)
  world = draw(args.users, args.days, args.seed)
  full, truth = ground_truth(world)
  print('true incremental conversions:', simulator_b.write_outcome(args.output, full, truth, CAMPAIGNS))


if __name__ == '__main__':
  main()
