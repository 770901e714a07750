"""Tests for pipelines.clv.btyd on the CDNOW 1/10 sample (2,357 customers), from the raw CSV through
our own feature code (modules.clv), in weeks with the calibration period ending 1997-09-30 (39 weeks)."""
import csv
import datetime
import json
import logging
import os
from typing import Dict, List

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from lifetimes.utils import summary_data_from_transaction_data
from ml_metadata.metadata_store import metadata_store
from tfx import v1 as tfx

from modules import clv
from pipelines import beam_io
from pipelines.clv import btyd

SAMPLE_CSV = os.path.join(os.path.dirname(__file__), os.pardir, 'data', 'clv', 'transactions_sample.csv')
CALIBRATION_END = datetime.date(1997, 9, 30)
HOLDOUT_END = datetime.date(1998, 6, 30)  # 273 days = 39 weeks after CALIBRATION_END
HOLDOUT_DAYS = (HOLDOUT_END - CALIBRATION_END).days

# Fader, Hardie & Lee (2005), "Counting your customers the easy way", Marketing Science 24(2), and
# "RFM and CLV: using iso-value curves", JMR 42 (Gamma-Gamma on the 946 repeat customers); CDNOW 1/10 sample.
PUBLISHED = {
    'bgnbd': {'r': 0.243, 'alpha': 4.414, 'a': 0.793, 'b': 2.426},
    'pnbd': {'r': 0.553, 'alpha': 10.578, 's': 0.606, 'beta': 11.669},
}
PUBLISHED_LOG_LIKELIHOOD = {'bgnbd': -9582.4, 'pnbd': -9595.0}
PUBLISHED_GAMMA_GAMMA = {'p': 6.25, 'q': 3.74, 'v': 15.44}
PUBLISHED_REPEAT_CUSTOMERS = 946


@pytest.fixture(scope='module')
def transactions() -> pd.DataFrame:
  with open(SAMPLE_CSV) as f:
    rows = list(csv.DictReader(f))
  parsed = [clv.parse_transaction(row) for row in rows]
  assert all(reason is None for _, reason in parsed)
  return pd.DataFrame([{'customer_id': customer_id, 'date': day, 'quantity': quantity, 'amount': amount}
                       for (customer_id, (day, quantity, amount)), _ in parsed])


@pytest.fixture(scope='module')
def purchases(transactions) -> Dict[str, List[clv.Purchase]]:
  by_customer: Dict[str, List[clv.Purchase]] = {}
  for row in transactions.itertuples():
    by_customer.setdefault(row.customer_id, []).append((row.date, row.quantity, row.amount))
  return by_customer


@pytest.fixture(scope='module')
def summary_days(purchases) -> pd.DataFrame:
  return pd.DataFrame.from_dict(
      {customer_id: clv.customer_features(p, CALIBRATION_END) for customer_id, p in purchases.items()},
      orient='index')


@pytest.fixture(scope='module')
def summary_weeks(summary_days) -> pd.DataFrame:
  return btyd.to_time_unit(summary_days, 'weeks')


@pytest.fixture(scope='module')
def fitted_bgnbd(summary_weeks) -> btyd.FittedBtyd:
  return btyd.fit_btyd(summary_weeks, 'bgnbd', 0.0, 'weeks')


def _assert_within_1_percent(fitted: Dict[str, float], published: Dict[str, float]) -> None:
  for name, value in published.items():
    assert fitted[name] == pytest.approx(value, rel=0.01), (name, fitted[name], value)


# --- our features vs lifetimes ---------------------------------------------------------------------


def test_features_equal_lifetimes_summary(transactions, summary_days, summary_weeks):
  expected = summary_data_from_transaction_data(
      transactions.assign(date=pd.to_datetime(transactions['date'])), 'customer_id', 'date',
      monetary_value_col='amount', freq='D', observation_period_end='1997-09-30')
  ours = summary_days.loc[expected.index]
  assert len(expected) == len(summary_days) == 2357
  for column in ('frequency', 'recency', 'T'):
    np.testing.assert_array_equal(ours[column].to_numpy(dtype=float), expected[column].to_numpy(dtype=float))
  for column in ('recency', 'T'):
    np.testing.assert_allclose(summary_weeks.loc[expected.index, column], expected[column] / 7, rtol=1e-12)
  np.testing.assert_allclose(ours['monetary_value'], expected['monetary_value'], rtol=1e-9)
  np.testing.assert_array_equal(summary_weeks['frequency'], summary_days['frequency'])
  np.testing.assert_array_equal(summary_weeks['monetary_value'], summary_days['monetary_value'])


