"""ExamplesBuilder as a real TFX component under DirectRunner multi_processing, driven by the CLV module."""
import csv
import json
import os

import tensorflow as tf
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2
from tfx.types import channel

from pipelines import runners
from pipelines import beam_io
from pipelines.batch_inference import pipeline as pipeline_bi
from pipelines.components.examples_builder import ExamplesBuilder
from pipelines.example_gens import raw_example_gen

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_csv(path, rows):
  path.write_text('customer_id,date,quantity,amount\n' + '\n'.join(rows) + '\n')


def _build_clv_examples(example_gen, tmp_path, beam_pipeline_args) -> str:
  """Runs example_gen and an ExamplesBuilder of the CLV module after it; returns the report's folder."""
  builder = ExamplesBuilder(
      raw_examples=example_gen.outputs['examples'], build_fn='modules.clv.build_examples',
      params={'threshold_date': '1997-09-30', 'predict_end': '1998-06-30', 'max_monetary': 4000.0,
              'eval_percent': 50, 'seed': 3})
  runners.run_local(tfx.dsl.Pipeline(
      pipeline_name='builder_test', pipeline_root=str(tmp_path / 'root'), components=[example_gen, builder],
      metadata_connection_config=runners.sqlite_metadata(str(tmp_path / 'metadata.sqlite')),
      beam_pipeline_args=beam_pipeline_args))
  [report_dir] = [str(d) for d in (tmp_path / 'root' / 'ExamplesBuilder' / 'report').iterdir()]
  return report_dir


def test_examples_builder_multi_processing(tmp_path):
  data = tmp_path / 'data'
  data.mkdir()
  _write_csv(data / 'tx.csv', [
      '1,1997-01-10,1,10.00', '1,1997-01-10,3,20.00', '1,1997-11-01,1,5.00',   # train/eval, label 5
      '2,1997-02-01,2,12.50',                                                  # no holdout purchase
      '3,1998-01-01,1,4.00',                                                   # first purchase after threshold
      '4,19970315,1,oops',                                                     # bad amount
  ])
  example_gen = tfx.components.CsvExampleGen(
      input_base=str(data), input_config=example_gen_pb2.Input(splits=[
          example_gen_pb2.Input.Split(name='raw', pattern='tx.csv')]))
  report_dir = _build_clv_examples(example_gen, tmp_path, runners.direct_runner_args('multi_processing', 2))
  counts = beam_io.read_counts(report_dir)
  assert counts['rows_in'] == 6
  assert counts['skipped/unparsable_number'] == 1
  assert counts['skipped/no_purchase_before_threshold'] == 1
  assert counts['examples/score'] == 3
  assert counts.get('examples/train', 0) + counts.get('examples/eval', 0) == 2

  [examples_dir] = list((tmp_path / 'root' / 'ExamplesBuilder' / 'examples').iterdir())
  rows = []
  for split in ('train', 'eval'):
    for name in tf.io.gfile.glob(str(examples_dir / f'Split-{split}' / '*.gz')):
      for record in tf.data.TFRecordDataset(name, compression_type='GZIP'):
        rows.append(beam_io.example_to_row(tf.train.Example.FromString(record.numpy())))
  by_id = {row['customer_id']: row for row in rows}
  assert by_id['1']['label'] == 5.0 and by_id['1']['frequency'] == 0 and by_id['1']['total_spend'] == 30.0
  assert by_id['2']['label'] == 0.0

  rejected = {}
  for name in tf.io.gfile.glob(os.path.join(report_dir, 'rejected*.csv')):
    with open(name) as f:
      rejected.update((row['reason'], json.loads(row['record'])) for row in csv.DictReader(f))
  assert sorted(rejected) == ['no_purchase_before_threshold', 'unparsable_number']
  assert rejected['unparsable_number'] == {'customer_id': 4, 'date': '19970315', 'quantity': 1, 'amount': 'oops'}


def test_rows_from_a_parquet_payload_reach_a_row_module_as_from_tf_examples(tmp_path):
  """KeyedFilesExampleGen writes CSV as Parquet; the CLV module (dict rows) gets the rows it gets from the
  project's CSV reader's tf.Examples (values as text): the counts of the CsvExampleGen test above, and a line
  the reader could not read set aside with its reason."""
  data = tmp_path / 'data'
  data.mkdir()
  _write_csv(data / 'tx.csv', ['1,1997-01-10,1,10.00', '1,1997-01-10,3,20.00', '1,1997-11-01,1,5.00',
                               '2,1997-02-01,2,12.50', '3,1998-01-01,1,4.00', '4,19970315,1,oops', '5,1997-01-01'])
  example_gen = raw_example_gen(str(data / 'tx.csv'), [], file_executor=pipeline_bi.KeyedFilesExecutor)
  report_dir = _build_clv_examples(example_gen, tmp_path, runners.direct_runner_args('in_memory', 1))
  [raw_dir] = list((tmp_path / 'root' / 'KeyedFilesExampleGen' / 'examples').iterdir())
  assert [p.name for p in (raw_dir / 'Split-raw').iterdir()] == ['data_parquet-00000-of-00001.parquet']
  counts = beam_io.read_counts(report_dir)
  assert counts == {'rows_in': 7, 'skipped/unparsable_number': 1, 'skipped/no_purchase_before_threshold': 1,
                    'skipped/wrong_field_count': 1, 'examples/score': 3,
                    'examples/train': counts.get('examples/train', 0), 'examples/eval': counts.get('examples/eval', 0)}
  assert counts.get('examples/train', 0) + counts.get('examples/eval', 0) == 2
  rejected = {}
  for name in tf.io.gfile.glob(os.path.join(report_dir, 'rejected*.csv')):
    with open(name) as f:
      rejected.update((row['reason'], json.loads(row['record'])) for row in csv.DictReader(f))
  assert rejected['unparsable_number'] == {'customer_id': '4', 'date': '19970315', 'quantity': '1', 'amount': 'oops'}
  assert rejected['wrong_field_count'] == '5,1997-01-01'


def test_a_change_to_the_builder_s_or_its_row_coders_code_is_a_cache_miss():
  """The cache key holds the module's hash and that of the code reading and writing the rows."""
  raw = channel.Channel(type=tfx.types.standard_artifacts.Examples)
  builder = ExamplesBuilder(raw, 'modules.clv.build_examples', {}, code_version='module-hash')
  assert builder.exec_properties['code_version'] == 'module-hash+' + runners.code_version(
      'pipelines.components.examples_builder', 'pipelines.beam_io', 'pipelines.arrow_io')
