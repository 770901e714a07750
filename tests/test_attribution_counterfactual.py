"""Counterfactual credit (removal effect, Shapley) on hand-made models whose answer is known, through the same
code and the same Beam transform the CampaignReport runs; and the model's keep_only on a small tensor."""
import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing import util as beam_testing

from modules import attribution as module
from pipelines.attribution import counterfactual, triggering
from pipelines.attribution.baselines import Journey
from pipelines.attribution.shapley import coalitions, shapley

LENGTH = 10


def kept_campaigns(journey: Journey, keep: np.ndarray) -> set:
  return {c for p, c in enumerate(journey.campaigns[:LENGTH]) if keep[p] > 0}


def additive(payloads, rows, keep):
  """p = 0.1 + 0.2 [a kept] + 0.1 [b kept]: each campaign adds a fixed amount."""
  effects = {'a': 0.2, 'b': 0.1}
  return np.array([0.1 + sum(effects.get(c, 0.0) for c in kept_campaigns(payloads[r], k)) for r, k in zip(rows, keep)])


def together(payloads, rows, keep):
  """p = 0.1 + 0.4 [a and b both kept]: neither campaign does anything alone."""
  return np.array([0.1 + 0.4 * ({'a', 'b'} <= kept_campaigns(payloads[r], k)) for r, k in zip(rows, keep)])


def items(journeys):
  return [(f'j{i}', j, j, None) for i, j in enumerate(journeys)]


def test_additive_model_credits_each_campaign_its_effect_per_journey():
  # Two journeys with a and b (repeated touches count once), one with b only, one without either campaign's
  # effect (c adds nothing).
  journeys = [Journey(['a', 'b', 'a'], [5, 3, 0], True), Journey(['b', 'a'], [2, 0], False),
              Journey(['b'], [0], False), Journey(['c'], [0], False)]
  sums = counterfactual.credit_batch(items(journeys), additive, LENGTH, max_exact=6, permutations=8)
  credit, totals = counterfactual.scaled(sums)
  # Expected: 0.4 + 0.4 + 0.2 + 0.1 = 1.1; base 4 x 0.1; incremental 0.7 = a 2 x 0.2 + b 3 x 0.1.
  assert totals == pytest.approx({'expected_conversions': 1.1, 'base_conversions': 0.4,
                                  'model_incremental_conversions': 0.7})
  for method in ('removal', 'shapley', 'total_effect'):  # no touch triggered another: total_effect is removal
    assert credit[method] == pytest.approx({'a': 0.4, 'b': 0.3, 'c': 0.0}), method


def test_interaction_is_split_by_shapley_and_double_counted_by_raw_removal():
  journeys = [Journey(['a', 'b'], [1, 0], True)]
  sums = counterfactual.credit_batch(items(journeys), together, LENGTH, max_exact=6, permutations=8)
  # Removing either one loses the whole 0.4: raw removal effects 0.4 + 0.4, scaled back to the 0.4 there is.
  assert sums['a'][0] == pytest.approx(0.4) and sums['b'][0] == pytest.approx(0.4)
  credit, totals = counterfactual.scaled(sums)
  assert totals['model_incremental_conversions'] == pytest.approx(0.4)
  assert credit['removal'] == pytest.approx({'a': 0.2, 'b': 0.2})
  assert credit['shapley'] == pytest.approx({'a': 0.2, 'b': 0.2})


def test_exact_shapley_of_a_three_player_game_by_hand():
  # v: {} 0, {0} 1, {1} 2, {2} 0, {0,1} 4, {0,2} 1, {1,2} 2, {0,1,2} 6. Player 2 adds 0 everywhere except
  # to {0,1} (+2): phi_2 = 2 * (2! 0! / 3!) = 2/3. Player 0: +1 to {}, +2 to {1}, +1 to {2}, +4 to {1,2}:
  # (1 * 2 + 2 * 1 + 1 * 1 + 4 * 2) / 6 = 13/6. Player 1: 6 - 13/6 - 2/3 = 19/6.
  value = {0: 0, 1: 1, 2: 2, 4: 0, 3: 4, 5: 1, 6: 2, 7: 6}
  assert shapley(3, value, []) == pytest.approx([13 / 6, 19 / 6, 2 / 3])


