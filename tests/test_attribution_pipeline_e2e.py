"""End to end: the attribution pipeline with LocalDagRunner on the bundled 2,500-user sample (plus bad rows),
once with its ground truth and once more without (cached up to the Trainer)."""
import csv
import dataclasses
import glob
import json
import os
import pathlib
from typing import Any, Dict

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from pipelines.attribution import baselines
from pipelines.__main__ import main
from pipelines.attribution import campaign_report

SAMPLE = os.path.join(REPO, 'data', 'attribution', 'impressions_sample.csv')
TRUTH = os.path.join(REPO, 'data', 'attribution', 'ground_truth_sample.csv')
BAD_ROWS = ['u999001,not-a-time,c01,0', ',1704067300,c02,0', 'u999002,1704067300,,1', 'u999003,1704067300,c03,yes']
METHODS = {'total_effect', 'removal', 'shapley', 'attention', 'attention_full_credit', 'last_touch', 'first_touch',
           'linear', 'position_based', 'time_decay', 'markov', 'shapley_rates'}
COMPONENTS = {'CsvExampleGen', 'ExamplesBuilder', 'StatisticsGen', 'SchemaGen', 'ExampleValidator', 'AnomaliesGate',
              'Transform', 'Tuner', 'Trainer', 'latest_blessed_model_resolver', 'Evaluator', 'ChampionGate', 'Pusher',
              'BulkInferrer',
              'PredictionsExport', 'CampaignReport'}


@dataclasses.dataclass(frozen=True)
class AttributionRuns:
  """The run directory, the summary of the run with the sample's ground truth, that of a second run without it,
  and the first run's campaign_report.csv."""
  out: pathlib.Path
  first: Dict[str, Any]
  second: Dict[str, Any]
  first_report: str


_RUNS: Dict[str, AttributionRuns] = {}


def shared_run(tmp_path_factory):
  """The two pipeline runs, made once per test session whichever test module asks first (the notebook test
  imports this module; a fixture imported there would be a second fixture and run the pipeline again)."""
  if 'runs' not in _RUNS:
    root = tmp_path_factory.mktemp('attribution_e2e')
    data = root / 'impressions.csv'
    with open(SAMPLE) as f:
      data.write_text(f.read() + '\n'.join(BAD_ROWS) + '\n')
    args = ['run', 'attribution', '--data', str(data), '--output', str(root / 'runs'), '--set', 'epochs=4',
            '--set', 'tuning=on']  # off by default; the Tuner's path is under test here
    assert main(args + ['--set', f'ground_truth={TRUTH}']) == 0
    out = root / 'runs' / 'attribution'
    first = json.loads((out / 'summary.json').read_text())
    first_report = (out / 'campaign_report.csv').read_text()
    assert main(args + ['--set', 'ground_truth=']) == 0
    _RUNS['runs'] = AttributionRuns(out, first, json.loads((out / 'summary.json').read_text()), first_report)
  return _RUNS['runs']


@pytest.fixture(scope='session')
def attribution_run(tmp_path_factory):
  """The two runs (AttributionRuns)."""
  return shared_run(tmp_path_factory)


def _sample_rows():
  with open(SAMPLE) as f:
    return list(csv.DictReader(f))


def test_every_component_ran(attribution_run):
  first = attribution_run.first
  assert first['status'] == 'succeeded', first['error']
  assert set(first['components']) == COMPONENTS
  assert all(c['state'] in ('complete', 'cached') for c in first['components'].values())


def test_rows_are_counted_and_bad_rows_kept(attribution_run):
  out, first = attribution_run.out, attribution_run.first
  rows = _sample_rows()
  data = first['data']
  assert data['rows_read'] == len(rows) + len(BAD_ROWS)
  skipped = dict(data['skipped'])
  truncated = skipped.pop('truncated_beyond_journey_max_length', 0)
  assert skipped == {'unparsable_timestamp': 1, 'missing_uid': 1, 'missing_campaign': 1, 'unparsable_conversion': 1}
  with open(out / 'rejected_rows.csv') as f:
    rejected = list(csv.DictReader(f))
  assert len(rejected) == sum(data['skipped'].values())
  conversions = sum(int(r['conversion']) for r in rows)
  assert data['examples']['converting'] == data['converting_journeys'] == conversions
  journeys = sum(data['examples'][s] for s in ('train', 'eval', 'test'))
  assert journeys == data['journeys']
  # Every impression is in a journey (at most journey_max_length each) or counted as truncated.
  assert truncated == len(rows) - _touches_in_journeys(out)


