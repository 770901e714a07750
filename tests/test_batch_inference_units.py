"""batch_inference logic without a TFX run: file readers, row checks against a real SavedModel's parse spec,
the rows balance, the BatchScorer's executor on real Beam, the BigQuery output (schema, table spec, the
WriteToBigQuery transform) and the CLI errors."""
import collections
from concurrent import futures
import csv
import functools
import glob
import gzip
import io
import itertools
import json
import os
import threading
import time

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from tensorflow_serving.apis import prediction_log_pb2
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.channel import Channel

from conftest import REPO
from pipelines.batch_inference import generate
from modules import batch_inference as bi
from modules import clv
from pipelines.batch_inference import pipeline as pipeline_bi
from pipelines import arrow_io, bigquery, csv_lines, runners
from pipelines.clv import pipeline as clv_pipeline
from pipelines.__main__ import main
from pipelines import beam_io
from pipelines.batch_inference import batch_scorer
from pipelines.components import predictions_export
from pipelines.components.predictions_export import PredictionsExport


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
  """A SavedModel whose serving_default parses key (string), x (float, required) and n (int, default 0) from
  serialized tf.Examples and returns score = 2x + n and a 2-value `pair` output."""
  spec = {'key': tf.io.FixedLenFeature([], tf.string), 'x': tf.io.FixedLenFeature([], tf.float32),
          'n': tf.io.FixedLenFeature([], tf.int64, default_value=0)}
  module = tf.Module()

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def serve(serialized):
    features = tf.io.parse_example(serialized, spec)
    score = 2.0 * features['x'] + tf.cast(features['n'], tf.float32)
    return {'score': score, 'pair': tf.stack([score, -score], axis=1)}

  path = str(tmp_path_factory.mktemp('tiny') / 'model' / 'Format-Serving')
  tf.saved_model.save(module, path, signatures={'serving_default': serve})
  return path


def test_the_parse_spec_is_read_from_the_saved_model(tiny_model):
  assert bi.model_input_spec(tiny_model) == {
      'key': bi.FeatureInput('bytes', True), 'x': bi.FeatureInput('float', True), 'n': bi.FeatureInput('int', False)}
  with pytest.raises(ValueError, match='no signature'):
    bi.model_input_spec(tiny_model, 'nope')


@pytest.mark.parametrize('row, reason', [
    ({'key': '', 'x': '1.5'}, 'missing_key'),
    ({'x': '1.5'}, 'missing_key'),
    ({'key': 'a'}, 'missing_value'),
    ({'key': 'a', 'x': 'abc'}, 'unparsable_value'),
    ({'key': 'a', 'x': 'nan'}, 'unparsable_value'),
    ({'key': 'a', 'x': '1', 'n': '2.5'}, 'unparsable_value'),
    ({'key': 'a', 'x': 'inf'}, 'unparsable_value'),
    ({'key': 'a', 'x': '-1e39'}, 'unparsable_value'),  # beyond float32: infinity in a float_list
    ({'key': 'a', 'x': '1', 'n': '1e19'}, 'unparsable_value'),  # beyond int64
])
def test_rows_that_cannot_be_scored_get_their_reason(row, reason, tiny_model):
  assert bi.check_row(row, 'key', bi.model_input_spec(tiny_model)) == (None, reason)


def test_values_are_converted_and_the_key_is_untouched():
  spec = {'x': bi.FeatureInput('float', True), 'n': bi.FeatureInput('int', False)}
  assert bi.check_row({'id': '007', 'x': '1.5', 'n': '3', 'extra': 'z'}, 'id', spec) == (
      {'id': '007', 'x': 1.5, 'n': 3}, None)
  assert bi.check_row({'id': 7, 'x': 2, 'n': 4.0}, 'id', spec) == ({'id': 7, 'x': 2.0, 'n': 4}, None)
  assert bi.check_row({'id': '8', 'x': 1}, 'id', spec) == ({'id': '8', 'x': 1.0}, None)  # n has a default


