"""tf.Example <-> dict row conversions (beam_io), in Python and through tfx_bsl's C++ decoder, and the Beam
transforms that read and write rows as GZIP TFRecords."""
import glob
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from pipelines import beam_io

ROW = {'id': '0000042', 'count': 3, 'flag': True, 'price': 2.5, 'weight': np.float32(0.75), 'word': 'café',
       'raw': b'\x00\xff', 'ints': [1, -2, 3], 'floats': (0.5, 1.5), 'words': ['a', b'b'], 'empty': [],
       'missing': None}
# What reads back: None and empty lists are None, bytes decoded as UTF-8 (invalid bytes replaced), bools are ints.
READ_BACK = {'id': '0000042', 'count': 3, 'flag': 1, 'price': 2.5, 'weight': 0.75, 'word': 'café',
             'raw': '\x00\ufffd', 'ints': [1, -2, 3], 'floats': [0.5, 1.5], 'words': ['a', 'b'], 'empty': None}


def test_row_to_example_picks_each_features_kind_from_its_first_value():
  features = beam_io.row_to_example(ROW).features.feature
  kinds = {name: feature.WhichOneof('kind') for name, feature in features.items()}
  assert kinds == {'id': 'bytes_list', 'count': 'int64_list', 'flag': 'int64_list', 'price': 'float_list',
                   'weight': 'float_list', 'word': 'bytes_list', 'raw': 'bytes_list', 'ints': 'int64_list',
                   'floats': 'float_list', 'words': 'bytes_list', 'empty': 'float_list'}
  assert list(features['empty'].float_list.value) == []
  assert list(features['words'].bytes_list.value) == [b'a', b'b']


def test_example_to_row_and_the_cpp_decoder_read_back_the_same_row():
  example = beam_io.row_to_example(ROW)
  assert beam_io.example_to_row(example) == READ_BACK
  assert beam_io.serialized_example_to_row(example.SerializeToString()) == READ_BACK


def test_a_feature_with_no_kind_reads_back_as_none():
  example = tf.train.Example()
  example.features.feature['nothing'].SetInParent()
  example.features.feature['one'].int64_list.value.append(1)
  expected = {'nothing': None, 'one': 1}
  assert beam_io.example_to_row(example) == expected
  assert beam_io.serialized_example_to_row(example.SerializeToString()) == expected


def test_write_then_read_example_rows_through_beam(tmp_path):
  rows = [{'id': str(i), 'value': i * 0.5, 'tags': ['x'] * (i % 3)} for i in range(50)]
  with beam.Pipeline() as pipeline:
    _ = pipeline | beam.Create(rows) | beam_io.WriteExampleRows(str(tmp_path))
  files = glob.glob(os.path.join(tmp_path, 'data_tfrecord-*.gz'))
  assert files
  expected = [{**row, 'tags': (row['tags'][0] if len(row['tags']) == 1 else row['tags'] or None)} for row in rows]
  with beam.Pipeline() as pipeline:
    read = pipeline | beam_io.ReadExampleRows(os.path.join(tmp_path, 'data_tfrecord-*'))
    assert_that(read, equal_to(expected))


def _parsed(serialized):
  return [tf.train.Example.FromString(s) for s in serialized]


UNIFORM = [{'id': str(i), 'n': i, 'x': i / 3, 'flag': i % 2 == 0, 'tags': ['a', 'b'][:1 + i % 2],
            'scores': [float(i)] * (i % 2)} for i in range(6)]


def test_a_uniform_batch_is_encoded_in_cpp_as_row_to_example_would(monkeypatch):
  # every column has one kind in every row ('scores' is a float_list, empty or not)
  expected = [beam_io.row_to_example(row) for row in UNIFORM]

  def row_by_row(row):
    raise AssertionError(f'a uniform batch went row by row: {row}')
  monkeypatch.setattr(beam_io, 'row_to_example', row_by_row)
  assert _parsed(beam_io.rows_to_serialized_examples(UNIFORM)) == expected


@pytest.mark.parametrize('rows', [
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': None}],          # a None (the encoder would write a feature with no kind)
    [{'a': 1, 'b': 'x'}, {'a': 2}],                     # a feature missing from a row
    [{'a': 1}, {'a': 2.5}],                             # int in one row, float in another
    [{'a': [1, 2]}, {'a': []}],                         # an empty list is a float_list
    [{'a': 1}, {'c': 1}],                               # other names, same count
    [{}, {}],                                           # no features
    [],
], ids=['none', 'missing', 'mixed_kinds', 'empty_list', 'other_names', 'no_features', 'no_rows'])
def test_other_batches_are_converted_row_by_row(rows):
  assert _parsed(beam_io.rows_to_serialized_examples(rows)) == [beam_io.row_to_example(row) for row in rows]


@pytest.mark.parametrize('batches', [[[b'r%d-%d' % (i, j) for j in range(i + 1)] for i in range(40)], []],
                         ids=['batches', 'none'])
def test_batches_are_written_as_gzip_tfrecords_once_each(batches, tmp_path):
  with beam.Pipeline() as pipeline:
    _ = pipeline | beam.Create(batches) | beam_io.WriteExampleBatches(str(tmp_path))  # pylint: disable=no-value-for-parameter
  files = sorted(os.path.join(tmp_path, name) for name in os.listdir(tmp_path))
  assert files and all(os.path.basename(f).startswith('data_tfrecord-') for f in files)  # no temporary left
  read = [record for path in files for batch in beam_io.record_batches(path, 7) for record in batch.tolist()]
  assert sorted(read) == sorted(record for batch in batches for record in batch)


def test_one_worker_is_the_in_process_runner_only():
  from pipelines import runners  # pylint: disable=g-import-not-at-top
  assert beam_io.one_worker(runners.direct_runner_args('in_memory', 1)) and beam_io.one_worker([])
  assert not beam_io.one_worker(runners.direct_runner_args('multi_processing', 0))
  assert not beam_io.one_worker(['--runner=DataflowRunner', '--project=p', '--region=r'])
