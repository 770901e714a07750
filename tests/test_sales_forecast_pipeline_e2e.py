"""End to end: the sales forecast pipeline with LocalDagRunner on the bundled sample (with its malformed rows)."""
import csv
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import SALES_SAMPLE as SAMPLE
from modules import sales_forecast as sf
from pipelines.__main__ import main
from pipelines import beam_io
from pipelines.artifacts import read_split
from pipelines.sales_forecast.pipeline import champion_forecasts, line_to_row

COMPONENTS = {'CsvLinesExampleGen', 'ExamplesBuilder', 'StatisticsGen', 'SchemaGen', 'ExampleValidator',
              'AnomaliesGate', 'Transform', 'Tuner', 'Trainer', 'latest_blessed_model_resolver', 'Evaluator',
              'ChampionGate', 'Pusher', 'BulkInferrer', 'PredictionsExport'}
METHODS = ('rnn', 'naive', 'seasonal_naive', 'moving_average', 'exponential_smoothing', 'croston', 'tsb')


@pytest.fixture(name='run')
def run_fixture(sales_run):
  """The shared run (conftest.sales_run)."""
  return sales_run


def _expected_rejections():
  with open(SAMPLE) as f:
    header = next(csv.reader(f))
    lines = f.read().splitlines()
  counts = {}
  for line in lines:
    _, reason = sf.parse_sale(line_to_row(line, header))
    if reason:
      counts[reason] = counts.get(reason, 0) + 1
  return len(lines), counts


def test_every_component_ran_and_the_champion_decided_the_push(run):
  summary = run.summary
  assert summary['status'] == 'succeeded', summary['error']
  assert set(summary['components']) == COMPONENTS
  champion = summary['champion']
  assert champion['metric'] == 'mean_absolute_error' and set(champion['values']) == set(METHODS)
  for name, value in champion['values'].items():
    assert value == pytest.approx(summary['metrics'][name]['mae'])
  baselines = {name: summary['metrics'][name]['mae'] for name in METHODS if name != 'rnn'}
  best = min(baselines, key=baselines.get)
  assert champion['winner'] == ('rnn' if summary['metrics']['rnn']['mae'] < baselines[best] else best)
  if champion['model_won']:
    assert summary['blessed'] is True and os.path.isfile(os.path.join(summary['pushed_model'], 'saved_model.pb'))
  else:
    assert summary['blessed'] is False and summary['pushed_model'] is None


def test_tuner_searched_and_its_best_values_reached_the_trainer(run):
  summary = run.summary
  tuning = summary['tuning']
  assert len(tuning['trials']) == summary['settings']['tuning_trials']
  assert set(tuning['best']) == {'hidden_units', 'l2', 'dropout', 'learning_rate'}
  assert all(np.isfinite(trial['score']) for trial in tuning['trials'])
  training = summary['data']['training']  # what run_fn trained with (the Trainer's model_run)
  assert {k: v for k, v in training['hyperparameters'].items() if k in tuning['best']} == tuning['best']
  assert training['anchor'] in sf.BASELINES and 0 <= training['best_epoch'] <= summary['settings']['epochs']


def test_bad_rows_counted_by_reason_and_kept(run):
  out, summary = run.out, run.summary
  rows, expected = _expected_rejections()
  assert set(expected) == set(sf.REASONS)  # the sample has every kind of malformed row
  assert summary['data']['rows_read'] == rows
  assert summary['data']['skipped'] == expected
  with open(out / 'rejected_rows.csv') as f:
    rejected = list(csv.DictReader(f))
  assert len(rejected) == sum(expected.values())
  assert {r['reason'] for r in rejected} == set(expected)


def test_metrics_of_the_model_and_each_baseline(run):
  summary = run.summary
  for model in METHODS:
    metrics = summary['metrics'][model]
    assert metrics['example_count'] == summary['data']['examples']['eval']
    assert metrics['wape'] == pytest.approx(metrics['mae'] / metrics['mean_label'])
    assert 0 < metrics['mae'] <= metrics['rmse'] and 0 < metrics['mase'] < 10
  assert set(summary['data']['mae_by_category']) and summary['data']['best_baseline'] in sf.BASELINES


def test_error_per_rolling_origin_adds_up_to_the_eval_error(run):
  summary = run.summary
  with open(summary['outputs']['error_by_origin']) as f:
    records = list(csv.DictReader(f))
  origins = sorted({r['origin'] for r in records})
  assert len(origins) == summary['settings']['eval_months']
  for method in METHODS:
    mine = [r for r in records if r['method'] == method]
    assert len(mine) == len(origins) and sum(int(r['examples']) for r in mine) == summary['data']['examples']['eval']
    total = sum(float(r['mae']) * int(r['examples']) for r in mine) / summary['data']['examples']['eval']
    assert total == pytest.approx(summary['metrics'][method]['mae'], rel=1e-4)
  assert os.path.getsize(summary['outputs']['error_by_origin_plot']) > 10_000


def _eval_rows(summary):
  builder_root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(summary['outputs']['evaluation']))),
                              'ExamplesBuilder', 'examples')
  uri = os.path.join(builder_root, sorted(os.listdir(builder_root))[-1])
  return uri, [beam_io.example_to_row(tf.train.Example.FromString(s)) for s in read_split(uri, 'eval')]


def test_baseline_metrics_match_numpy_on_the_eval_examples(run):
  summary = run.summary
  _, rows = _eval_rows(summary)
  labels = np.array([r[sf.LABEL] for r in rows])
  scales = np.array([r[sf.MASE_SCALE] for r in rows])
  for name, feature in sf.BASELINES.items():
    errors = np.array([r[feature] for r in rows]) - labels
    assert summary['metrics'][name]['mae'] == pytest.approx(np.abs(errors).mean(), rel=1e-5)
    assert summary['metrics'][name]['rmse'] == pytest.approx(np.sqrt((errors ** 2).mean()), rel=1e-5)
    assert summary['metrics'][name]['mase'] == pytest.approx(np.mean(np.abs(errors[scales > 0]) / scales[scales > 0]))


