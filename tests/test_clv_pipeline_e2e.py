"""End to end: the CLV pipeline with LocalDagRunner on the CDNOW 1/10 sample (plus a few bad rows)."""
import csv
import glob
import json
import os
import shutil

import pytest
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2

from conftest import BAD_ROWS, SAMPLE
from pipelines.__main__ import main

COMPONENTS = {'CsvExampleGen', 'ExamplesBuilder', 'StatisticsGen', 'SchemaGen', 'ExampleValidator', 'AnomaliesGate',
              'Transform', 'Tuner', 'Trainer', 'BtydFit', 'latest_blessed_model_resolver', 'Evaluator', 'ChampionGate',
              'Pusher', 'BulkInferrer', 'DnnPredictionsExport', 'PredictionsExport'}


@pytest.fixture(scope='module')
def run(clv_run):
  """(output dir, first summary, second summary, MLMD executions after the first run, all executions)."""
  return clv_run


def test_every_component_executed(run):
  first = run.first
  assert first['status'] == 'succeeded'
  assert set(first['components']) == COMPONENTS
  assert all(c['state'] in ('complete', 'cached') for c in first['components'].values())
  assert not first['components']['Trainer']['cached']


def test_predictions_one_row_per_scored_customer(run):
  out, first = run.out, run.first
  with open(out / 'predictions.csv') as f:
    rows = list(csv.DictReader(f))
  with open(SAMPLE) as f:
    customers = {row['customer_id'] for row in csv.DictReader(f)}
  assert len(customers) == 2357
  assert {row['customer_id'] for row in rows} == customers
  assert len(rows) == len(customers) == first['data']['examples']['score'] == first['data']['rows_scored']
  assert all(float(row['predicted_value']) >= 0 for row in rows)
  assert all(0 <= float(row['btyd_p_alive']) <= 1 and float(row['btyd_clv']) >= 0 for row in rows)


def test_bad_rows_are_counted_and_kept(run):
  out, first = run.out, run.first
  assert first['data']['rows_read'] == 6919 + len(BAD_ROWS)
  skipped = first['data']['skipped']
  assert skipped['unparsable_date'] == 1
  assert skipped['negative_quantity_or_amount'] == 1
  assert skipped['missing_customer_id'] == 1
  with open(out / 'rejected_rows.csv') as f:
    rejected = list(csv.DictReader(f))
  assert len(rejected) == sum(skipped.values())
  assert {r['reason'] for r in rejected} == set(skipped)
  assert first['data']['examples']['train'] + first['data']['examples']['eval'] == 2357 - skipped.get(
      'calibration_spend_above_max_monetary', 0)


def test_dnn_beats_the_training_mean_on_holdout(run):
  first = run.first
  dnn, baseline = first['metrics']['dnn'], first['metrics']['baseline']
  assert dnn['example_count'] == baseline['example_count'] == first['data']['examples']['eval']
  assert dnn['mean_absolute_error'] < baseline['mean_absolute_error']
  assert dnn['normalized_gini'] > 0.3
  assert baseline['normalized_gini'] == 0.0


def test_btyd_side_by_side_on_the_same_customers(run):
  out, first = run.out, run.first
  btyd, dnn = first['metrics']['btyd'], first['metrics']['dnn']
  assert btyd['example_count'] == dnn['example_count']
  assert btyd['mean_label'] == pytest.approx(dnn['mean_label'], rel=1e-6)
  assert btyd['mean_absolute_error'] < first['metrics']['baseline']['mean_absolute_error']
  assert btyd['normalized_gini'] > 0.3
  assert not any(key.startswith('btyd_') for key in dnn)
  report = (out / 'report.md').read_text()
  assert f"| MAE | {dnn['mean_absolute_error']:.4g} | {btyd['mean_absolute_error']:.4g} |" in report
  for plot in ('p_alive_histogram', 'expected_purchases_matrix', 'decile_plot'):
    assert os.path.getsize(first['outputs'][plot]) > 10_000


def test_model_blessed_and_pushed(run):
  """The run's primary metric is normalized Gini (see conftest): the DNN ranks best, so it is the champion,
  pushed, and its predictions are the output."""
  out, first = run.out, run.first
  gini = {name: first['metrics'][name]['normalized_gini'] for name in ('dnn', 'btyd', 'baseline')}
  assert gini['dnn'] > max(gini['btyd'], gini['baseline'])
  assert first['blessed'] is True
  assert first['blessing_failures'] == []
  assert os.path.isfile(os.path.join(first['pushed_model'], 'saved_model.pb'))
  with open(out / 'predictions.csv') as f:
    assert {row['predicted_by'] for row in csv.DictReader(f)} == {'dnn'}


def test_summary_and_report_agree_with_tfma(run):
  out, first = run.out, run.first
  result = tfma.load_eval_result(first['outputs']['evaluation'])
  overall = dict(result.slicing_metrics)[()]
  assert overall['predicted_value']['']['mean_absolute_error']['doubleValue'] == pytest.approx(
      first['metrics']['dnn']['mean_absolute_error'])
  report = (out / 'report.md').read_text()
  assert f"- rows scored: {first['data']['rows_scored']}" in report
  assert os.path.isfile(first['outputs']['decile_plot'])


