"""The CLV champion's output rows: a baseline champion's predictions, marked, with the BTYD columns kept."""
import math

import pytest

from pipelines import champion
from pipelines.clv import champion_predictions as cp

SCORE = [{'customer_id': 'a', 'btyd_clv': 12.5, 'btyd_p_alive': 0.9, 'frequency': 3.0},
         {'customer_id': 'b', 'btyd_clv': 0.25, 'btyd_p_alive': 0.1, 'frequency': 0.0}]


def test_btyd_champion_rows_carry_its_prediction_and_the_btyd_columns():
  rows = cp.baseline_rows(SCORE, 'customer_id', 'btyd', 15.0, 'predicted_value', 'btyd_clv', ['btyd_clv', 'btyd_p_alive'])
  assert rows == [
      {'customer_id': 'a', 'predicted_value': 12.5, 'predicted_by': 'btyd', 'btyd_clv': 12.5, 'btyd_p_alive': 0.9},
      {'customer_id': 'b', 'predicted_value': 0.25, 'predicted_by': 'btyd', 'btyd_clv': 0.25, 'btyd_p_alive': 0.1}]


def test_mean_champion_rows_predict_the_training_mean():
  rows = cp.baseline_rows(SCORE, 'customer_id', 'baseline', 15.0, 'predicted_value', 'btyd_clv', ['btyd_clv'])
  assert [(r['predicted_value'], r['predicted_by'], r['btyd_clv']) for r in rows] == [
      (15.0, 'baseline', 12.5), (15.0, 'baseline', 0.25)]


def test_a_refused_winning_model_falls_back_on_the_best_baseline():
  won = champion.choose('mean_absolute_error', False, 'dnn', {'dnn': 10.0, 'btyd': 12.0, 'baseline': 20.0})
  assert won.model_won and cp.best_baseline(won) == 'btyd'
  gini = champion.choose('normalized_gini', True, 'dnn', {'dnn': 0.8, 'btyd': 0.7, 'baseline': math.nan})
  assert cp.best_baseline(gini) == 'btyd'
  with pytest.raises(ValueError, match='no baseline'):
    cp.best_baseline(champion.choose('mean_absolute_error', False, 'dnn', {'dnn': 1.0, 'btyd': math.nan}))
