"""pipelines.csv_lines: CSV files (plain and gzipped) read as CSV defines them on real Beam, bad lines kept as
rejected rows with their reason and original text."""
import collections
import functools
import gzip
import json
import re

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import arrow_io, beam_io, csv_lines

MALFORMED = '__line__'
# A spreadsheet's export: byte-order mark, CRLF, a quoted field with a comma, quotes and a line break, a
# blank line, a cp1252 byte (invalid in UTF-8), a NUL byte, a short line.
SPREADSHEET = (b'\xef\xbb\xbfid, x ,note\r\n007,1.5,"a, ""b""\r\nc"\r\n\r\n'
               b'008,caf\xe9,\r\n009,3,c\x00d\r\n010,4\r\n011,5,ok\r\n')


def _rejected(reason, text):
  return {csv_lines.REJECTED_REASON: reason, csv_lines.REJECTED_LINE: text}


def _write(path, data: bytes) -> None:
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(data)


def test_records_of_a_spreadsheet_export_each_read_or_rejected_with_its_text(tmp_path):
  _write(tmp_path / 'a.csv', SPREADSHEET)
  assert csv_lines.csv_header(str(tmp_path / 'a.csv')) == ['id', 'x', 'note']
  assert list(csv_lines.file_records(str(tmp_path / 'a.csv'), 'utf-8')) == [
      ((['007', '1.5', 'a, "b"\r\nc'], '007,1.5,"a, ""b""\r\nc"'), ''),
      ((None, '008,caf\ufffd,'), csv_lines.BAD_ENCODING),
      ((None, '009,3,c\x00d'), csv_lines.WRONG_FIELD_COUNT),
      ((['010', '4'], '010,4'), ''),
      ((['011', '5', 'ok'], '011,5,ok'), '')]
  # the same file read as cp1252 (its encoding): the byte is a letter
  assert list(csv_lines.file_records(str(tmp_path / 'a.csv'), 'cp1252'))[1] == (
      (['008', 'café', ''], '008,café,'), '')


def test_examples_of_plain_and_gzipped_files_on_beam(tmp_path):
  _write(tmp_path / 'part-1.csv', SPREADSHEET)
  _write(tmp_path / 'part-2.csv.gz', b'id,x,note\n012,6,\n')
  with test_pipeline.TestPipeline() as pipeline:
    rows = (pipeline
            | csv_lines.ReadCsvExamples(str(tmp_path / 'part-*'), required=['id'])  # pylint: disable=no-value-for-parameter
            | 'Unbatch' >> beam.FlatMap(lambda batch: batch)
            | 'ToRow' >> beam.Map(beam_io.serialized_example_to_row))
    assert_that(rows, equal_to([
        {'id': '007', 'x': '1.5', 'note': 'a, "b"\r\nc'}, _rejected('bad_encoding', '008,caf\ufffd,'),
        _rejected('wrong_field_count', '009,3,c\x00d'), _rejected('wrong_field_count', '010,4'),
        {'id': '011', 'x': '5', 'note': 'ok'}, {'id': '012', 'x': '6', 'note': ''}]))


def test_rows_through_a_use_cases_line_to_row(tmp_path):
  _write(tmp_path / 'part-1.csv', b'id, x ,note\n007,1.5,"a, b"\n008,2\n')
  _write(tmp_path / 'part-2.csv.gz', b'id, x ,note\r\n009,3,\r\n010,4,c\x00d\r\n011,\xff,x\r\n')
  assert csv_lines.csv_header(str(tmp_path / 'part-2.csv.gz')) == ['id', 'x', 'note']
  with test_pipeline.TestPipeline() as pipeline:
    rows = pipeline | csv_lines.ReadCsvRows(  # pylint: disable=no-value-for-parameter
        str(tmp_path / 'part-*'), functools.partial(csv_lines.csv_line_to_row, malformed_key=MALFORMED,
                                                    keep=['id', 'x']), required=['id'])
    assert_that(rows, equal_to([{'id': '007', 'x': '1.5'}, {MALFORMED: '008,2'}, {'id': '009', 'x': '3'},
                                _rejected('wrong_field_count', '010,4,c\x00d'),
                                _rejected('bad_encoding', '011,\ufffd,x')]))