def test_readers_never_fail_on_a_bad_line():
  assert pipeline_bi.json_line_to_row(b'\xef\xbb\xbf{"id": 7, "x": null}') == {'id': 7}
  assert pipeline_bi.json_line_to_row(b'{"id": 7') == csv_lines.rejected_row('malformed_line', '{"id": 7')
  assert pipeline_bi.json_line_to_row(b'[1, 2]') == csv_lines.rejected_row('malformed_line', '[1, 2]')
  assert pipeline_bi.json_line_to_row(b'{"id": "caf\xe9"}') == csv_lines.rejected_row(
      'bad_encoding', '{"id": "caf\ufffd"}')
  assert pipeline_bi.json_line_to_row(b'{"id": "caf\xe9"}', 'latin-1') == {'id': 'café'}
  assert [pipeline_bi.input_format(p) for p in ('a/*.csv', 'b.csv.gz', 'c.jsonl', 'd-*.tfrecord.gz')] == [
      'csv', 'csv', 'jsonl', 'tfrecord']
  with pytest.raises(ValueError, match='cannot tell the format'):
    pipeline_bi.input_format('x.parquet')


def _write_inputs(folder):
  """The same 4 keyed rows (+ 1 bad) as CSV, JSONL and TFRecord, and the CSV and JSONL gzipped; returns
  {format: path}."""
  rows = [{'key': '0001', 'x': 1.0, 'n': 1}, {'key': '0002', 'x': 2.5}, {'key': '0003', 'x': 0.0, 'n': 5},
          {'key': 'a,b', 'x': -1.0, 'n': 2}]
  os.makedirs(folder, exist_ok=True)
  paths = {'csv': os.path.join(folder, 'in.csv'), 'jsonl': os.path.join(folder, 'in.jsonl'),
           'tfrecord': os.path.join(folder, 'in.tfrecord')}
  with open(paths['csv'], 'w') as f:
    f.write('key,x,n\n0001,1.0,1\n0002,2.5,\n0003,0,5\n"a,b",-1,2\n,3,3\n')
  with open(paths['jsonl'], 'w') as f:
    f.write('\n'.join(json.dumps(r) for r in rows) + '\n{"key": null, "x": 3}\n')
  with tf.io.TFRecordWriter(paths['tfrecord']) as writer:
    for row in rows + [{'x': 3.0}]:
      writer.write(beam_io.row_to_example(row).SerializeToString())
  for kind in ('csv', 'jsonl'):
    paths[f'{kind}.gz'] = os.path.join(folder, f'in.{kind}.gz')
    with open(paths[kind], 'rb') as f, gzip.open(paths[f'{kind}.gz'], 'wb') as zipped:
      zipped.write(f.read())
  return paths


@pytest.mark.parametrize('kind', ['csv', 'jsonl', 'tfrecord', 'csv.gz', 'jsonl.gz'])
def test_keys_come_back_complete_and_unchanged_and_rejects_balance(kind, tiny_model, tmp_path):
  path = _write_inputs(str(tmp_path / kind))[kind]
  params = {'key_column': 'key', 'unique_keys': True, 'model_dir': tiny_model, 'signature': 'serving_default'}
  with test_pipeline.TestPipeline() as p:
    batches = p | pipeline_bi._KeyedFilesToBatches(  # pylint: disable=protected-access
        {'input_base': os.path.dirname(path)}, os.path.basename(path))
    built = bi.build_examples(batches, params)
    assert_that(built.splits['score'] | beam.FlatMap(lambda b: b) | beam.Map(beam_io.serialized_example_to_row)
                | beam.Map(lambda r: (r['key'], r['x'], r.get('n'))),
                equal_to([('0001', 1.0, 1), ('0002', 2.5, None), ('0003', 0.0, 5), ('a,b', -1.0, 2)]),
                label='scored')
    assert_that(built.rejected | beam.Map(lambda r: r['reason']), equal_to(['missing_key']), label='rejected')