def _touches_in_journeys(out):
  """Real touches over the journeys of the train, eval and test splits."""
  lengths = []
  for path in glob.glob(str(out / 'root' / 'ExamplesBuilder' / 'examples' / '*' / 'Split-*' / '*.gz')):
    if '/Split-converting/' in path:
      continue
    for record in tf.data.TFRecordDataset([path], compression_type='GZIP'):
      lengths.append(tf.train.Example.FromString(record.numpy()).features.feature['journey_length'].int64_list.value[0])
  return sum(lengths)


def test_model_metrics_next_to_the_logistic_regression(attribution_run):
  first = attribution_run.first
  model, lr = first['metrics']['model'], first['metrics']['logistic_regression']
  for metrics in (model, lr):
    assert {'auc', 'auc_precision_recall', 'binary_crossentropy', 'calibration'} <= set(metrics)
  assert model['example_count'] == lr['example_count'] == first['data']['examples']['test']
  assert model['mean_label'] == pytest.approx(lr['mean_label'])
  assert model['auc'] > 0.65
  # Oversampling is undone in serving: predictions stay near the real conversion rate.
  assert 0.6 < model['calibration'] < 1.6
  # The champion gate: the model beats logistic regression on test AUC, so it is blessed and pushed.
  assert first['champion']['winner'] == 'model' and first['champion']['metric'] == 'auc'
  assert first['champion']['values'] == pytest.approx({'model': model['auc'], 'logistic_regression': lr['auc']})
  assert first['blessed'] is True and first['pushed_model']
  assert first['tuning']['trials'] and set(first['tuning']['best']) == {'embedding_dim', 'rnn_units', 'learning_rate'}


def test_a_handicapped_model_loses_and_markov_is_the_headline(tmp_path):
  """One epoch at a learning rate of 1e-6: the model ranks journeys no better than chance, logistic regression
  wins the gate, nothing is pushed or scored, and the campaign report's headline is the Markov removal effect.
  One member: the gate, not the ensemble, is under test (the shared run trains the default three)."""
  assert main(['run', 'attribution', '--data', SAMPLE, '--output', str(tmp_path), '--set', 'epochs=1',
               '--set', 'learning_rate=0.000001', '--set', 'ensemble=1', '--set', 'tuning=off',
               '--set', f'ground_truth={TRUTH}']) == 0
  out = tmp_path / 'attribution'
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['champion']['winner'] == 'logistic_regression' and not summary['champion']['model_won']
  assert summary['blessed'] is False and summary['pushed_model'] is None
  assert summary['components']['BulkInferrer']['state'] in ('complete', 'cached')
  with open(out / 'campaign_report.csv') as f:
    rows = list(csv.DictReader(f))
  assert {row['attributed_by'] for row in rows} == {campaign_report.headline_method(False)} == {'markov'}
  assert 'Champion: the baseline `logistic_regression`' in '\n'.join((out / 'report.md').read_text().splitlines()[:6])


