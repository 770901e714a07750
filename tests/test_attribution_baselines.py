"""pipelines.attribution.baselines worked by hand, and the simulator's ground truth on a case small enough to check."""
import os
import sys

import numpy as np
import pytest

from conftest import REPO
from pipelines.attribution import baselines
from pipelines.attribution import campaign_report, simulate

J = baselines.Journey
# Two conversions and one journey that did not convert (ignored by the rule-based methods).
JOURNEYS = [J(['a', 'b', 'c'], [48.0, 24.0, 0.0], True), J(['b', 'b'], [24.0, 0.0], True), J(['c'], [0.0], False)]


def test_last_and_first_touch():
  # Campaigns touched in a converting journey are listed, with 0 where they got nothing.
  assert baselines.last_touch(JOURNEYS) == {'a': 0.0, 'b': 1.0, 'c': 1.0}
  assert baselines.first_touch(JOURNEYS) == {'a': 1.0, 'b': 1.0, 'c': 0.0}


def test_linear():
  assert baselines.linear(JOURNEYS) == pytest.approx({'a': 1 / 3, 'b': 1 / 3 + 1.0, 'c': 1 / 3})


def test_position_based_40_20_40():
  # a, b, c: 0.4 / 0.2 / 0.4; b, b: 0.5 + 0.5 (first and last in proportion 40 : 40).
  assert baselines.position_based(JOURNEYS) == pytest.approx({'a': 0.4, 'b': 0.2 + 1.0, 'c': 0.4})
  # Four touches: the 20% is split between the two in the middle; one touch takes everything.
  assert baselines.position_based([J(['a', 'b', 'c', 'd'], [0] * 4, True), J(['e'], [0], True)]) == pytest.approx(
      {'a': 0.4, 'b': 0.1, 'c': 0.1, 'd': 0.4, 'e': 1.0})


def test_shapley_on_conversion_rates_textbook_two_channels():
  """Zhao et al. 2018's worked setting: v({A}) = CR of journeys with A only = 1/10, v({B}) = 2/10 = 0.2,
  v({A, B}) = 4/10 = 0.4. Shapley in {A, B}: A = (0.1 - 0 + 0.4 - 0.2) / 2 = 0.15, B = (0.2 + 0.4 - 0.1) / 2 = 0.25;
  {A, B}'s 4 conversions split 0.15 : 0.25, A's 1 and B's 2 conversions go to themselves."""
  def journeys(campaigns, n, conversions):
    return [J(campaigns, [0.0] * len(campaigns), i < conversions) for i in range(n)]
  paths = journeys(['A'], 10, 1) + journeys(['B'], 10, 2) + journeys(['A', 'B', 'A'], 10, 4)
  assert baselines.shapley_on_conversion_rates(paths) == pytest.approx({'A': 1 + 4 * 0.15 / 0.4,
                                                                       'B': 2 + 4 * 0.25 / 0.4})


def test_time_decay_halves_per_half_life():
  # Half life 24 h: weights 1/4, 1/2, 1 over a, b, c (sum 7/4); 1/2, 1 over b, b.
  assert baselines.time_decay(JOURNEYS, 24.0) == pytest.approx({'a': 1 / 7, 'b': 2 / 7 + 1.0, 'c': 4 / 7})


def test_markov_removal_effect_on_the_textbook_three_channel_example():
  """Paths C1>C2>C3>conversion, C1>null, C2>C3>null (S. Bryl', "Marketing Multi-Channel Attribution model with R",
  analyzecore.com, 2016). Transitions: start->C1 2/3, start->C2 1/3, C1->C2 1/2, C1->null 1/2, C2->C3 1,
  C3->conversion 1/2, C3->null 1/2. P(conversion) = (2/3 * 1/2 + 1/3) * 1/2 = 1/3.
  Without C1: 1/3 * 1/2 = 1/6 -> removal effect 1/2; without C2 or C3: 0 -> removal effect 1.
  Shares 0.5 / 2.5, 1 / 2.5, 1 / 2.5 of the one conversion: 0.2, 0.4, 0.4."""
  paths = [J(['C1', 'C2', 'C3'], [0, 0, 0], True), J(['C1'], [0], False), J(['C2', 'C3'], [0, 0], False)]
  assert baselines.markov_removal_effects(paths) == pytest.approx({'C1': 0.5, 'C2': 1.0, 'C3': 1.0})
  assert baselines.markov(paths) == pytest.approx({'C1': 0.2, 'C2': 0.4, 'C3': 0.4})


def test_every_method_shares_out_exactly_the_conversions():
  assert set(baselines.all_baselines(JOURNEYS, 24.0)) == set(baselines.METHODS)
  for method, attributed in baselines.all_baselines(JOURNEYS, 24.0).items():
    assert sum(attributed.values()) == pytest.approx(2.0), method


def test_compare_against_ground_truth():
  truth = {'a': 3.0, 'b': 2.0, 'c': 1.0}
  assert baselines.compare({'a': 30, 'b': 20, 'c': 10}, truth) == pytest.approx({'spearman': 1.0, 'abs_error': 54.0})
  # A campaign without attribution counts as 0; the order reversed gives -1.
  assert baselines.compare({'b': 2.0, 'c': 3.0}, truth) == pytest.approx({'spearman': -1.0, 'abs_error': 5.0})