def test_duplicate_keys_are_all_rejected_when_keys_must_be_unique(tiny_model):
  rows = [{'key': 'a', 'x': '1'}, {'key': 'a', 'x': '2'}, {'key': 'b', 'x': '3'}]
  for unique, scored, rejected in ((True, ['b'], ['duplicate_key', 'duplicate_key']), (False, ['a', 'a', 'b'], [])):
    params = {'key_column': 'key', 'unique_keys': unique, 'model_dir': tiny_model, 'signature': 'serving_default'}
    with test_pipeline.TestPipeline() as p:
      built = bi.build_examples(p | beam.Create([[beam_io.row_to_example(r).SerializeToString() for r in rows]]),
                                params)
      assert_that(built.splits['score'] | beam.FlatMap(lambda b: b) | beam.Map(beam_io.serialized_example_to_row)
                  | beam.Map(lambda r: r['key']), equal_to(scored), label='scored')
      assert_that(built.rejected | beam.Map(lambda r: r['reason']), equal_to(rejected), label='rejected')


def test_valid_rows_keep_what_is_asked_in_the_order_of_their_keys():
  """Rows with and without an optional feature are two groups for the encoder; `keep` is over the keys."""
  spec = {'x': bi.FeatureInput('float', True), 'n': bi.FeatureInput('int', False)}
  rows = [{'key': key, 'x': '1.5', **({'n': str(i)} if i % 2 else {})} for i, key in enumerate('abcdef')]
  valid, rejected = bi.check_batch_rows([beam_io.row_to_example(r).SerializeToString() for r in rows], 'key', spec)
  assert (len(valid.groups), rejected) == (2, [])
  keys = valid.keys.to_pylist()
  assert [beam_io.serialized_example_to_row(e)['key'] for e in valid.examples()] == keys
  keep = np.array([key in 'bcf' for key in keys])
  kept = [beam_io.serialized_example_to_row(e) for e in valid.examples(keep)]
  assert [row['key'] for row in kept] == [key for key in keys if key in 'bcf']
  assert {row['key']: row.get('n') for row in kept} == {'b': 1, 'c': None, 'f': 5}


CLV_LIKE_SPEC = {  # kinds and defaults as a CLV model parses them, and an optional text feature
    'frequency': bi.FeatureInput('int', True), 'recency': bi.FeatureInput('float', True),
    'T': bi.FeatureInput('float', True), 'total_spend': bi.FeatureInput('float', True),
    'purchases_last_30': bi.FeatureInput('int', False), clv.MONTH_FEATURE: bi.FeatureInput('bytes', True),
    clv.FREQUENCY_BUCKET: bi.FeatureInput('bytes', False)}


def _serialized(checked):
  """(keys, serialized examples, rejected) of a check's (ValidRows, rejected), as check_batch gives them."""
  valid, rejected = checked
  return valid.keys, valid.examples(), rejected


