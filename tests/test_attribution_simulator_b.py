"""pipelines.attribution.simulator_b: ground truth on one user checked by hand, and a small seeded world."""
import csv
import math

import numpy as np
import pytest

from pipelines.attribution import simulator_b as sim

NAMES = [c.name for c in sim.CAMPAIGNS]
VIDEO = NAMES.index('Video - YouTube Prospecting')
RETARGETING = NAMES.index('Retargeting - Display')


def one_user_world(purchase_day0: float) -> sim.World:
  """One user (engagement 0), two days: a video impression at the very start of day 0; a site visit on day 0
  (so retargeting may show on day 1, at 01:00); no search, no coupon, no purchase on day 1."""
  never = np.ones((1, 2))
  retarget = np.full((1, 2, 4), np.nan)
  retarget[0, 1, 0] = 3600
  return sim.World(engagement=np.zeros(1), exposure_user=np.array([0]), exposure_time=np.array([0]),
                   exposure_campaign=np.array([VIDEO]), purchase_uniform=np.array([[purchase_day0, 0.9]]),
                   visit_uniform=np.array([[0.0, 1.0]]), search_uniform=never, coupon_uniform=never,
                   search_time=np.zeros((1, 2), int), coupon_time=np.zeros((1, 2), int), retarget_times=retarget)


def test_ground_truth_by_hand():
  """Video (effect 1.4, tau 21 days) seen a whole day before the end of day 0: stock exp(-1/21) = 0.9535,
  contribution 1.4 (1 - exp(-0.9535)) = 0.860, p = sigmoid(-5.8 + 0.860) = 0.0071; without it sigmoid(-5.8) =
  0.0030. Uniform 0.005: a purchase only with the video, so the video's truth is 1. The purchase stops the
  retargeting the visit started; without the video there is no purchase and retargeting shows on day 1, with
  no effect: its truth is 0."""
  contribution = 1.4 * (1 - math.exp(-math.exp(-1 / 21)))
  assert 1 / (1 + math.exp(5.8 - contribution)) == pytest.approx(0.0071, abs=1e-4)
  world = one_user_world(0.005)
  full, truth = sim.ground_truth(world)
  assert full.purchases.tolist() == [1] and full.campaign.tolist() == [VIDEO]
  assert sim.converting_impressions(full).tolist() == [True]
  assert truth.tolist() == [1 if k == VIDEO else 0 for k in range(len(NAMES))]
  without_video = sim.simulate(world, withheld=VIDEO)
  assert without_video.campaign.tolist() == [RETARGETING] and without_video.time.tolist() == [sim.DAY + 3600]
  # Uniform 0.002 < 0.0030: the user buys anyway (organic); the video adds nothing.
  assert sim.ground_truth(one_user_world(0.002))[1].tolist() == [0] * len(NAMES)


def test_seeded_world_is_reproducible_and_retargeting_worth_nothing(tmp_path):
  truth = sim.write(str(tmp_path / 'a'), sim.draw(400, 14, seed=3))
  assert truth == sim.write(str(tmp_path / 'b'), sim.draw(400, 14, seed=3))
  assert (tmp_path / 'a' / 'impressions.csv').read_text() == (tmp_path / 'b' / 'impressions.csv').read_text()
  assert truth['Retargeting - Display'] == 0
  with open(tmp_path / 'a' / 'impressions.csv') as f:
    rows = list(csv.DictReader(f))
  assert {r['campaign'] for r in rows} <= set(NAMES)
  times = [(r['uid'], int(r['timestamp'])) for r in rows]
  assert times == sorted(times)
  # Retargeting reaches users after a visit: late in their journeys, so it is often the converting touch.
  last_touches = [r['campaign'] for r in rows if r['conversion'] == '1']
  assert last_touches and 'Retargeting - Display' in last_touches


def test_cli_writes_both_files(tmp_path):
  sim.main([str(tmp_path), '--users', '50', '--days', '5', '--seed', '1'])
  with open(tmp_path / 'ground_truth.csv') as f:
    assert [r['campaign'] for r in csv.DictReader(f)] == NAMES
  assert (tmp_path / 'impressions.csv').read_text().startswith('uid,timestamp,campaign,conversion\n')