def test_simulator_ground_truth_by_hand():
  """One user, one day; base log-odds -10 (p = 4.5e-5), uniform 0.5. Campaign 0 (effect 12) seen at the end of the
  day: p = sigmoid(2 + 0.1) = 0.89 > 0.5, a conversion on its last impression; campaign 1 (effect 0.1) alone:
  p = sigmoid(-9.9) < 0.5. Without campaign 0 the user does not convert: 1 incremental conversion; without
  campaign 1, p = sigmoid(2) = 0.88 still converts: 0."""
  impressions = simulate.Impressions(user=np.array([0, 0]), time=np.array([simulate.DAY - 1, simulate.DAY - 1]),
                                     campaign=np.array([1, 0]))
  uniforms = np.array([[0.5]])
  conversions, converted_after = simulate.simulate(impressions, uniforms, [12.0, 0.1], -10.0, tau_days=1e9)
  assert conversions.tolist() == [1] and converted_after.tolist() == [False, True]
  assert simulate.incremental_conversions(impressions, uniforms, [12.0, 0.1], -10.0, 1e9).tolist() == [[1], [0]]


def test_simulator_recency_and_journey_reset():
  """Effect 3 decaying with tau 1 day, seen at the start of day 0: at the end of day 0 its stock is 3 / e = 1.10,
  p = sigmoid(-1 + 1.10) = 0.53 > 0.2: a conversion on that impression. The journey restarts: at the end of day 1
  the stock is 0, p = sigmoid(-1) = 0.27 > 0.2: an organic conversion, with no impression to flag."""
  impressions = simulate.Impressions(user=np.array([0]), time=np.array([0]), campaign=np.array([0]))
  conversions, converted_after = simulate.simulate(impressions, np.array([[0.2, 0.2]]), [3.0], -1.0, tau_days=1.0)
  assert conversions.tolist() == [2] and converted_after.tolist() == [True]


def test_bundled_ground_truth_matches_the_simulator_design():
  import csv  # pylint: disable=g-import-not-at-top
  with open(os.path.join(REPO, 'data', 'attribution', 'ground_truth.csv')) as f:
    truth = {row['campaign']: row for row in csv.DictReader(f)}
  assert len(truth) == len(simulate.CAMPAIGNS)
  # High reach, little effect vs low reach, large effect: many more impressions, fewer incremental conversions.
  assert int(truth['c01']['impressions']) > 10 * int(truth['c15']['impressions'])
  assert int(truth['c01']['true_incremental_conversions']) < int(truth['c15']['true_incremental_conversions']) / 5
  assert int(truth['c09']['true_incremental_conversions']) == 0  # no effect, no incremental conversion


def test_attention_splits_only_the_incremental_part_of_each_conversion():
  # p = 0.5, p0 = 0.2: 60% of the conversion is the touches'; p below p0: none of it.
  assert campaign_report.incremental_share(0.5, 0.2) == pytest.approx(0.6)
  assert campaign_report.incremental_share(0.1, 0.2) == 0.0
  attended = [campaign_report.Attended('u/0', J(['a', 'b'], [5.0, 0.0], True), [0.25, 0.75], 0.6),
              campaign_report.Attended('v/0', J(['b'], [0.0], True), [1.0], 0.0)]
  per_campaign, positions = campaign_report.attention_tables(attended)
  assert per_campaign['a']['attributed_conversions'] == pytest.approx(0.15)
  assert per_campaign['b']['attributed_conversions'] == pytest.approx(0.45)
  assert per_campaign['a']['full_credit_conversions'] == pytest.approx(0.25)
  assert per_campaign['b']['full_credit_conversions'] == pytest.approx(1.75)
  assert per_campaign['b']['total_attention'] == pytest.approx(1.75) and per_campaign['b']['touches'] == 2
  assert {(r['journey_length'], r['touches_before_conversion']): r['mean_attention'] for r in positions} == {
      (2, 1): 0.25, (2, 0): 0.75, (1, 0): 1.0}


@pytest.mark.parametrize('blessed,headline', [(True, 'total_effect'), (False, 'markov')])
def test_campaign_report_headline_follows_the_champion(tmp_path, blessed, headline):
  """The model's counterfactual credit is the headline only when the model won; otherwise the Markov removal
  effect is, and every row says which method produced it."""
  import csv  # pylint: disable=g-import-not-at-top
  credit = {'removal': {'a': 0.3, 'b': 0.1, 'c': 0.0}, 'shapley': {'a': 0.25, 'b': 0.15, 'c': 0.0},
            'total_effect': {'a': 0.35, 'b': 0.05, 'c': 0.0}}
  content = campaign_report.write_report(str(tmp_path), JOURNEYS, None, {'a': 1.0, 'b': 0.5, 'c': 0.0}, 24.0,
                                         credit, {'model_incremental_conversions': 0.4}, model_blessed=blessed)
  assert content['attributed_by'] == headline == campaign_report.headline_method(blessed)
  with open(tmp_path / campaign_report.REPORT_CSV) as f:
    rows = list(csv.DictReader(f))
  expected = content['methods'][headline]['attributed_conversions']
  assert [(r['campaign'], r['attributed_by']) for r in rows] == [(c, headline) for c in ('a', 'b', 'c')]
  assert [float(r['attributed_conversions']) for r in rows] == pytest.approx([expected.get(c, 0.0) for c in 'abc'],
                                                                            abs=1e-6)  # 6 decimals in the CSV
  assert [float(r['shapley']) for r in rows] == pytest.approx([0.25, 0.15, 0.0])
  assert content['model_incremental_conversions'] == 0.4 and 'spearman' in content['methods']['removal']