def test_the_columnar_check_gives_the_examples_reasons_and_records_of_the_row_check(tmp_path):
  """On generated customers (the bundled generator) with a bad value of every kind, read by the real CSV
  reader: check_batch's columnar path gives what check_row gives row by row."""
  path = generate.write_csv(str(tmp_path / 'customers.csv'), 1500, 7)
  with open(path) as f:
    lines = f.read().splitlines()
  header = next(csv.reader([lines[0]]))
  bad = {'frequency': ['', '1.5', 'inf', '1e19', ' 7 '], 'recency': ['nan', '1e39', '-1e39', 'abc', '1_0', ' '],
         'purchases_last_30': ['', 'x'], clv.FREQUENCY_BUCKET: ['', '  '], clv.KEY: ['', ' ']}
  rows = [next(csv.reader([line])) for line in lines[1:]]
  index = 0
  for name, values in bad.items():
    for value in values:
      rows[index][header.index(name)] = value
      index += 7
  rows += [rows[3], rows[4]]  # duplicate keys
  with open(path, 'w', newline='') as f:
    csv.writer(f).writerows([header] + rows)
  records = list(csv_lines.file_records(path, 'utf-8'))
  serialized = csv_lines.records_to_serialized_examples(header, records)
  parser = bi.BytesParser([clv.KEY, *CLV_LIKE_SPEC])
  assert parser(serialized[:10]) is not None  # the CSV reader's examples: every feature a list of bytes
  assert parser([beam_io.row_to_example({clv.KEY: 'a', 'frequency': 3}).SerializeToString()]) is None
  for batch, batch_parser in itertools.product((serialized[:1000], serialized[1000:]), (None, parser)):
    columnar = _serialized(bi._check_columnar(batch, clv.KEY, CLV_LIKE_SPEC, batch_parser))  # pylint: disable=protected-access
    by_row = _serialized(bi._check_rows(batch, clv.KEY, CLV_LIKE_SPEC))  # pylint: disable=protected-access
    assert sorted(columnar[0].to_pylist()) == sorted(by_row[0].to_pylist())
    key = functools.partial(json.dumps, sort_keys=True)
    decoded = [sorted(map(beam_io.serialized_example_to_row, result[1]), key=key) for result in (columnar, by_row)]
    assert decoded[0] == decoded[1]
    assert sorted(columnar[2], key=key) == sorted(by_row[2], key=key)
  # the same records as RecordBatches (a Parquet payload): the same keys, examples and rejected rows
  schema = csv_lines.record_batch_schema(header)
  for part in (records[:1000], records[1000:]):
    (batch,) = arrow_io.split_unreadable(csv_lines.records_to_record_batch(part, schema),
                                         csv_lines.REJECTED_REASON, csv_lines.REJECTED_LINE)
    from_arrow = _serialized(bi._check_columnar(batch, clv.KEY, CLV_LIKE_SPEC))  # pylint: disable=protected-access
    by_row = _serialized(bi._check_rows(  # pylint: disable=protected-access
        csv_lines.records_to_serialized_examples(header, part), clv.KEY, CLV_LIKE_SPEC))
    assert sorted(from_arrow[0].to_pylist()) == sorted(by_row[0].to_pylist())
    decoded = [sorted(map(beam_io.serialized_example_to_row, result[1]), key=key) for result in (from_arrow, by_row)]
    assert decoded[0] == decoded[1]
    assert sorted(from_arrow[2], key=key) == sorted(by_row[2], key=key)
  reasons = collections.Counter(r['reason'] for b in (serialized[:1000], serialized[1000:])
                                for r in bi.check_batch(b, clv.KEY, CLV_LIKE_SPEC)[2])
  # frequency '', recency ' ' missing; '1.5' 'inf' '1e19' 'nan' '1e39' '-1e39' 'abc' 'x' unparsable; ' 7 ', '1_0' read
  assert reasons == {'missing_key': 2, 'missing_value': 2, 'unparsable_value': 8}


def test_rows_balance_and_a_mismatch():
  counts = {'rows_in': 10, 'examples/score': 7, 'skipped/missing_key': 2, 'skipped/unparsable_value': 1}
  assert pipeline_bi.rows_balance(counts, 7, 'score', raw_input=False) == {
      'rows_in': 10, 'rows_out': 7, 'rejected': {'missing_key': 2, 'unparsable_value': 1}, 'balanced': True}
  assert not pipeline_bi.rows_balance(counts, 6, 'score', raw_input=False)['balanced']
  raw = {'rows_in': 500, 'examples/score': 40, 'examples/train': 30, 'skipped/unparsable_date': 3}
  assert pipeline_bi.rows_balance(raw, 40, 'score', raw_input=True) == {
      'rows_in': 40, 'rows_out': 40, 'rejected': {}, 'balanced': True}


def _log(key, score, pair):
  example = beam_io.row_to_example({'customer_id': key, 'x': 1.0})
  log = prediction_log_pb2.PredictionLog()
  log.predict_log.request.inputs['examples'].CopyFrom(tf.make_tensor_proto([example.SerializeToString()]))
  log.predict_log.response.outputs['score'].CopyFrom(tf.make_tensor_proto(np.array([score], np.float32)))
  log.predict_log.response.outputs['pair'].CopyFrom(tf.make_tensor_proto(np.array([pair], np.float32)))
  return log


