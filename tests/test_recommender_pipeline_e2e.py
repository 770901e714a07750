"""End to end: the recommender pipeline with LocalDagRunner on the bundled sample (with its bad rows)."""
import contextlib
import csv
import glob
import json
import os
import sqlite3

import numpy as np
import pytest
import tensorflow as tf

from conftest import RECOMMENDER_SAMPLE as SAMPLE
from modules import recommender as module
from pipelines import beam_io

COMPONENTS = {'CsvExampleGen', 'ExamplesBuilder', 'StatisticsGen', 'SchemaGen', 'ExampleValidator', 'AnomaliesGate',
              'Transform', 'VocabularyFilter', 'Tuner', 'Trainer', 'latest_blessed_model_resolver', 'Evaluator',
              'RecallEvaluator', 'ChampionGate', 'Pusher', 'BulkInferrer', 'PredictionsExport'}
TOP_K = 10


@pytest.fixture(name='run')
def run_fixture(recommender_run):
  """The shared run (tests/conftest.py)."""
  return recommender_run


@pytest.fixture(name='handicapped', scope='module')
def handicapped_fixture(recommender_run, tmp_path_factory):
  """(output dir, summary) of a second run on a copy of the shared run's ML Metadata (data components cached) with
  a model trained for one epoch at a learning rate of 1e-6 and no tuning: it must lose to popularity."""
  from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top
  out = recommender_run.out
  root = tmp_path_factory.mktemp('recommender_handicapped') / 'runs'
  (root / 'recommender').mkdir(parents=True)
  with contextlib.closing(sqlite3.connect(out / 'metadata.sqlite')) as original, \
       contextlib.closing(sqlite3.connect(root / 'recommender' / 'metadata.sqlite')) as copy:
    original.backup(copy)
  assert main(['run', 'recommender', '--data', SAMPLE, '--output', str(root), '--set', 'epochs=1',
               '--set', 'learning_rate=0.000001', '--set', 'tuning=off']) == 0
  return root / 'recommender', json.loads((root / 'recommender' / 'summary.json').read_text())


def _champion(out, summary):
  """summary.json's champion, checked against the champion.json in the ChampionGate's blessing."""
  paths = glob.glob(str(out / 'root' / 'ChampionGate' / 'blessing' / '*' / 'champion.json'))
  with open(max(paths, key=os.path.getmtime)) as f:
    assert json.load(f) == summary['champion']
  return summary['champion']


def _recommendations(out):
  with open(out / 'recommendations.csv') as f:
    reader = csv.DictReader(f)
    return reader.fieldnames, list(reader)


def test_every_component_ran_and_the_model_was_pushed(run):
  summary = run.summary
  assert summary['status'] == 'succeeded', summary['error']
  assert set(summary['components']) == COMPONENTS
  assert summary['blessed'] is True and os.path.isfile(os.path.join(summary['pushed_model'], 'saved_model.pb'))


def test_the_model_beat_popularity_and_its_recommendations_are_the_output(run):
  out, summary = run.out, run.summary
  champion = _champion(out, summary)
  assert champion['metric'] == 'recall_at_10' and champion['winner'] == 'two_tower'
  assert champion['values']['two_tower'] == pytest.approx(summary['metrics']['two_tower']['recall_at_10'])
  assert champion['values']['popularity'] == pytest.approx(summary['metrics']['popularity']['recall_at_10'])
  _, rows = _recommendations(out)
  assert {r['predicted_by'] for r in rows} == {'two_tower'}
  assert summary['components']['Tuner']['state'] in ('complete', 'cached')
  assert set(summary['tuning']['best']) == set(module.TUNED) and summary['tuning']['trials']


def test_a_handicapped_model_loses_is_not_pushed_and_popularity_is_the_output(handicapped):
  out, summary = handicapped
  assert summary['status'] == 'succeeded', summary['error']
  assert summary['components']['Transform']['cached'] and not summary['components']['Trainer']['cached']
  champion = _champion(out, summary)
  assert champion['winner'] == 'popularity' and not champion['model_won']
  assert champion['values']['two_tower'] < champion['values']['popularity']
  assert summary['pushed_model'] is None
  header, rows = _recommendations(out)
  assert header[-1] == 'predicted_by' and rows and {r['predicted_by'] for r in rows} == {'popularity'}
  users = {}
  for row in rows:
    users.setdefault(row['user_name'], []).append(row)
  assert len(users) == summary['data']['recommended_users'] > 0
  with open(SAMPLE) as f:
    listened = {(r['user_name'], r['track_id']) for r in csv.DictReader(f)
                if module.assign_split(r['user_name'], r['track_id'], 15, 15) == 'train'}
  assert not listened & {(r['user_name'], r['track_id']) for r in rows}
  for user_rows in users.values():  # the most listened tracks, most first
    scores = [float(r['score']) for r in user_rows]
    assert len(user_rows) == TOP_K and scores == sorted(scores, reverse=True)


def test_bad_rows_counted_by_reason_and_kept(run):
  out, summary = run.out, run.summary
  with open(SAMPLE) as f:
    rows = sum(1 for _ in f) - 1
  assert summary['data']['rows_read'] == rows
  assert summary['data']['skipped'] == {'missing_user': 1, 'missing_track': 1, 'unparsable_timestamp': 2}
  with open(out / 'rejected_rows.csv') as f:
    assert sorted(r['reason'] for r in csv.DictReader(f)) == [
        'missing_track', 'missing_user', 'unparsable_timestamp', 'unparsable_timestamp']


