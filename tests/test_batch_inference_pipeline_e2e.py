"""batch_inference end to end with LocalDagRunner, on the CLV model the session's `clv_run` pushed:
keyed customers with bad rows (--from clv), and CLV's raw transactions (its own build_examples' score split)."""
import csv
import glob
import json
import os

from conftest import SCORING_BAD_LINES as BAD_LINES, SCORING_ROWS as ROWS, generate
from pipelines.batch_inference import pipeline as pipeline_bi
from pipelines.__main__ import main


def _read_predictions(output):
  rows = []
  for shard in sorted(glob.glob(os.path.join(output, 'predictions-*-of-*.csv'))):
    with open(shard) as f:
      rows += list(csv.DictReader(f))
  return rows


def test_keys_come_back_unchanged_and_complete(batch_inference_run):
  out, summary, inputs = batch_inference_run.out, batch_inference_run.summary, batch_inference_run.inputs
  predictions = _read_predictions(str(out))
  keys = [row['customer_id'] for row in predictions]
  expected = {generate.customer_id(i) for i in range(ROWS)} - {'0000007'}  # duplicated by a bad line
  assert len(keys) == len(set(keys)) == len(expected) and set(keys) == expected  # '0000042', not '42'
  assert {'predicted_value', 'mean_baseline'} <= set(predictions[0])
  assert all(float(row['predicted_value']) >= 0 for row in predictions)
  assert summary['status'] == 'succeeded' and len(inputs) == ROWS + len(BAD_LINES)


def test_rejected_rows_have_their_reason_and_in_equals_out_plus_rejected(batch_inference_run):
  out, summary = batch_inference_run.out, batch_inference_run.summary
  data = summary['data']
  assert data['rejected'] == {'wrong_field_count': 1, 'missing_key': 1, 'unparsable_value': 1, 'duplicate_key': 2}
  assert data['rows_in'] == ROWS + len(BAD_LINES) == data['rows_out'] + sum(data['rejected'].values())
  assert data['balanced'] and data['rows_out'] == ROWS - 1
  with open(out / 'rejected_rows.csv') as f:
    rejected = list(csv.DictReader(f))
  assert sorted(r['reason'] for r in rejected) == ['duplicate_key', 'duplicate_key', 'missing_key',
                                                   'unparsable_value', 'wrong_field_count']
  assert [json.loads(r['record']) for r in rejected if r['reason'] == 'wrong_field_count'] == ['0000005,1,2,3']
  assert any('9999999' in r['record'] for r in rejected if r['reason'] == 'unparsable_value')


def test_bulk_inferrer_scorer_gives_the_same_rows(batch_inference_run, tmp_path):
  """--set scorer=bulk_inferrer (TFX BulkInferrer + PredictionsExport) over the same input and model: the same
  keys and predictions as the default BatchScorer, and the same balance."""
  out, summary = batch_inference_run.out, batch_inference_run.summary
  batch = {row['customer_id']: float(row['predicted_value']) for row in _read_predictions(str(out))}
  assert main(['run', 'batch_inference', '--model', summary['settings']['model'], '--data', summary['data']['path'],
               '--output', str(tmp_path), '--set', 'key_column=customer_id', '--set', 'scorer=bulk_inferrer']) == 0
  bulk_summary = json.loads((tmp_path / 'batch_inference' / 'summary.json').read_text())
  assert {'BulkInferrer', 'PredictionsExport'} <= set(bulk_summary['components'])
  assert 'BatchScorer' not in bulk_summary['components'] and bulk_summary['data']['balanced']
  bulk = {row['customer_id']: float(row['predicted_value'])
          for row in _read_predictions(str(tmp_path / 'batch_inference'))}
  assert bulk.keys() == batch.keys() and max(abs(bulk[k] - batch[k]) for k in batch) < 1e-4


def test_from_finds_the_latest_pushed_model(clv_run, batch_inference_run):
  clv_out, second = clv_run.out, clv_run.second
  found = pipeline_bi.latest_pushed_model(str(clv_out / 'metadata.sqlite'))
  assert found['pushed_to'] == second['pushed_model']
  assert os.path.exists(os.path.join(found['model'], 'Format-Serving', 'saved_model.pb'))
  assert (found['key_column'], found['build_fn']) == ('customer_id', 'modules.clv.build_examples')
  assert batch_inference_run.summary['settings']['model'] == found['model']


def test_raw_transactions_give_the_same_predictions_as_the_use_cases_own_score_split(clv_run, batch_inference_run):
  """CLV's raw transactions through --from clv: its build_examples (the params of the run that trained the
  model) makes the score split, so every customer's prediction equals CLV's own predictions.csv."""
  clv_out, first = clv_run.out, clv_run.first
  runs = clv_out.parent
  assert main(['run', 'batch_inference', '--from', 'clv', '--data', first['data']['path'], '--output', str(runs),
               '--set', 'output_format=jsonl']) == 0
  summary = json.loads((runs / 'batch_inference' / 'summary.json').read_text())
  assert summary['settings']['input_kind'] == 'raw' and summary['data']['balanced']
  scored = {}
  for shard in glob.glob(str(runs / 'batch_inference' / 'predictions-*-of-*.jsonl')):
    with open(shard) as f:
      scored.update({r['customer_id']: r['predicted_value'] for r in map(json.loads, f)})
  with open(clv_out / 'predictions.csv') as f:
    own = {row['customer_id']: float(row['predicted_value']) for row in csv.DictReader(f)}
  assert len(scored) == len(own) == summary['data']['rows_out'] > 2000
  assert scored.keys() == own.keys()
  assert max(abs(scored[k] - own[k]) for k in own) < 1e-4
  assert not glob.glob(str(runs / 'batch_inference' / 'predictions-*-of-*.csv'))  # the last run's shards only


def test_compiles_for_vertex_with_a_cloud_model_and_bigquery_in_and_out(tmp_path):
  spec_path = tmp_path / 'batch_inference.json'
  assert main(['compile', 'batch_inference', '--runner', 'vertex', '--output', str(spec_path),
               '--data', 'bq://my-project-1.marketing.customers', '--model', 'gs://my-bucket/models/clv/7',
               '--set', 'key_column=customer_id', '--set', 'output_table=bq://my-project-1.marketing.scores',
               '--project', 'my-project-1', '--region', 'europe-west4', '--temp-location', 'gs://my-bucket/tmp']) == 0
  spec = json.loads(spec_path.read_text())['pipelineSpec']
  assert spec['pipelineInfo']['name'] == 'batch-inference'
  tasks = spec['root']['dag']['tasks']
  assert {'BigQueryExampleGen', 'ExamplesBuilder', 'model_importer', 'BatchScorer', 'RowsBalanceCheck'} <= set(tasks)
  parameters = {k: v['runtimeValue']['constantValue'].get('stringValue')
                for k, v in tasks['BatchScorer']['inputs']['parameters'].items()}
  assert parameters['output_table'] == 'bq://my-project-1.marketing.scores'
  assert parameters['output_format'] == 'bigquery'
  args = spec['deploymentSpec']['executors']['BatchScorer_executor']['container']['args']
  assert '--runner=DataflowRunner' in args
  assert 'SELECT * FROM `my-project-1.marketing.customers`' in json.dumps(tasks['BigQueryExampleGen'])
