"""pipelines.artifacts: GZIP TFRecord files read back as written, by list, by pattern and by split."""
import os

import tensorflow as tf

from pipelines import artifacts


def _write(path: str, records):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(path, options='GZIP') as writer:
    for record in records:
      writer.write(record)


def test_records_come_back_in_file_order_by_list_pattern_and_split(tmp_path):
  uri = str(tmp_path / 'examples')
  _write(os.path.join(uri, 'Split-eval', 'data-00001.gz'), [b'c'])
  _write(os.path.join(uri, 'Split-eval', 'data-00000.gz'), [b'a', b'b'])
  _write(os.path.join(uri, 'Split-train', 'data-00000.gz'), [b'x'])
  assert list(artifacts.read_split(uri, 'eval')) == [b'a', b'b', b'c']
  assert list(artifacts.read_records(os.path.join(uri, 'Split-*', '*.gz'))) == [b'a', b'b', b'c', b'x']
  assert list(artifacts.read_records(artifacts.split_files(uri, 'train'))) == [b'x']
  assert list(artifacts.read_split(uri, 'score')) == []
