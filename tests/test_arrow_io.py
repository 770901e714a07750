"""pipelines.arrow_io: raw rows as Parquet RecordBatches written and read on real Beam, the reader's unreadable
rows set aside, rows as the same dicts the tf.Example path gives."""
import glob
import json
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import arrow_io, beam_io, csv_lines

HEADER = ['id', 'x']
SCHEMA = csv_lines.record_batch_schema(HEADER)
RECORDS = [((['1', 'caf\u00e9'], '1,caf\u00e9'), ''), ((None, '2,caf\ufffd'), csv_lines.BAD_ENCODING),
           ((['3'], '3'), ''), ((['4', ''], '4,'), '')]


def test_rows_are_the_dicts_of_the_same_rows_tf_examples():
  batch = csv_lines.records_to_record_batch(RECORDS, SCHEMA)
  examples = csv_lines.records_to_serialized_examples(HEADER, RECORDS)
  key = lambda row: json.dumps(row, sort_keys=True)  # records_to_serialized_examples puts rejected rows last
  assert sorted(arrow_io.batch_rows(batch), key=key) == sorted(map(beam_io.serialized_example_to_row, examples),
                                                                key=key)
  assert arrow_io.batch_rows(batch)[2] == {csv_lines.REJECTED_REASON: csv_lines.WRONG_FIELD_COUNT,
                                           csv_lines.REJECTED_LINE: '3'}


def test_unreadable_rows_are_set_aside_with_their_reason_and_line():
  batch = csv_lines.records_to_record_batch(RECORDS, SCHEMA)
  *unreadable, readable = arrow_io.split_unreadable(batch, csv_lines.REJECTED_REASON, csv_lines.REJECTED_LINE)
  assert readable.schema.names == HEADER
  assert arrow_io.batch_rows(readable) == [{'id': '1', 'x': 'caf\u00e9'}, {'id': '4', 'x': ''}]
  assert [(u.tag, u.value) for u in unreadable] == [
      ('unreadable', {'reason': 'bad_encoding', 'record': '2,caf\ufffd'}),
      ('unreadable', {'reason': 'wrong_field_count', 'record': '3'})]
  # a batch of readable rows only passes unchanged; one of unreadable rows only leaves no batch
  assert list(arrow_io.split_unreadable(readable, csv_lines.REJECTED_REASON, csv_lines.REJECTED_LINE)) == [readable]
  bad = csv_lines.records_to_record_batch(RECORDS[1:3], SCHEMA)
  outputs = list(arrow_io.split_unreadable(bad, csv_lines.REJECTED_REASON, csv_lines.REJECTED_LINE))
  assert [getattr(o, 'tag', None) for o in outputs] == ['unreadable', 'unreadable']


def test_batches_are_written_once_each_and_read_back_in_batches(tmp_path):
  batches = [csv_lines.records_to_record_batch(RECORDS * 50, SCHEMA) for _ in range(3)]
  with test_pipeline.TestPipeline() as pipeline:
    _ = pipeline | beam.Create(batches) | arrow_io.WriteRecordBatches(str(tmp_path), SCHEMA)  # pylint: disable=no-value-for-parameter
  files = sorted(glob.glob(str(tmp_path / '*')))
  assert files and all(os.path.basename(f).startswith('data_parquet-') for f in files)
  assert not glob.glob(str(tmp_path / '.temp-*'))
  read = [batch for path in files for batch in arrow_io.file_batches(path, 70)]
  assert max(batch.num_rows for batch in read) == 70
  assert pa.Table.from_batches(read).to_pylist() == pa.Table.from_batches(batches).to_pylist()
  with test_pipeline.TestPipeline() as pipeline:
    rows = (pipeline | arrow_io.ReadRecordBatches([str(tmp_path / '*')], 1000)  # pylint: disable=no-value-for-parameter
            | beam.Map(lambda batch: batch.num_rows) | beam.CombineGlobally(sum))
    assert_that(rows, equal_to([600]))


def test_no_batch_at_all_is_one_file_of_no_rows(tmp_path):
  with test_pipeline.TestPipeline() as pipeline:
    _ = pipeline | beam.Create([], reshuffle=False).with_output_types(pa.RecordBatch) | arrow_io.WriteRecordBatches(  # pylint: disable=no-value-for-parameter
        str(tmp_path), SCHEMA)
  (path,) = glob.glob(str(tmp_path / '*'))
  table = pq.read_table(path)
  assert (table.num_rows, table.schema) == (0, SCHEMA)


def test_a_gfile_stream_writes_and_reads_parquet_as_arrow_s_files_do(tmp_path):
  """The stream used for gs:// paths, tried on a local path (tf.io.gfile reads both)."""
  batch = csv_lines.records_to_record_batch(RECORDS * 20, SCHEMA)
  with arrow_io.GFileStream(str(tmp_path / 'a.parquet'), 'wb') as f:
    with pq.ParquetWriter(f, SCHEMA) as writer:
      writer.write_batch(batch)
  with arrow_io.GFileStream(str(tmp_path / 'a.parquet'), 'rb') as f:
    assert pq.read_table(f).to_pylist() == pa.Table.from_batches([batch]).to_pylist()
  assert pq.read_table(str(tmp_path / 'a.parquet')).equals(pa.Table.from_batches([batch]))