def test_bigquery_output_schema_table_and_transform_offline():
  log = _log('007', 1.5, [1.5, -1.5])
  schema = predictions_export.bigquery_schema(log, 'customer_id', ['pair', 'score'], [])
  assert schema == {'fields': [{'name': 'customer_id', 'type': 'STRING', 'mode': 'REQUIRED'},
                               {'name': 'pair', 'type': 'FLOAT', 'mode': 'REPEATED'},
                               {'name': 'score', 'type': 'FLOAT', 'mode': 'NULLABLE'}]}
  assert predictions_export.prediction_record(log, 'customer_id', ['pair', 'score'], []) == {
      'customer_id': '007', 'pair': [1.5, -1.5], 'score': 1.5}
  sink = predictions_export.bigquery_sink('bq://my-project-1.scores.clv_2024', schema, 'WRITE_APPEND')
  assert isinstance(sink, beam.io.WriteToBigQuery)
  assert sink.table_reference.projectId == 'my-project-1'
  assert (sink.table_reference.datasetId, sink.table_reference.tableId) == ('scores', 'clv_2024')
  assert sink.write_disposition == 'WRITE_APPEND' and sink.create_disposition == 'CREATE_IF_NEEDED'
  assert sink.schema == schema
  with pytest.raises(bigquery.InvalidIdentifier):
    predictions_export.bigquery_sink('bq://my-project-1.scores.t`; DROP TABLE x', schema, 'WRITE_APPEND')
  with pytest.raises(ValueError, match='write_disposition'):
    predictions_export.bigquery_sink('bq://my-project-1.scores.t', schema, 'OVERWRITE')
  with pytest.raises(bigquery.InvalidIdentifier):
    PredictionsExport(inference_result=None, key_feature='k', output_names=[], output_format='bigquery',
                      output_table='bq://p.d.t')
  with pytest.raises(bigquery.InvalidIdentifier):
    batch_scorer.BatchScorer(examples=None, model=None, split='score', key_feature='k', output_format='bigquery',
                             output_table='bq://p.d.t')


@pytest.mark.parametrize('args, message', [
    (['--from', 'attribution'], 'error: no pushed attribution model in '),
    (['--model', '/nonexistent/model', '--set', 'key_column=id'], 'error: no SavedModel at /nonexistent/model'),
    (['--model', 'x', '--from', 'clv'], 'error: give --model or --from, not both'),
])
def test_cli_refuses_with_one_line(args, message, tmp_path, capsys):
  assert main(['run', 'batch_inference', '--output', str(tmp_path), '--data', 'nothing.csv', *args]) == 2
  stderr = capsys.readouterr().err.strip()
  assert stderr.splitlines() == [stderr] and stderr.startswith(message), stderr


def test_gzipped_input_headers_are_read_and_gzipped_raw_input_is_accepted(tiny_model, tmp_path, capsys):
  paths = _write_inputs(str(tmp_path / 'in'))
  assert pipeline_bi._local_header(paths['csv.gz']) == ['key', 'x', 'n']  # pylint: disable=protected-access
  assert pipeline_bi._local_header(paths['jsonl.gz']) == ['key', 'x', 'n']  # pylint: disable=protected-access
  assert main(['run', 'batch_inference', '--output', str(tmp_path / 'out'), '--data', paths['csv.gz'],
               '--model', tiny_model, '--set', 'key_column=key', '--set', 'input_kind=raw']) == 2
  # not refused for its gzip (every use case reads .gz): for what raw input always needs
  assert capsys.readouterr().err.strip().startswith("error: raw input needs the source use case's build_fn")


@pytest.mark.parametrize('name,text', [('empty.csv', ''), ('header.csv', 'key,x\r\n\r\n'), ('blank.jsonl', '\n \n')])
def test_input_without_rows_is_refused_with_one_line(name, text, tiny_model, tmp_path, capsys):
  (tmp_path / name).write_text(text)
  assert main(['run', 'batch_inference', '--output', str(tmp_path / 'out'), '--data', str(tmp_path / name),
               '--model', tiny_model, '--set', 'key_column=key']) == 2
  assert capsys.readouterr().err.strip() == (
      f'error: {tmp_path / name} has no rows to score (every file is empty or only a header)')


def test_model_flags_belong_to_batch_inference_only(tmp_path, capsys):
  assert main(['run', 'clv', '--output', str(tmp_path), '--rows', '10']) == 2
  assert capsys.readouterr().err.strip() == 'error: --model, --from and --rows are for batch_inference, not clv'


