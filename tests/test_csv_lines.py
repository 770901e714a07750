"""pipelines.csv_lines: CSV files (plain and gzipped) read as lines on real Beam, bad lines kept as rows."""
import functools
import gzip
import re

import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import csv_lines

MALFORMED = '__line__'


def _write(path, text: str) -> None:
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wt') as f:
    f.write(text)


def test_rows_of_plain_and_gzipped_files_with_bad_lines_kept(tmp_path):
  _write(tmp_path / 'part-1.csv', 'id, x ,note\n007,1.5,"a, b"\n008,2\n')
  _write(tmp_path / 'part-2.csv.gz', 'id, x ,note\n009,3,\n010,4,c\x00d\n')
  assert csv_lines.csv_header(str(tmp_path / 'part-2.csv.gz')) == ['id', 'x', 'note']
  with test_pipeline.TestPipeline() as pipeline:
    rows = pipeline | csv_lines.ReadCsvRows(  # pylint: disable=no-value-for-parameter
        str(tmp_path / 'part-*'), functools.partial(csv_lines.csv_line_to_row, malformed_key=MALFORMED,
                                                    keep=['id', 'x']), required=['id'])
    assert_that(rows, equal_to([{'id': '007', 'x': '1.5'}, {MALFORMED: '008,2'}, {'id': '009', 'x': '3'},
                                {MALFORMED: '010,4,c\x00d'}]))


@pytest.mark.parametrize('files,message', [
    ({}, 'no file matches'),
    ({'a.csv': 'id,x\n1,2\n', 'b.csv': 'id,y\n1,2\n'}, 'have different headers'),
    ({'a.csv': 'key,x\n1,2\n'}, 'a.csv lacks column(s) id; its header is key, x'),
])
def test_files_that_cannot_be_read_as_one_table_are_refused(files, message, tmp_path):
  for name, text in files.items():
    _write(tmp_path / name, text)
  with pytest.raises(ValueError, match=re.escape(message)):
    with test_pipeline.TestPipeline() as pipeline:
      _ = pipeline | csv_lines.ReadCsvRows(  # pylint: disable=no-value-for-parameter
          str(tmp_path / '*.csv'), functools.partial(csv_lines.csv_line_to_row, malformed_key=MALFORMED),
          required=['id'])
