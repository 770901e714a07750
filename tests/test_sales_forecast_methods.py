"""Sales forecast: statistical baselines, MASE and the baseline-anchored model, against values computed by hand."""
import datetime

import numpy as np
import pytest
import tensorflow as tf

from modules import sales_forecast as sf
from pipelines.sales_forecast import methods
from pipelines.sales_forecast.pipeline import SETTINGS


def _sale(day, bottles, item='1'):
  return sf.Sale(item, day, float(bottles), ('desc', 'cat', 'vendor', 12.0, 750.0, 5.0, 7.5))


def test_exponential_smoothing_by_hand():
  assert methods.simple_exponential_smoothing([10, 20, 0], 0.5) == pytest.approx(7.5)  # 10 -> 15 -> 7.5
  # In-sample one-step errors on [0, 10, 10, 10]: alpha 0.9: 10 + 1 + 0.1 = 11.1; alpha 0.1: 10 + 9 + 8.1 = 27.1.
  assert methods.fitted_exponential_smoothing([0, 10, 10, 10], (0.1, 0.9)) == pytest.approx(9.99)
  assert methods.fitted_exponential_smoothing([4, 8], (0.1, 0.9)) == pytest.approx(4.4)  # too short: first alpha


def test_croston_and_tsb_by_hand():
  # Demands 4 (after 2 months) then 6 (after 3): size 4 -> 5, interval 2 -> 2.5; forecast 5 / 2.5.
  assert methods.croston([0, 4, 0, 0, 6], 0.5) == pytest.approx(2.0)
  assert methods.croston([0, 0], 0.5) == 0.0
  # Probability 1 -> 0.5 (no sale) -> 0.75 (sale); size 4 -> 3; forecast 0.75 * 3.
  assert methods.tsb([4, 0, 2], 0.5, 0.5) == pytest.approx(2.25)
  # TSB decays while an item does not sell; Croston keeps its last rate.
  assert methods.tsb([4, 0, 0, 0], 0.5, 0.5) == pytest.approx(0.5) and methods.croston([4, 0, 0, 0], 0.5) == 4.0


def test_mase_scale_and_metrics_by_hand():
  assert methods.mase_scale([1, 3, 6]) == pytest.approx(2.5)  # short history: lag 1, (2 + 3) / 2
  assert methods.mase_scale(list(range(13))) == pytest.approx(12.0)  # 13 months: lag 12, |12 - 0|
  assert methods.mase_scale([5]) == 0.0
  values = methods.metrics(np.array([10, 0, 5]), np.array([8, 1, 5]), np.array([2, 0, 1]))
  assert values['mae'] == pytest.approx(1.0) and values['rmse'] == pytest.approx(np.sqrt(5 / 3))
  assert values['wape'] == pytest.approx(3 / 15)
  assert values['mase'] == pytest.approx((2 / 2 + 0 / 1) / 2)  # the example without a scale is left out


def test_item_with_a_gap_gets_zero_months_in_its_statistical_forecasts():
  sales = [_sale(datetime.date(2022, 1, 3), 8), _sale(datetime.date(2022, 3, 1), 4),
           _sale(datetime.date(2022, 4, 1), 1)]
  examples = dict((e[sf.MONTH], e) for _, e in sf.item_examples('1', sales, sf.month_index(
      datetime.date(2022, 4, 1)), eval_months=1))
  march = examples[202203]  # history [8, 0, 4]
  assert march[sf.BASELINES['exponential_smoothing']] == pytest.approx(
      methods.fitted_exponential_smoothing([8, 0, 4], sf.SES_ALPHAS))
  assert march[sf.BASELINES['croston']] == pytest.approx(
      (8 + sf.CROSTON_ALPHA * (4 - 8)) / (1 + sf.CROSTON_ALPHA * (2 - 1)))
  probability = 1 + sf.TSB_BETA * (0 - 1)
  probability += sf.TSB_BETA * (1 - probability)
  assert march[sf.BASELINES['tsb']] == pytest.approx(probability * (8 + sf.TSB_ALPHA * (4 - 8)))
  assert march[sf.MASE_SCALE] == pytest.approx((8 + 4) / 2)
  assert examples[202202][sf.BASELINES['croston']] == 8.0 and examples[202202][sf.MASE_SCALE] == 8.0


def test_item_introduced_late_starts_its_history_at_its_first_sale():
  sales = [_sale(datetime.date(2021, 1, 4), 50, item='old'), _sale(datetime.date(2022, 11, 2), 6, item='new'),
           _sale(datetime.date(2022, 12, 5), 9, item='new')]
  last = sf.month_index(datetime.date(2022, 12, 1))
  new = [e for _, e in sf.item_examples('new', [s for s in sales if s.item_number == 'new'], last, eval_months=1)]
  assert [e[sf.MONTH] for e in new] == [202211, 202212]
  first = new[0]  # one month of history: every method forecasts it, nothing to scale by yet
  assert all(first[feature] == 6.0 for feature in sf.BASELINES.values())
  assert first[sf.MASE_SCALE] == 0.0 and first['has_last_year'] == 0 and first['history_months'] == 0


