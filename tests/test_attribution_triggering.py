"""The impression process (pipelines/attribution/triggering.py): fitted to touches drawn from a known Hawkes
process, it finds the campaign that earlier touches trigger and leaves random-reach campaigns alone, also when
users differ a lot in how many impressions they get; credit moves along the triggering pairs and is conserved."""
import numpy as np
import pytest

from pipelines.attribution import triggering

WINDOW_HOURS = 720.0


def draw_streams(users: int, triggers: float, seed: int):
  """Touches of `users` users over 30 days: 'u' and 'n' at random (busy users see more of everything), 'r' at
  random at a low rate plus `triggers` touches on average after each 'u' touch, about two days later."""
  rng = np.random.default_rng(seed)
  streams = []
  for activity in rng.gamma(2.0, 0.5, size=users):
    touches = []
    for campaign, rate in (('u', 0.006), ('n', 0.006), ('r', 0.001)):
      touches += [(t, campaign) for t in rng.uniform(0, WINDOW_HOURS, rng.poisson(rate * activity * WINDOW_HOURS))]
    for t, campaign in list(touches):
      if campaign == 'u':
        touches += [(t + d, 'r') for d in rng.exponential(48.0, rng.poisson(triggers)) if t + d < WINDOW_HOURS]
    touches.sort()
    streams.append(triggering.Stream([c for _, c in touches], [t for t, _ in touches]))
  return streams


def test_fit_finds_the_triggered_campaign_and_leaves_random_reach_alone():
  streams = draw_streams(600, triggers=0.8, seed=1)
  process = triggering.fit(streams)
  shares = triggering.triggered_shares(process, streams)
  # 'r': about 0.8 x 4.3 triggered touches a user against 0.7 at random.
  assert shares['r'] > 0.6
  assert shares['u'] < 0.1 and shares['n'] < 0.1
  assert process.excitation[:, process.campaigns.index('u'), process.campaigns.index('r')].sum() > 0.4


def test_busy_users_alone_do_not_look_like_triggering():
  # No campaign triggers another; users' activity varies (Gamma(2, 0.5)): every touch is background.
  streams = draw_streams(600, triggers=0.0, seed=2)
  shares = triggering.triggered_shares(triggering.fit(streams), streams)
  assert max(shares.values()) < 0.1, shares


def test_a_campaign_launched_after_another_does_not_look_triggered_by_it():
  # Random reach, no triggering; 'a' runs in days 0-14, 'b' in days 7-21: b's touches follow a's in time.
  rng = np.random.default_rng(5)
  streams = []
  for activity in rng.gamma(2.0, 0.5, size=600):
    touches = [(t, 'a') for t in rng.uniform(0, 336, rng.poisson(0.01 * activity * 336))]
    touches += [(t, 'b') for t in rng.uniform(168, 504, rng.poisson(0.01 * activity * 336))]
    touches += [(t, 'n') for t in rng.uniform(0, 504, rng.poisson(0.005 * activity * 504))]
    touches.sort()
    streams.append(triggering.Stream([c for _, c in touches], [t for t, _ in touches]))
  shares = triggering.triggered_shares(triggering.fit(streams), streams)
  assert max(shares.values()) < 0.1, shares


def test_propagate_passes_credit_back_along_the_chain_and_conserves_it():
  # Touch 2 holds 1.0; half of it was triggered by touch 1, which touch 0 triggered for sure.
  kept = triggering.propagate([0.0, 0.0, 1.0], np.array([2, 1]), np.array([1, 0]), np.array([0.5, 1.0]))
  assert kept == pytest.approx([0.5, 0.0, 0.5])
  assert kept.sum() == pytest.approx(1.0)


def test_triggered_journeys_keep_credit_within_a_journey():
  process = triggering.fit(draw_streams(300, triggers=0.8, seed=3))
  # One user: a journey ending (conversion) at hour 100 with a 'u' touch, then one with an 'r' touch 30 h later
  # and another 'u' touch before it: the 'r' touch's share owed to the first journey's 'u' stays with it.
  first, second = triggering.triggered_journeys(process, [(200.0, ['u', 'r'], [40.0, 0.0]), (100.0, ['u'], [0.0])])
  assert list(second.campaigns) == ['u'] and len(second.child) == 0
  assert list(first.campaigns) == ['u', 'r']
  assert first.child.tolist() == [1] and first.parent.tolist() == [0]
  alone = triggering.triggered_journeys(process, [(200.0, ['u', 'r'], [40.0, 0.0])])[0]
  assert 0 < first.share[0] < alone.share[0] < 1  # the other journey's 'u' took part of the 'r' touch


def test_unknown_campaign_neither_triggers_nor_is_triggered():
  process = triggering.fit(draw_streams(200, triggers=0.8, seed=4))
  p_background, child, parent, share = triggering.parent_shares(
      process, triggering.Stream(['new', 'r', 'u', 'new'], [0.0, 10.0, 20.0, 30.0]))
  unknown = np.isin(child, [0, 3]) | np.isin(parent, [0, 3])
  assert share[unknown].tolist() == [0.0] * int(unknown.sum())
  assert p_background[[0, 3]] == pytest.approx([1.0, 1.0])