# --- published parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize('model', ['bgnbd', 'pnbd'])
def test_purchase_model_matches_published(summary_weeks, model):
  params = btyd.fit_btyd(summary_weeks, model, 0.0, 'weeks').params()['purchase_model']
  _assert_within_1_percent(params['params'], PUBLISHED[model])
  assert params['log_likelihood'] == pytest.approx(PUBLISHED_LOG_LIKELIHOOD[model], abs=0.1)
  assert params['n_customers'] == 2357 and params['attempts'] == 1
  assert all(0 < se < np.inf for se in params['standard_errors'].values())


def test_gamma_gamma_matches_published(fitted_bgnbd):
  spend = fitted_bgnbd.params()['spend_model']
  assert spend['n_customers'] == PUBLISHED_REPEAT_CUSTOMERS
  _assert_within_1_percent(spend['params'], PUBLISHED_GAMMA_GAMMA)
  p, q, v = (spend['params'][k] for k in ('p', 'q', 'v'))
  assert spend['population_mean_spend'] == pytest.approx(p * v / (q - 1))


def test_mbgnbd_fits_as_well_as_bgnbd(summary_weeks, fitted_bgnbd):
  params = btyd.fit_btyd(summary_weeks, 'mbgnbd', 0.0, 'weeks').params()['purchase_model']
  assert set(params['params']) == {'r', 'alpha', 'a', 'b'}
  assert params['log_likelihood'] == pytest.approx(
      fitted_bgnbd.params()['purchase_model']['log_likelihood'], abs=5)


# --- predictions ---------------------------------------------------------------------------------------


def test_predict(fitted_bgnbd, summary_weeks):
  predicted = fitted_bgnbd.predict(summary_weeks, 39.0)
  assert list(predicted.columns) == btyd.PREDICTION_COLUMNS
  assert predicted.index.equals(summary_weeks.index)
  assert predicted['p_alive'].between(0, 1).all()
  np.testing.assert_allclose(predicted['clv'], predicted['expected_purchases'] * predicted['expected_spend'],
                             rtol=1e-9)
  one_time = summary_weeks['frequency'] == 0
  np.testing.assert_allclose(predicted.loc[one_time, 'expected_spend'],
                             fitted_bgnbd.params()['spend_model']['population_mean_spend'])
  discounted = fitted_bgnbd.predict(summary_weeks, 39.0, annual_discount_rate=0.1)
  np.testing.assert_allclose(discounted['expected_purchases'], predicted['expected_purchases'])
  ratio = discounted['clv'].sum() / predicted['clv'].sum()
  assert 1.1 ** -0.75 < ratio < 1.1 ** -(1 / 12)  # purchases fall between the first month and the 39th week
  assert (fitted_bgnbd.predict(summary_weeks, 0.0)[['expected_purchases', 'clv']] == 0).all().all()


def test_save_and_load(fitted_bgnbd, summary_weeks, tmp_path):
  fitted_bgnbd.save(str(tmp_path))
  with open(tmp_path / btyd.PARAMS_FILE) as f:
    assert json.load(f) == fitted_bgnbd.params()
  loaded = btyd.load_fitted(str(tmp_path))
  assert (loaded.model, loaded.time_unit) == ('bgnbd', 'weeks')
  pd.testing.assert_frame_equal(loaded.predict(summary_weeks, 39.0, 0.1), fitted_bgnbd.predict(summary_weeks, 39.0, 0.1))


def test_to_time_unit(summary_days):
  pd.testing.assert_frame_equal(btyd.to_time_unit(summary_days, 'days'), summary_days.astype({'recency': float, 'T': float}))
  with pytest.raises(ValueError, match='time unit'):
    btyd.to_time_unit(summary_days, 'months')