def _score_rows(summary):
  uri, _ = _eval_rows(summary)
  serialized = list(read_split(uri, 'score'))
  return serialized, [beam_io.example_to_row(tf.train.Example.FromString(s)) for s in serialized]


def test_forecasts_are_the_champions_one_row_per_score_example(run):
  out, summary = run.out, run.summary
  with open(out / 'forecasts.csv') as f:
    reader = csv.DictReader(f)
    rows = list(reader)
  assert reader.fieldnames == ['item_number', 'forecast_month', 'forecast_bottles', 'predicted_by']
  assert len(rows) == summary['data']['examples']['score'] > 0
  assert {r['forecast_month'] for r in rows} == {'2024-01'}
  winner = summary['champion']['winner']
  assert {r['predicted_by'] for r in rows} == {winner} and summary['data']['forecasts_by'] == winner
  assert all(float(r['forecast_bottles']) >= 0 for r in rows)
  assert os.path.getsize(summary['outputs']['actual_vs_forecast_plot']) > 10_000
  if winner != 'rnn':  # the baseline's own forecasts of the latest month, from the score examples
    _, score = _score_rows(summary)
    expected = {r[sf.KEY]: r[sf.BASELINES[winner]] for r in score}
    assert {r['item_number']: float(r['forecast_bottles']) for r in rows} == pytest.approx(expected)


def test_a_baseline_champion_writes_its_forecasts_marked(run, tmp_path):
  """Whatever won the shared run: the baseline branch of forecasts.csv on its real score examples."""
  summary = run.summary
  _, score = _score_rows(summary)
  frame = champion_forecasts('tsb', score, str(tmp_path / 'unused.csv'))
  assert list(frame.columns) == ['item_number', 'forecast_month', 'forecast_bottles', 'predicted_by']
  assert set(frame['predicted_by']) == {'tsb'} and len(frame) == len(score)
  expected = {r[sf.KEY]: r[sf.BASELINES['tsb']] for r in score}
  assert dict(zip(frame['item_number'], frame['forecast_bottles'])) == pytest.approx(expected)


def test_serving_signature_gives_the_bulk_inferrer_predictions(run):
  out, summary = run.out, run.summary
  if not summary['champion']['model_won']:
    pytest.skip('the model lost to a baseline on this run: it was not blessed, nothing was scored')
  serialized, score = _score_rows(summary)
  serve = tf.saved_model.load(summary['pushed_model']).signatures['serving_default']
  served = serve(examples=tf.constant(serialized))
  keys = [r[sf.KEY] for r in score]
  with open(out / 'predictions.csv') as f:
    bulk = {r[sf.KEY]: float(r[sf.PREDICTION]) for r in csv.DictReader(f)}
  assert sorted(bulk) == sorted(keys)
  for key, value in zip(keys, served[sf.PREDICTION].numpy()):
    assert value == pytest.approx(bulk[key], rel=1e-5, abs=1e-4)


def test_too_many_rejected_rows_fail_the_run_naming_the_counts(run, tmp_path):
  """The sample has about 1% bad rows: a 0.1% limit stops the run in the ExamplesBuilder."""
  out = run.out
  copy = tmp_path / 'runs' / 'sales_forecast'
  copy.mkdir(parents=True)
  shutil.copy(out / 'metadata.sqlite', copy / 'metadata.sqlite')
  assert main(['run', 'sales_forecast', '--data', SAMPLE, '--output', str(tmp_path / 'runs'),
               '--set', 'epochs=3', '--set', 'max_rejected_fraction=0.001']) == 1
  summary = json.loads((copy / 'summary.json').read_text())
  assert summary['status'] == 'failed'
  assert 'more than max_rejected_fraction 0.10%' in summary['error']
  assert all(reason in summary['error'] for reason in sf.REASONS)


def test_a_handicapped_model_loses_is_not_pushed_and_the_baseline_is_served(run, tmp_path):
  """One epoch at a learning rate of 5 wrecks the correction: the best baseline must be the champion."""
  out, shared = run.out, run.summary
  copy = tmp_path / 'runs' / 'sales_forecast'
  copy.mkdir(parents=True)
  shutil.copy(out / 'metadata.sqlite', copy / 'metadata.sqlite')  # examples and Transform come from the cache
  assert main(['run', 'sales_forecast', '--data', SAMPLE, '--output', str(tmp_path / 'runs'), '--set', 'epochs=1',
               '--set', 'learning_rate=5', '--set', 'tuning=off']) == 0
  summary = json.loads((copy / 'summary.json').read_text())
  baselines = {name: summary['metrics'][name]['mae'] for name in sf.BASELINES}
  winner = min(baselines, key=baselines.get)
  assert summary['metrics']['rnn']['mae'] > baselines[winner]
  assert summary['champion']['winner'] == winner and summary['champion']['model_won'] is False
  assert summary['blessed'] is False and summary['pushed_model'] is None and summary['data']['rows_scored'] == 0
  with open(copy / 'forecasts.csv') as f:
    rows = list(csv.DictReader(f))
  _, score = _score_rows(shared)  # the same (cached) examples
  assert {r['predicted_by'] for r in rows} == {winner}
  assert {r['item_number']: float(r['forecast_bottles']) for r in rows} == pytest.approx(
      {r[sf.KEY]: r[sf.BASELINES[winner]] for r in score})