def test_sampled_shapley_is_efficient_and_seeded():
  campaigns = [f'k{i}' for i in range(9)]
  journey = Journey(campaigns + ['k0'], list(range(10, 0, -1)), True)

  def nonlinear(payloads, rows, keep):
    """Saturating in the number of campaigns kept, halved without k3."""
    values = []
    for r, k in zip(rows, keep):
      kept = kept_campaigns(payloads[r], k)
      values.append(0.05 + 0.9 * (1 - np.exp(-0.3 * len(kept))) * (1.0 if 'k3' in kept else 0.5))
    return np.array(values)
  first = counterfactual.credit_batch([('x', journey, journey, None)], nonlinear, LENGTH, max_exact=6, permutations=16)
  again = counterfactual.credit_batch([('x', journey, journey, None)], nonlinear, LENGTH, max_exact=6, permutations=16)
  full = nonlinear([journey], [0], [np.ones(LENGTH)])[0]
  empty = nonlinear([journey], [0], [np.zeros(LENGTH)])[0]
  assert sum(v[1] for c, v in first.items() if c != counterfactual.TOTAL) == pytest.approx(full - empty)
  assert {c: list(v) for c, v in first.items()} == {c: list(v) for c, v in again.items()}
  masks, orders = coalitions(campaigns, 6, 16, 'x')
  assert len(orders) == 16 and 0 in masks and (1 << 9) - 1 in masks


def test_journey_keeps_only_the_chosen_campaigns_touches():
  journey = Journey(['a', 'b', 'a', 'c'], [3, 2, 1, 0], True)
  keep = counterfactual.keep_matrix(journey, ['a', 'b', 'c'], [0b101, 0b010, 0], 6)
  assert keep.tolist() == [[1, 0, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0] * 6]


def test_total_effect_passes_a_triggered_touchs_credit_to_its_trigger_even_one_the_model_did_not_see():
  # 'u' (truncated away: the model sees only 'n', 'b') triggered the 'b' touch with probability 0.8; the model
  # credits b with its 0.1 and n with nothing.
  journey = Journey(['n', 'b'], [2, 0], True)
  triggered = triggering.Triggered(['u', 'n', 'b'], np.array([2]), np.array([0]), np.array([0.8]))
  sums = counterfactual.credit_batch([('j', journey, journey, triggered)], additive, LENGTH, 6, 8)
  assert sums['b'][0] == pytest.approx(0.1)  # removal
  assert {c: sums[c][2] for c in ('u', 'n', 'b')} == pytest.approx({'u': 0.08, 'n': 0.0, 'b': 0.02})
  assert sums['u'][:2] == pytest.approx([0.0, 0.0])  # removal and Shapley know only the touches the model saw


def test_beam_pass_matches_the_direct_computation():
  rng = np.random.default_rng(0)
  journeys = [Journey(list(rng.choice(['a', 'b', 'c'], size=rng.integers(1, 5))), [0.0] * 4, bool(i % 2))
              for i in range(40)]
  expected = counterfactual.credit_batch(items(journeys), additive, LENGTH, 6, 8)

  def close_to_expected(results):
    (sums,) = results
    assert set(sums) == set(expected)
    for key, values in expected.items():
      np.testing.assert_allclose(sums[key], values, atol=1e-9)

  with beam.Pipeline() as p:
    out = (p | beam.Create(items(journeys))
           | counterfactual.CounterfactualCredit(lambda: additive, LENGTH, max_exact=6, permutations=8, batch_size=7))
    beam_testing.assert_that(out, close_to_expected)


def test_keep_only_moves_kept_touches_to_the_front():
  index = tf.constant([[3, 4, 3, 2, 0]], tf.int64)
  hours = tf.constant([[4.0, 3.0, 2.0, 1.0, 0.0]])
  kept_index, kept_hours = module.keep_only(index, hours, tf.constant([[1.0, 0.0, 1.0, 1.0, 1.0]]))
  assert kept_index.numpy().tolist() == [[3, 3, 2, 0, 0]]
  assert kept_hours.numpy().tolist() == [[4.0, 2.0, 1.0, 0.0, 0.0]]