# --- invalid arguments and convergence failures -----------------------------------------------------


def test_invalid_arguments(summary_weeks, fitted_bgnbd):
  with pytest.raises(ValueError, match="Unknown model 'bg'"):
    btyd.fit_btyd(summary_weeks, 'bg', 0.0)
  with pytest.raises(ValueError, match='penalizer_coef'):
    btyd.fit_btyd(summary_weeks, 'bgnbd', -1.0)
  with pytest.raises(ValueError, match='lacks columns'):
    btyd.fit_btyd(summary_weeks.drop(columns='T'), 'bgnbd', 0.0)
  with pytest.raises(ValueError, match='horizon'):
    fitted_bgnbd.predict(summary_weeks, -1.0)
  with pytest.raises(ValueError, match='annual_discount_rate'):
    fitted_bgnbd.predict(summary_weeks, 1.0, annual_discount_rate=-0.1)


def _one_repeat_customer(n: int) -> pd.DataFrame:
  """n customers of ages 27..39 weeks; only the first bought again (week 5)."""
  summary = pd.DataFrame({'frequency': 0, 'recency': 0.0, 'T': np.linspace(27, 39, n), 'monetary_value': 0.0})
  summary.loc[0, ['frequency', 'recency', 'monetary_value']] = [1, 5.0, 20.0]
  return summary


@pytest.mark.filterwarnings('ignore::RuntimeWarning')  # degenerate fits overflow
def test_no_repeat_customers_is_a_clear_error(summary_weeks):
  # lifetimes itself "converges" here (r -> 0, alpha -> 1e5, NaN standard errors), hence the explicit check.
  nobody_returns = summary_weeks.assign(frequency=0, recency=0.0, monetary_value=0.0)
  with pytest.raises(ValueError, match=r'no customer has a repeat purchase \(2357 customers, 2357 with frequency 0'):
    btyd.fit_btyd(nobody_returns, 'bgnbd', 0.0, 'weeks')


@pytest.mark.filterwarnings('ignore::RuntimeWarning')  # degenerate fits overflow
def test_convergence_failure_is_retried_with_larger_penalizer(caplog):
  # Real lifetimes behaviour: BG/NBD raises ConvergenceError with penalizer 0, 1e-3 and 1e-2, converges with
  # 1e-1; Gamma-Gamma on the single repeat customer fails with 0 and converges with 1e-3.
  caplog.set_level(logging.WARNING)
  params = btyd.fit_btyd(_one_repeat_customer(1000), 'bgnbd', 0.0, 'weeks').params()
  assert (params['purchase_model']['attempts'], params['purchase_model']['penalizer_coef']) == (4, pytest.approx(0.1))
  assert (params['spend_model']['attempts'], params['spend_model']['penalizer_coef']) == (2, pytest.approx(1e-3))
  messages = [r.getMessage() for r in caplog.records if 'did not converge' in r.getMessage()]
  assert len(messages) == 4 and 'penalizer_coef=0.01 (attempt 3 of 4)' in messages[2]


@pytest.mark.filterwarnings('ignore::RuntimeWarning')  # degenerate fits overflow
def test_convergence_failure_after_all_retries_describes_the_data():
  # Real lifetimes behaviour: with 100 customers, BG/NBD fails with penalizer 0.1, 1, 10 and 100.
  with pytest.raises(ValueError) as error:
    btyd.fit_btyd(_one_repeat_customer(100), 'bgnbd', 0.1, 'weeks')
  message = str(error.value)
  assert message.startswith('bgnbd did not converge with penalizer_coef [0.1, 1.0, 10.0, 100.0]')
  assert '100 customers, 99 with frequency 0, 1 repeat customers, max frequency 1' in message


# --- the BtydFit component in a LocalDagRunner pipeline ------------------------------------------------


def _write_split(directory, split: str, rows: List[Dict]) -> None:
  os.makedirs(directory / f'Split-{split}')
  with tf.io.TFRecordWriter(str(directory / f'Split-{split}' / 'data.gz'), options='GZIP') as writer:
    for row in rows:
      writer.write(beam_io.row_to_example(row).SerializeToString())