def test_a_plain_saved_model_is_staged_as_a_model_artifact(tiny_model, tmp_path):
  staged = pipeline_bi.model_artifact_dir(tiny_model, str(tmp_path))
  assert staged == os.path.dirname(tiny_model)  # Format-Serving itself: its parent is the artifact
  plain = tmp_path / 'plain'
  os.symlink(tiny_model, plain)
  staged = pipeline_bi.model_artifact_dir(str(plain), str(tmp_path / 'staging'))
  assert os.path.realpath(os.path.join(staged, 'Format-Serving')) == os.path.realpath(str(plain))
  assert pipeline_bi.model_artifact_dir('gs://b/models/7', str(tmp_path)) == 'gs://b/models/7'


def _scorer_artifacts(tmp_path, tiny_model, rows):
  """Examples (split score, two GZIP files), the tiny Model artifact and an empty Predictions artifact."""
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'examples')
  examples.split_names = artifact_utils.encode_split_names(['score'])
  split_dir = tmp_path / 'examples' / 'Split-score'
  split_dir.mkdir(parents=True)
  for shard, part in enumerate((rows[:3], rows[3:])):
    with tf.io.TFRecordWriter(str(split_dir / f'data-{shard}.gz'), options='GZIP') as writer:
      for row in part:
        writer.write(beam_io.row_to_example(row).SerializeToString())
  model = standard_artifacts.Model()
  model.uri = os.path.dirname(tiny_model)
  predictions = batch_scorer.Predictions()
  predictions.uri = str(tmp_path / 'predictions')
  os.makedirs(predictions.uri)
  return {'examples': [examples], 'model': [model]}, {'predictions': [predictions]}


@pytest.mark.parametrize('output_format,beam_mode', [('csv', 'in_memory'), ('jsonl', 'in_memory'),
                                                     ('csv', 'multi_processing')])
def test_batch_scorer_scores_every_row_in_batches_with_its_key(output_format, beam_mode, tiny_model, tmp_path):
  rows = [{'key': f'k{i}', 'x': float(i), 'n': i % 2} for i in range(4)] + [{'key': 'a,b', 'x': 0.5, 'n': 3}]
  inputs, outputs = _scorer_artifacts(tmp_path, tiny_model, rows)
  # Two workers: in_memory runs two DoFn instances as threads of this process, sharing one SessionScorer.
  beam_args = [f'--direct_running_mode={beam_mode}', '--direct_num_workers=2']
  batch_scorer.Executor(base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args)).Do(
      inputs, outputs, {'split': 'score', 'signature_name': 'serving_default', 'key_feature': 'key',
                        'output_names': '[]', 'batch_size': 2, 'output_format': output_format})
  predictions = outputs['predictions'][0]
  # One shard per input file (per file part with 2 worker processes), complete: no temporary file left.
  shards = 2 * batch_scorer.parts_per_file(beam_args, 2)
  assert sorted(os.listdir(predictions.uri)) == sorted(
      ['counts.json'] + [f'predictions-{i:05d}-of-{shards:05d}.{output_format}' for i in range(shards)])
  scored = []
  for shard in sorted(glob.glob(os.path.join(predictions.uri, f'predictions-*.{output_format}'))):
    with open(shard) as f:
      scored += list(csv.DictReader(f)) if output_format == 'csv' else [json.loads(line) for line in f]
  expected = {r['key']: 2 * r['x'] + r['n'] for r in rows}
  assert sorted(r['key'] for r in scored) == sorted(expected)  # 'a,b' quoted in CSV, every row once
  for r in scored:
    assert float(r['score']) == pytest.approx(expected[r['key']])
    # A two-valued output: its first value in a CSV cell, the list in JSONL.
    assert (float(r['pair']) == pytest.approx(expected[r['key']]) if output_format == 'csv' else
            r['pair'] == pytest.approx([expected[r['key']], -expected[r['key']]]))
  assert predictions.get_int_custom_property('rows_out') == len(rows) == beam_io.read_counts(
      predictions.uri)['rows_out']


