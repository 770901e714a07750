"""pipelines.attribution.simulator_c: the funnel on one user checked by hand, and a small seeded world."""
import csv
import math

import numpy as np
import pytest

from pipelines.attribution import simulator_c as sim

NAMES = [c.name for c in sim.CAMPAIGNS]
CTV = NAMES.index('CTV - Streaming Prospecting')


def one_user_world(aware_day0: float) -> sim.World:
  """One user, three days, a CTV impression at the start of day 0; the day's uniforms make the user go in
  market on day 1 if aware, and buy on day 2 if in market; no search, visit or coupon; never aware after day 0."""
  uniforms = np.ones((7, 1, 3))
  uniforms[0, 0, 0] = aware_day0  # aware
  uniforms[1, 0, 1] = 0.0         # in market
  uniforms[2, 0, 2] = 0.0         # purchase
  return sim.World(exposure_user=np.array([0]), exposure_time=np.array([0]), exposure_campaign=np.array([CTV]),
                   uniforms=uniforms, event_time=np.zeros((3, 1, 3), int), retarget_slots=np.zeros((1, 3), int))


def test_an_upper_funnel_impression_reaches_the_purchase_two_steps_later():
  """CTV (effect 1.6) on day 0: stock 1, p(aware) = sigmoid(-4.3 + 1.6 (1 - e^-1)) = 0.036 against
  sigmoid(-4.3) = 0.0134 without it. Uniform 0.02: aware only with CTV, then in market on day 1 and a purchase
  on day 2; without CTV the user stays unaware and buys nothing. CTV's truth is 1, every other campaign's 0."""
  assert 1 / (1 + math.exp(4.3 - 1.6 * (1 - math.exp(-1)))) == pytest.approx(0.0360, abs=1e-4)
  full, truth = sim.ground_truth(one_user_world(0.02))
  assert full.purchases.tolist() == [1] and full.purchase_events == [(0, 2)]
  assert truth.tolist() == [1 if k == CTV else 0 for k in range(len(NAMES))]
  assert sim.simulate(one_user_world(0.02), withheld=CTV).purchases.tolist() == [0]
  # Uniform 0.01 < 0.0134: aware anyway (organic), so the purchase happens without CTV too.
  assert sim.ground_truth(one_user_world(0.01))[1].tolist() == [0] * len(NAMES)


def test_seeded_world_is_reproducible_and_the_campaigns_without_effect_are_worth_nothing(tmp_path):
  outputs = []
  for name in ('a', 'b'):
    full, truth = sim.ground_truth(sim.draw(600, 21, seed=5))
    outputs.append(sim.simulator_b.write_outcome(str(tmp_path / name), full, truth, sim.CAMPAIGNS))
  assert outputs[0] == outputs[1]
  assert (tmp_path / 'a' / 'impressions.csv').read_text() == (tmp_path / 'b' / 'impressions.csv').read_text()
  assert outputs[0]['Retargeting - Display'] == 0 and outputs[0]['Native - Outbrain'] == 0
  assert outputs[0]['YouTube - Brand Video'] > 0
  with open(tmp_path / 'a' / 'impressions.csv') as f:
    rows = list(csv.DictReader(f))
  assert {r['campaign'] for r in rows} == set(NAMES)
  # Brand search and retargeting answer the in-market state: late in journeys, often the converting touch.
  last_touches = {r['campaign'] for r in rows if r['conversion'] == '1'}
  assert {'Search - Brand', 'Retargeting - Display'} <= last_touches