def _customer_examples(purchases, directory) -> Dict[str, List[Dict]]:
  """Writes Split-train/eval/score as ExamplesBuilder does (calibration features + holdout spend label)."""
  splits = {'train': [], 'eval': [], 'score': []}
  for customer_id, history in purchases.items():
    calibration = clv.customer_features(history, CALIBRATION_END)
    splits[clv.assign_split(customer_id, 20, 0)].append({
        'customer_id': customer_id, **calibration,
        'label': clv.spend_between(history, CALIBRATION_END, HOLDOUT_END)})
    splits['score'].append({'customer_id': customer_id, **clv.customer_features(history, HOLDOUT_END)})
  for split, rows in splits.items():
    _write_split(directory, split, rows)
  return splits


def _read_rows(split_dir: str) -> Dict[str, Dict]:
  files = tf.io.gfile.glob(os.path.join(split_dir, '*.gz'))
  rows = [beam_io.example_to_row(tf.train.Example.FromString(r.numpy()))
          for r in tf.data.TFRecordDataset(files, compression_type='GZIP')]
  return {row['customer_id']: row for row in rows}


def test_btyd_fit_component_in_a_pipeline(purchases, tmp_path):
  splits = _customer_examples(purchases, tmp_path / 'examples')
  importer = tfx.dsl.Importer(
      source_uri=str(tmp_path / 'examples'), artifact_type=tfx.types.standard_artifacts.Examples,
      properties={'split_names': '["train","eval","score"]'}).with_id('examples')
  fit = btyd.BtydFit(examples=importer.outputs['result'], model_type='bgnbd', penalizer_coef=0.0,
                     time_unit='weeks', horizon_days=float(HOLDOUT_DAYS), annual_discount_rate=0.0)
  connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp_path / 'mlmd.sqlite'))
  tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
      pipeline_name='btyd_test', pipeline_root=str(tmp_path / 'root'), components=[importer, fit],
      metadata_connection_config=connection))

  store = metadata_store.MetadataStore(connection)
  [model] = store.get_artifacts_by_type('Model')
  [predictions] = [a for a in store.get_artifacts_by_type('Examples') if 'BtydFit' in a.uri]
  assert json.loads(predictions.properties['split_names'].string_value) == ['eval', 'score']

  with open(os.path.join(model.uri, btyd.PARAMS_FILE)) as f:
    params = json.load(f)
  assert (params['model'], params['time_unit']) == ('bgnbd', 'weeks')
  assert params['purchase_model']['n_customers'] == len(splits['train'])
  assert params['spend_model']['n_customers'] == sum(1 for row in splits['train'] if row['frequency'] > 0)
  assert params['purchase_model']['attempts'] == 1

  for split in ('eval', 'score'):
    rows = _read_rows(os.path.join(predictions.uri, f'Split-{split}'))
    assert set(rows) == {row['customer_id'] for row in splits[split]}
    assert all(0 <= row['btyd_p_alive'] <= 1 for row in rows.values())
    assert all(isinstance(row['frequency'], int) for row in rows.values())  # copied features keep their type
    assert all(row['btyd_clv'] >= 0 for row in rows.values())

  eval_rows = _read_rows(os.path.join(predictions.uri, 'Split-eval'))
  predicted = sum(row['btyd_expected_purchases'] for row in eval_rows.values())
  actual = sum(len({day for day, _, _ in purchases[c] if CALIBRATION_END < day <= HOLDOUT_END}) for c in eval_rows)
  assert 0.75 * actual < predicted < 1.25 * actual, (predicted, actual)
  predicted_spend = sum(row['btyd_clv'] for row in eval_rows.values())
  actual_spend = sum(row['label'] for row in eval_rows.values())
  assert 0.6 * actual_spend < predicted_spend < 1.4 * actual_spend, (predicted_spend, actual_spend)

  loaded = btyd.load_fitted(model.uri)
  summary = btyd.examples_summary([beam_io.row_to_example(eval_rows[c]) for c in sorted(eval_rows)], 'weeks')
  np.testing.assert_allclose(loaded.predict(summary, HOLDOUT_DAYS / 7)['clv'],
                             [eval_rows[c]['btyd_clv'] for c in sorted(eval_rows)], rtol=1e-5)