def test_reader_config_round_trips_through_exec_properties():
  from tfx.utils import proto_utils  # pylint: disable=g-import-not-at-top
  config = csv_lines.encode_reader_config('cp1252', ['id'])
  assert csv_lines.decode_reader_config({'custom_config': proto_utils.proto_to_json(config)}) == {
      'encoding': 'cp1252', 'required': ['id']}
  assert csv_lines.decode_reader_config({}) == {'encoding': 'utf-8', 'required': []}


@pytest.mark.parametrize('files,message', [
    ({}, 'no file matches'),
    ({'a.csv': b'id,x\n1,2\n', 'b.csv': b'id,y\n1,2\n'}, 'have different headers'),
    ({'a.csv': b'key,x\n1,2\n'}, 'a.csv lacks column(s) id; its header is key, x'),
    ({'a.csv': b'\xffid,x\n1,2\n'}, 'is not valid utf-8'),
])
def test_files_that_cannot_be_read_as_one_table_are_refused(files, message, tmp_path):
  for name, data in files.items():
    _write(tmp_path / name, data)
  with pytest.raises(ValueError, match=re.escape(message)):
    with test_pipeline.TestPipeline() as pipeline:
      _ = pipeline | csv_lines.ReadCsvExamples(  # pylint: disable=no-value-for-parameter
          str(tmp_path / '*.csv'), required=['id'])


@pytest.mark.parametrize('block_bytes,encoding,gzipped', [(64, 'utf-8', False), (300, 'cp1252', True),
                                                          (1 << 20, 'utf-8', True)])
def test_the_arrow_blocks_give_the_examples_and_rejects_of_the_per_line_reader(block_bytes, encoding, gzipped,
                                                                               tmp_path, monkeypatch):
  """Plain lines with the spreadsheet's bad ones (and a quoted line break across a block's end) among them:
  file_blocks' Arrow tables and per-line blocks give what file_records gives, record for record."""
  monkeypatch.setattr(csv_lines, 'BLOCK_BYTES', block_bytes)
  plain = [b'%03d,%d.5,n%d\r\n' % (i, i, i) for i in range(200)]
  bad = [b'012,"a\r\n\r\nb",x\r\n', b'013,caf\xe9,\r\n', b'014,3,c\x00d\r\n', b'015,4\r\n', b'016,1,2,3\r\n',
         b'\r\n', b'017,a\rb,c\r\n', b'018,\xef\xbb\xbf,c\r\n', b' \r\n']
  for index, line in enumerate(bad):
    plain.insert(index * 20 + 7, line)
  path = str(tmp_path / ('a.csv.gz' if gzipped else 'a.csv'))
  _write(path, b'\xef\xbb\xbfid, x ,note\r\n' + b''.join(plain) + b'019,9,last')
  header = csv_lines.csv_header(path, encoding)
  blocks = list(csv_lines.file_blocks(path, header, encoding))
  assert any(isinstance(block, csv_lines.pa.Table) for block in blocks)
  fast = [example for batch in csv_lines._examples_of_file(path, header, encoding)  # pylint: disable=protected-access
          for example in batch]
  by_line = csv_lines.records_to_serialized_examples(header, list(csv_lines.file_records(path, encoding)))
  rows = [sorted(json.dumps(beam_io.serialized_example_to_row(e), sort_keys=True) for e in examples)
          for examples in (fast, by_line)]
  assert rows[0] == rows[1]
  schema = csv_lines.record_batch_schema(header)
  batches = list(csv_lines._record_batches_of_file(path, header, encoding, schema))  # pylint: disable=protected-access
  assert all(batch.schema == schema for batch in batches)
  assert sorted(json.dumps(row, sort_keys=True) for batch in batches for row in arrow_io.batch_rows(batch)) == rows[1]
  assert len(fast) == 200 + len(bad) - 1 + 1  # the blank line is no row; the last line has no line end
  reasons = collections.Counter(beam_io.serialized_example_to_row(e).get(csv_lines.REJECTED_REASON) for e in fast)
  assert reasons[csv_lines.WRONG_FIELD_COUNT] == 5
  assert reasons[csv_lines.BAD_ENCODING] == (1 if encoding == 'utf-8' else 0)