def test_a_change_to_a_scorer_s_code_is_a_cache_miss():
  """BatchScorer and PredictionsExport carry the hash of their module's source as an exec property (TFX keys
  its cache on exec properties and inputs, not on a component's code)."""
  examples, model = Channel(type=standard_artifacts.Examples), Channel(type=standard_artifacts.Model)
  scorer = batch_scorer.BatchScorer(examples=examples, model=model, split='score', key_feature='key')
  export = PredictionsExport(inference_result=Channel(type=standard_artifacts.InferenceResult), key_feature='key',
                             output_names=[])
  assert scorer.exec_properties['code_version'] == runners.code_version('pipelines.batch_inference.batch_scorer')
  assert export.exec_properties['code_version'] == runners.code_version('pipelines.components.predictions_export')
  assert scorer.exec_properties['code_version'] != export.exec_properties['code_version']


def test_batch_scorer_refuses_an_unknown_output(tiny_model, tmp_path):
  inputs, outputs = _scorer_artifacts(tmp_path, tiny_model, [{'key': 'a', 'x': 1.0}])
  with pytest.raises(ValueError, match="no output"):
    batch_scorer.Executor().Do(inputs, outputs, {
        'split': 'score', 'signature_name': 'serving_default', 'key_feature': 'key', 'output_names': '["nope"]',
        'batch_size': 2, 'output_format': 'csv'})


def test_the_bigquery_schema_is_the_same_from_a_batch_or_a_log():
  log = _log('007', 1.5, [1.5, -1.5])
  from_log = predictions_export.bigquery_schema(log, 'customer_id', ['pair', 'score'], [])
  from_batch = predictions_export.table_schema(
      'customer_id', 'bytes_list', {'pair': np.array([1.5, -1.5], np.float32), 'score': np.float32(1.5)}, {})
  assert from_log == from_batch


def test_csv_text_reads_back_exactly_and_quotes_only_when_needed():
  keys = np.array([b'0007', b'a,b', b'say "hi"', b'two\nlines'], dtype=object)
  floats = np.array([0.1, 1 / 3, 46.71676, 1e-7], np.float32)
  doubles = np.array([0.1, 1 / 3, 2.5, 1e300])
  text = batch_scorer.csv_text(keys, [floats, doubles, np.array([[1, 2], [3, 4], [5, 6], [7, 8]], np.int64),
                                      np.array([True, False, True, False]), floats.astype(np.float16)])
  assert text.startswith(b'0007,0.1,0.1,1,True,') and text.endswith(b'\n')  # shortest forms; a row's first value
  assert b'\n"a,b",' in text and b'\n"say ""hi""",' in text and b'\n"two\nlines",' in text  # quoted when needed
  rows = list(csv.reader(io.StringIO(text.decode())))
  assert [row[0] for row in rows] == ['0007', 'a,b', 'say "hi"', 'two\nlines']
  assert [np.float32(row[1]) for row in rows] == list(floats)
  assert [float(row[2]) for row in rows] == list(doubles)
  assert [row[3] for row in rows] == ['1', '3', '5', '7'] and [row[4] for row in rows] == ['True', 'False'] * 2
  assert [np.float16(row[5]) for row in rows] == list(floats.astype(np.float16))


def test_parts_of_a_file_score_every_batch_exactly_once(tiny_model, tmp_path):
  rows = [{'key': f'k{i}', 'x': float(i)} for i in range(7)]
  inputs, _ = _scorer_artifacts(tmp_path, tiny_model, rows)
  path = sorted(glob.glob(os.path.join(inputs['examples'][0].uri, 'Split-score', '*')))[1]  # rows 3..6
  score_file = batch_scorer._ScoreFile(  # pylint: disable=protected-access
      tiny_model, 'serving_default', 'key', 'bytes_list', ['score'], 1, 'csv')
  score_file.setup()
  lines = [line for part in range(3) for chunk in score_file.text_chunks(path, part, 3)
           for line in chunk.decode().splitlines()]
  assert sorted(lines) == ['k3,6', 'k4,8', 'k5,10', 'k6,12']
  multi = ['--direct_running_mode=multi_processing', '--direct_num_workers=4']
  assert batch_scorer.parts_per_file(multi, 1) == 4 and batch_scorer.parts_per_file(multi, 3) == 2
  assert batch_scorer.parts_per_file(multi, 8) == 1
  assert batch_scorer.parts_per_file(['--direct_running_mode=in_memory'], 1) == 1
  assert batch_scorer.parts_per_file(['--runner=DataflowRunner'], 1) == 1