UPSTREAM_OF_EVALUATOR = {'CsvExampleGen', 'ExamplesBuilder', 'StatisticsGen', 'SchemaGen', 'ExampleValidator',
                         'AnomaliesGate', 'Transform', 'Tuner', 'Trainer', 'BtydFit'}


def test_second_run_reuses_the_cache(run):
  """Same inputs: everything up to the Trainer is a cache hit. The Evaluator's inputs differ (the resolver now
  gives it the first run's blessed model as baseline), so it and what follows it run again."""
  first, second, executions_after_first, executions = run.first, run.second, run.executions_after_first, run.executions
  assert second['status'] == 'succeeded'
  assert {n for n, c in second['components'].items() if c['cached']} == UPSTREAM_OF_EVALUATOR
  new = executions[executions_after_first:]
  cached = [e for e in new if e.last_known_state == metadata_store_pb2.Execution.CACHED]
  completed = [e for e in new if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
  assert len(cached) == len(UPSTREAM_OF_EVALUATOR)
  assert len(completed) == len(COMPONENTS) - len(UPSTREAM_OF_EVALUATOR)
  # The candidate is the baseline itself: same metrics, no change, still blessed.
  for model, values in first['metrics'].items():
    assert second['metrics'][model] == pytest.approx(values, rel=1e-6)  # Beam may sum in another order
  assert second['data'] == first['data']
  assert second['blessed'] is True
  diff = dict(tfma.load_eval_result(second['outputs']['evaluation'], model_name='candidate').slicing_metrics)[()]
  assert diff['predicted_value']['']['mean_absolute_error_diff']['doubleValue'] == pytest.approx(0.0, abs=1e-9)


def test_a_model_failing_the_gate_is_not_pushed_nor_scored(run, tmp_path):
  """Against the blessed model, require a 50% lower MAE: the Evaluator must refuse, and the report say why."""
  out, first = run.out, run.first
  copy = tmp_path / 'runs' / 'clv'
  copy.mkdir(parents=True)
  shutil.copy(out / 'metadata.sqlite', copy / 'metadata.sqlite')  # cached artifacts stay where they are
  assert main(['run', 'clv', '--data', first['data']['path'], '--output', str(tmp_path / 'runs'),
               '--set', 'epochs=20', '--set', 'max_mae_increase=-0.5', '--set', 'primary_metric=normalized_gini']) == 0
  summary = json.loads((copy / 'summary.json').read_text())
  assert summary['components']['Trainer']['cached']
  assert not summary['components']['Evaluator']['cached']
  assert summary['blessed'] is False and summary['pushed_model'] is None
  assert any(failure.startswith('mean_absolute_error') for failure in summary['blessing_failures'])
  assert not (copy / 'serving_model').exists()
  assert 'not blessed: mean_absolute_error' in (copy / 'report.md').read_text()
  # The refused DNN scores nobody: the best baseline's predictions are the output, marked as such.
  with open(copy / 'predictions.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == summary['data']['rows_scored'] == first['data']['examples']['score']
  assert {row['predicted_by'] for row in rows} == {'btyd'}
  assert all(row['predicted_value'] == row['btyd_clv'] for row in rows)


def test_a_handicapped_dnn_loses_to_btyd_and_btyd_is_the_output(tmp_path):
  """One epoch at a tiny learning rate: the DNN stays near its initial bias (the training mean), BTYD wins the
  champion gate on MAE, the DNN is not pushed, and predictions.csv holds BTYD's predictions, marked."""
  assert main(['run', 'clv', '--data', SAMPLE, '--output', str(tmp_path), '--set', 'epochs=1',
               '--set', 'learning_rate=0.000001', '--set', 'tuning=off']) == 0
  out = tmp_path / 'clv'
  summary = json.loads((out / 'summary.json').read_text())
  dnn, btyd = summary['metrics']['dnn'], summary['metrics']['btyd']
  assert btyd['mean_absolute_error'] < dnn['mean_absolute_error']
  [gate_file] = glob.glob(str(out / 'root' / 'ChampionGate' / 'blessing' / '*' / 'champion.json'))
  champion = json.loads(open(gate_file).read())
  assert (champion['metric'], champion['winner'], champion['model_won']) == ('mean_absolute_error', 'btyd', False)
  assert champion['values']['dnn'] == pytest.approx(dnn['mean_absolute_error'])
  assert os.path.exists(os.path.join(os.path.dirname(gate_file), 'NOT_BLESSED'))
  assert summary['pushed_model'] is None and not (out / 'serving_model').exists()
  with open(out / 'predictions.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2357 == summary['data']['rows_scored']
  assert {row['predicted_by'] for row in rows} == {'btyd'}
  assert all(row['predicted_value'] == row['btyd_clv'] for row in rows)
  assert {'btyd_p_alive', 'btyd_expected_purchases', 'btyd_expected_spend'} <= set(rows[0])