def _features(naive, moving_average, exponential_smoothing):
  """Raw example features of a batch (other baselines 1.0), as the examples hold them."""
  n = len(naive)
  inputs = {name: np.full((n, 1), 2.0) for name in sf.HISTORY + list(sf.BASELINES.values())}
  inputs.update({sf.BASELINES['naive']: np.array(naive, float).reshape(-1, 1),
                 sf.BASELINES['moving_average']: np.array(moving_average, float).reshape(-1, 1),
                 sf.BASELINES['exponential_smoothing']: np.array(exponential_smoothing, float).reshape(-1, 1),
                 'daily_bottles': np.zeros((n, sf.DAYS)), 'sale_day': np.zeros((n, sf.DAYS), np.int64),
                 'day_in_month': np.ones((n, sf.DAYS), np.int64), 'day_of_week': np.zeros((n, sf.DAYS), np.int64),
                 'forecast_month_of_year': np.full((n, 1), 12), 'has_last_year': np.ones((n, 1)),
                 'history_months': np.full((n, 1), 12), 'state_bottle_retail': np.full((n, 1), 9.0),
                 'pack': np.full((n, 1), 12.0)})
  features = {k: v.numpy() for k, v in sf.scaled_features({k: tf.constant(v) for k, v in inputs.items()}).items()}
  features['category_name_id'] = np.zeros(n, np.int64)
  return features


def test_scaled_features_are_relative_to_the_items_level():
  features = _features(naive=[9.0, 99.0], moving_average=[3.0, 999.0], exponential_smoothing=[1.0, 1.0])
  np.testing.assert_allclose(features['level'].ravel(), np.log([4.0, 1000.0]), rtol=1e-6)
  naive_column = len(sf.HISTORY) + list(sf.BASELINES).index('naive')
  np.testing.assert_allclose(features['relative'][:, naive_column], np.log([10 / 4, 100 / 1000]), rtol=1e-5)
  np.testing.assert_allclose(features[sf.log_feature('naive')].ravel(), np.log([10.0, 100.0]), rtol=1e-6)


@pytest.fixture
def eager():
  """Keras steps run eagerly: the same computation on a few examples without tracing a GRU graph per call (most of
  a test's time otherwise)."""
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


@pytest.mark.usefixtures('eager')
def test_untrained_model_forecasts_the_anchor_and_its_target_inverts():
  features = _features(naive=[9.0, 99.0, 0.0], moving_average=[3.0, 5.0, 1.0], exponential_smoothing=[4.0, 7.0, 0.0])
  config = {**SETTINGS, 'gru_units': 4}
  model = sf.build_model('naive', 2, config, features['relative'].shape[1], features['context'].shape[1])
  forecasts = sf.forecast_from_output(model.predict({k: features[k] for k in model.input_names}, verbose=0))
  np.testing.assert_allclose(forecasts.numpy(), [9.0, 99.0, 0.0], atol=1e-4)
  # Target: log1p(label); the model adds its correction to log1p(anchor): correction log(2) doubles 9 + 1.
  assert sf.forecast_from_output(tf.constant([[np.log1p(9.0) + np.log(2.0)]])).numpy()[0] == pytest.approx(19.0)
  assert sf.forecast_from_output(tf.constant([[-3.0]])).numpy()[0] == 0.0  # never negative


def test_anchor_is_the_baseline_with_the_lowest_training_mae():
  features = _features(naive=[10.0, 30.0], moving_average=[20.0, 20.0], exponential_smoothing=[14.0, 26.0])
  labels = np.log1p(np.array([[15.0], [25.0]]))
  assert sf.choose_anchor(features, labels) == 'exponential_smoothing'  # errors: naive 5, ma 5, ses 1


@pytest.mark.usefixtures('eager')
def test_fit_keeps_the_anchor_when_training_does_not_improve_the_held_out_months():
  features = _features(naive=[9.0] * 8, moving_average=[9.0] * 8, exponential_smoothing=[9.0] * 8)
  labels = np.log1p(np.full((8, 1), 9.0, np.float32))  # every baseline is exact: nothing to correct
  months = np.repeat([202201, 202202, 202203, 202204], 2)
  model, chosen = sf.fit(features, labels, months, 2, {**SETTINGS, 'gru_units': 4, 'epochs': 2,
                                                       'validation_months': 1})
  assert chosen['best_epoch'] == 0 and chosen['validation_loss'] == pytest.approx(0.0, abs=1e-6)
  forecasts = sf.forecast_from_output(model.predict({k: features[k] for k in model.input_names}, verbose=0))
  np.testing.assert_allclose(forecasts.numpy(), 9.0, rtol=1e-5)
  # Nothing held out: every epoch trains on every month, the last one is kept, the Tuner's score is the train MAE.
  _, chosen = sf.fit(features, labels, months, 2, {**SETTINGS, 'gru_units': 4, 'epochs': 1, 'validation_months': 0})
  assert chosen['best_epoch'] == 1 and chosen['validation_loss'] is None and np.isfinite(chosen['validation_mae'])