def test_the_first_session_run_is_made_alone(tiny_model):
  """Concurrent first runs would each optimize the graph again: the first run ends before any other starts, and
  every run scores its own batch."""
  scorer = batch_scorer.SessionScorer(tiny_model, 'serving_default', 'key', 'bytes_list', ['score'], 2)
  real_run, intervals = scorer.session.run, []

  def timed_run(*args, **kwargs):
    started = time.monotonic()
    result = real_run(*args, **kwargs)
    intervals.append((started, time.monotonic()))
    return result

  scorer.session.run = timed_run
  batches = [np.array([beam_io.row_to_example({'key': f'k{i}', 'x': float(i)}).SerializeToString()], dtype=object)
             for i in range(6)]
  start = threading.Barrier(len(batches))

  def score(batch):
    start.wait()
    return scorer.score(batch)

  with futures.ThreadPoolExecutor(len(batches)) as pool:
    scored = [(keys.tolist(), outputs['score'].tolist()) for keys, outputs in pool.map(score, batches)]
  assert scored == [([f'k{i}'.encode()], [2.0 * i]) for i in range(6)]
  first, *others = sorted(intervals)
  assert len(others) == 5 and all(first[1] <= started for started, _ in others)


def test_generated_customers_are_as_old_as_those_the_clv_model_learns_from():
  """The default input's customers are in the age range of CLV's training customers (their calibration window on
  the CDNOW sample), not a prediction horizon later, where the DNN only extrapolates."""
  purchases = collections.defaultdict(list)
  with open(os.path.join(REPO, 'data', 'clv', 'transactions_sample.csv')) as f:
    for row in csv.DictReader(f):
      (customer, purchase), _ = clv.parse_transaction(row)
      purchases[customer].append(purchase)
  threshold = clv.parse_date(clv_pipeline.SETTINGS['threshold_date'])
  trained = [features['T'] for features in (clv.customer_features(p, threshold) for p in purchases.values())
             if features]
  generated = [row['T'] for row in generate.customer_rows(2000, seed=7)]
  assert min(trained) <= min(generated) and max(generated) <= max(trained)


@pytest.mark.parametrize('records', [0, 3, 6, 7])
def test_record_batches_read_every_record_once_in_order(records, tmp_path):
  """Full batches, then the rest; an empty file or one that ends on a batch boundary ends cleanly."""
  path = str(tmp_path / 'data.gz')
  with tf.io.TFRecordWriter(path, options='GZIP') as writer:
    for i in range(records):
      writer.write(f'record {i}'.encode())
  batches = [batch.tolist() for batch in beam_io.record_batches(path, 3)]
  assert [len(batch) for batch in batches] == [3] * (records // 3) + ([records % 3] if records % 3 else [])
  assert [r for batch in batches for r in batch] == [f'record {i}'.encode() for i in range(records)]


def test_the_bigquery_schema_comes_from_the_first_example_even_behind_an_empty_file(tiny_model, tmp_path):
  """The schema is read from scoring the first record of the first non-empty file (an empty first file made the
  scorer's schema probe fail before)."""
  empty, full = str(tmp_path / 'a.gz'), str(tmp_path / 'b.gz')
  tf.io.TFRecordWriter(empty, options='GZIP').close()
  with tf.io.TFRecordWriter(full, options='GZIP') as writer:
    for key in ('first', 'second'):
      writer.write(beam_io.row_to_example({'key': key, 'x': 1.0}).SerializeToString())
  example = batch_scorer.first_example([empty, full])
  assert example.features.feature['key'].bytes_list.value == [b'first']
  assert batch_scorer.first_example([empty]) is None
  scorer = batch_scorer.SessionScorer(tiny_model, 'serving_default', 'key', 'bytes_list', [], 1)
  assert batch_scorer.scored_table_schema(scorer, 'key', 'bytes_list', example) == {
      'fields': [{'name': 'key', 'type': 'STRING', 'mode': 'REQUIRED'},
                 {'name': 'pair', 'type': 'FLOAT', 'mode': 'REPEATED'},
                 {'name': 'score', 'type': 'FLOAT', 'mode': 'NULLABLE'}]}