def test_out_of_vocabulary_pairs_counted_per_split(run):
  summary = run.summary
  data = summary['data']
  for split in module.SPLITS:
    assert data['pairs_in_vocabulary'][split] + data['out_of_vocabulary'][split] == data['examples'][split]
  assert summary['metrics']['two_tower']['example_count'] == data['pairs_in_vocabulary']['test']


def test_recall_of_the_model_and_the_baselines_on_the_same_samples(run):
  summary = run.summary
  metrics = summary['metrics']
  samples = summary['data']['recall_samples_per_positive']
  assert samples == min(1000, summary['data']['vocabulary_tracks'] - 1)
  for model in ('two_tower', 'popularity', 'random'):
    assert 0 <= metrics[model]['recall_at_10'] <= metrics[model]['recall_at_100'] <= 1
    assert 0 <= metrics[model]['catalog_recall_at_10'] <= metrics[model]['catalog_recall_at_100'] <= 1
    assert 0 <= metrics[model]['catalog_ndcg_at_10'] <= 1
  # Random ranking: recall@k is about k / (samples + 1).
  assert metrics['random']['recall_at_10'] == pytest.approx(10 / (samples + 1), abs=0.05)
  assert 0 < metrics['two_tower']['auc'] < 1 and 0 < metrics['popularity']['auc'] < 1
  assert metrics['two_tower']['recall_at_100'] > metrics['random']['recall_at_100']
  assert metrics['two_tower']['catalog_recall_at_100'] > metrics['random']['catalog_recall_at_100']


def test_report_agrees_with_the_summary(run):
  out, summary = run.out, run.summary
  report = (out / 'report.md').read_text()
  for model in ('two_tower', 'popularity', 'random'):
    for key in ('recall_at_10', 'recall_at_100'):
      assert f'{summary["metrics"][model][key]:.4g}' in report
  assert f'{summary["metrics"]["two_tower"]["auc"]:.4g}' in report
  assert '![recall_curve.png](recall_curve.png)' in report and '![nearest_tracks.png](nearest_tracks.png)' in report
  assert os.path.getsize(out / 'recall_curve.png') > 10_000


def test_recommendations_have_k_rows_per_vocabulary_user(run):
  out, summary = run.out, run.summary
  header, rows = _recommendations(out)
  assert header == ['user_name', 'rank', 'track_id', 'score', 'predicted_by']
  users = {}
  for row in rows:
    users.setdefault(row['user_name'], []).append(row)
  assert len(users) == summary['data']['recommended_users'] > 0
  assert len(users) + summary['data']['users_outside_vocabulary'] == summary['data']['examples']['users']
  with open(SAMPLE) as f:  # the training pairs, by the pipeline's own split
    listened = {(r['user_name'], r['track_id']) for r in csv.DictReader(f)
                if module.assign_split(r['user_name'], r['track_id'], 15, 15) == 'train'}
  assert not listened & {(r['user_name'], r['track_id']) for r in rows}  # training tracks excluded
  assert summary['settings']['exclude_training_tracks'] == 'on'
  for user_rows in users.values():
    assert [int(r['rank']) for r in user_rows] == list(range(1, TOP_K + 1))
    scores = [float(r['score']) for r in user_rows]
    assert scores == sorted(scores, reverse=True) and len({r['track_id'] for r in user_rows}) == TOP_K


def test_top_k_signature_on_a_known_and_an_unknown_user(run):
  out, summary = run.out, run.summary
  _, rows = _recommendations(out)
  known = rows[0]['user_name']
  top_k = tf.saved_model.load(summary['pushed_model']).signatures[module.TOP_K_SIGNATURE]
  result = top_k(user_names=tf.constant([known, 'nobody-ever']))
  tracks = result[module.TOP_TRACKS].numpy().astype(str)
  assert result[module.IS_FALLBACK].numpy().tolist() == [False, True]
  assert tracks[0].tolist() == [r['track_id'] for r in rows if r['user_name'] == known]
  np.testing.assert_allclose(result[module.TOP_SCORES].numpy()[0],
                             [float(r['score']) for r in rows if r['user_name'] == known], atol=1e-5)
  # The unknown user gets the most listened training tracks, most listened first.
  fallback_scores = result[module.TOP_SCORES].numpy()[1]
  assert list(fallback_scores) == sorted(fallback_scores, reverse=True) and fallback_scores[0] >= 1
  nearest = (out / 'nearest_tracks.csv').read_text().splitlines()[1].split(',')[0]
  assert nearest == tracks[1][0]  # nearest_tracks starts from the most listened training track


def test_serving_default_scores_pairs_from_serialized_examples(run):
  summary = run.summary
  serve = tf.saved_model.load(summary['pushed_model']).signatures['serving_default']
  pair = {module.USER: 'user_00001', module.TRACK: 't00001', module.ARTIST: 'Artist 1', module.TAGS: 'rock',
          module.USER_TAG_SHARES: [0.0] * 20}
  result = serve(examples=tf.constant([beam_io.row_to_example(pair).SerializeToString()]))
  assert 0 < float(result[module.PREDICTION].numpy()[0]) < 1
  assert 0 <= float(result[module.POPULARITY].numpy()[0]) <= 1