def test_campaign_report_and_attribution_against_ground_truth(attribution_run):
  out, first, first_report = attribution_run.out, attribution_run.first, attribution_run.first_report
  campaigns = sorted({r['campaign'] for r in _sample_rows()})
  rows = list(csv.DictReader(first_report.splitlines()))
  attribution = first['metrics']['attribution']
  assert set(attribution) == METHODS
  assert list(rows[0])[:5] == ['campaign', 'attributed_conversions', 'attributed_by', 'total_attention',
                               'average_attention']
  assert set(list(rows[0])[5:]) == METHODS  # then one column per method
  assert [r['campaign'] for r in rows] == campaigns
  # The model won (blessed): the headline is its counterfactual credit, marked as such.
  headline = campaign_report.headline_method(True)
  assert first['data']['attributed_by'] == headline and {r['attributed_by'] for r in rows} == {headline}
  for row in rows:
    assert float(row['attributed_conversions']) == pytest.approx(
        attribution[headline]['attributed_conversions'].get(row['campaign'], 0.0), abs=1e-5)
  conversions = first['data']['converting_journeys']
  # Attention sums to one per converting journey: total attention is the whole-conversion split.
  full_credit = attribution['attention_full_credit']['attributed_conversions']
  for row in rows:
    assert float(row['total_attention']) == pytest.approx(full_credit[row['campaign']], abs=1e-4)
  # `attention` splits only each conversion's incremental part; the counterfactual methods share out the model's
  # incremental conversions over every journey (expected minus with no touches): both between 0 and all.
  incremental = first['data']['incremental_conversions']
  model_incremental = first['data']['model_incremental_conversions']
  assert 0 < incremental < conversions and 0 < model_incremental < conversions
  assert first['data']['counterfactual_seconds'] > 0
  # The impression process saw every campaign of the report (a share of triggered touches for each).
  assert set(first['data']['triggered_share']) == set(campaigns)
  assert all(0.0 <= share <= 1.0 for share in first['data']['triggered_share'].values())
  for method, entry in attribution.items():
    expected = {'attention': incremental, 'removal': model_incremental, 'shapley': model_incremental,
                'total_effect': model_incremental}.get(method, conversions)
    assert sum(entry['attributed_conversions'].values()) == pytest.approx(expected, rel=1e-4), method
    assert -1 <= entry['spearman'] <= 1 and entry['abs_error'] >= 0, method
  # The comparison is the campaign report's attributed conversions against the ground-truth file.
  truth = campaign_report.read_truth(TRUTH)
  reported = {r['campaign']: float(r['attributed_conversions']) for r in rows}
  assert attribution[headline]['spearman'] == pytest.approx(baselines.compare(reported, truth)['spearman'])
  assert attribution[headline]['abs_error'] == pytest.approx(baselines.compare(reported, truth)['abs_error'],
                                                             abs=1e-3)
  report = (out / 'report.md').read_text()
  assert 'campaign_report.png' in report and 'attention_by_position.png' in report


def test_without_ground_truth_the_comparison_is_absent(attribution_run):
  out, second, first_report = attribution_run.out, attribution_run.second, attribution_run.first_report
  assert second['status'] == 'succeeded'
  assert second['components']['Trainer']['cached'] and not second['components']['CampaignReport']['cached']
  for method, entry in second['metrics']['attribution'].items():
    assert 'spearman' not in entry and 'abs_error' not in entry, method
  # Same model, attention scored again: equal up to float summation order.
  again = list(csv.DictReader((out / 'campaign_report.csv').read_text().splitlines()))
  for before, after in zip(csv.DictReader(first_report.splitlines()), again):
    assert before['campaign'] == after['campaign']
    assert float(after['attributed_conversions']) == pytest.approx(float(before['attributed_conversions']), rel=1e-5)


def test_attention_signature_of_the_pushed_model(attribution_run):
  first = attribution_run.first
  model = tf.saved_model.load(first['pushed_model'])
  assert set(model.signatures) == {'serving_default', 'attention', 'counterfactual'}
  files = glob.glob(os.path.join(os.path.dirname(first['outputs']['evaluation']), '..', '..', 'ExamplesBuilder',
                                 'examples', '*', 'Split-converting', '*.gz'))
  records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(files)[:1], compression_type='GZIP').take(64)]
  outputs = model.signatures['attention'](examples=tf.constant(records))
  weights = outputs['attention_weights'].numpy()
  masks = np.array([tf.train.Example.FromString(r).features.feature['mask'].int64_list.value for r in records])
  assert weights.shape == masks.shape
  assert np.all(weights[masks == 0] == 0.0)
  np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
  probability = outputs['conversion_probability'].numpy()
  assert np.all((probability > 0) & (probability < 1))
  # base_probability: the same journeys with every touch removed; touches only add to the odds.
  base = outputs['base_probability'].numpy()
  assert base.shape == probability.shape and np.all((base > 0) & (base <= probability + 1e-6))
  # counterfactual: keeping every touch is the journey as it is; keeping none is base_probability.
  rows = tf.constant(np.repeat(np.arange(len(records)), 2), tf.int64)
  keep = np.tile([[1.0] * masks.shape[1], [0.0] * masks.shape[1]], (len(records), 1)).astype(np.float32)
  both = model.signatures['counterfactual'](examples=tf.constant(records), rows=rows, keep=tf.constant(keep))
  np.testing.assert_allclose(both['conversion_probability'].numpy()[0::2], probability, rtol=1e-5)
  np.testing.assert_allclose(both['conversion_probability'].numpy()[1::2], base, rtol=1e-5)
  # The campaign vocabulary is an asset of the transform graph inside the SavedModel.
  assets = os.listdir(os.path.join(first['pushed_model'], 'assets'))
  assert any(name.startswith('campaign') for name in assets), assets
