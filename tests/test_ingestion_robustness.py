"""Every CSV a user exports is read or its bad lines counted: each use case's own ExampleGen and ExamplesBuilder
(from its create_pipeline) as TFX components over a bundled sample turned into a spreadsheet's export
(byte-order mark, CRLF, gzip, quoted commas, quotes and line breaks) with a bad line of every kind added: every
row read or rejected with its reason, rows in = rows read + rows rejected, no NaN or infinity in the examples,
rejected rows parsed back with csv and json (the original line for a line that could not be read)."""
import collections
import csv
import gzip
import io
import json
import math
import os
from typing import Callable, Dict, List, Optional, Tuple

import pytest
import tensorflow as tf
from tfx import v1 as tfx

from modules import clv, recommender, sales_forecast as sf
from pipelines import beam_io, registry, runners
from pipelines.sales_forecast.pipeline import line_to_row as sales_line_to_row

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.e2e  # each case runs the use case's ExampleGen and ExamplesBuilder in TFX


def _sample(use_case: str, name: str, rows: Optional[int] = None) -> Tuple[str, List[str]]:
  """(header line, data lines) of a bundled sample, the first `rows` data lines when given."""
  with open(os.path.join(REPO, 'data', use_case, name), encoding='utf-8') as f:
    lines = f.read().splitlines()
  return lines[0], lines[1:][:rows]


class Case:
  """A use case's sample as a user's export: `good` extra records that must be read, `bad` lines (text,
  expected reason), the row-level reason of each sample row from the module's own parser."""

  def __init__(self, use_case: str, sample: str, rows: Optional[int], good: List[str],
               bad: List[Tuple[bytes, str]], row_reason: Callable[[List[str], str], Optional[str]],
               encoding: str = 'utf-8', settings: Optional[Dict[str, object]] = None):
    self.use_case, self.encoding, self.settings = use_case, encoding, settings or {}
    self.header, self.lines = _sample(use_case, sample, rows)
    self.good, self.bad, self.row_reason = good, bad, row_reason

  def write(self, path: str) -> None:
    """The export: BOM (utf-8), CRLF line ends, gzipped; the bad lines spread through the sample."""
    body = [line.encode(self.encoding) for line in self.lines]
    for index, (line, _) in enumerate(self.bad):
      body.insert((index + 1) * len(body) // (len(self.bad) + 2), line)
    body[len(body) // 3:len(body) // 3] = [g.replace('\n', '\r\n').encode(self.encoding) for g in self.good]
    bom = b'\xef\xbb\xbf' if self.encoding == 'utf-8' else b''
    with gzip.open(path, 'wb') as f:
      f.write(bom + b'\r\n'.join([self.header.encode(self.encoding)] + body) + b'\r\n')

  def expected_reasons(self) -> collections.Counter:
    """Row-level reasons: the module's for each sample row and good record, the reader's or the module's for
    each bad line."""
    header = next(csv.reader([self.header]))
    reasons = collections.Counter(self.row_reason(header, line) for line in self.lines + self.good)
    reasons.update(reason for _, reason in self.bad)
    return reasons


def _clv_reason(header, line):
  return clv.parse_transaction(dict(zip(header, next(csv.reader([line])))))[1]


def _sales_reason(header, line):
  return sf.parse_sale(sales_line_to_row(line, header))[1]


def _recommender_reason(header, line):
  return recommender.parse_listen(dict(zip(header, next(csv.reader([line])))))[1]


CASES = {
    'clv': Case('clv', 'transactions_sample.csv', None, good=['"4",1997-02-01,"1","12.50"'],
                bad=[(b'77,1997-02-01,1,caf\xe9', 'bad_encoding'), (b'78,1997-02-01,1', 'wrong_field_count'),
                     (b'79,1997-02-01,1,inf', 'unparsable_number'), (b'80,1997-02-01,nan,2', 'unparsable_number'),
                     (b'81,1997-02-01,1,1e308', 'unparsable_number'), (b'82,1997-02-01,1,1e39', 'unparsable_number'),
                     (b'83,1997-02-\x0001,1,2', 'wrong_field_count')],
                row_reason=_clv_reason),
    'sales_forecast': Case(
        'sales_forecast', 'sales_sample.csv', None,
        good=['2022-01-03,2936,39327,"Malibu ""Special"", 200ml\nlimited",Canadian Whiskies,Fifth Generation Inc,'
              '48,200,7.55,11.32,5'],
        bad=[(b'2022-01-03,2936,39327,Caf\xe9 Rum,Canadian Whiskies,Fifth Generation Inc,48,200,7.55,11.32,4',
              'bad_encoding'),
             (b'2022-01-03,2936,39327,Malibu,Canadian Whiskies,Fifth Generation Inc,48,200,7.55,11.32,inf',
              'unparsable_number'),
             (b'2022-01-03,2936,39327,Malibu,Canadian Whiskies,Fifth Generation Inc,48,200,nan,11.32,4',
              'unparsable_number'),
             (b'2022-01-03,2936,39327,Malibu,Canadian Whiskies,Fifth Generation Inc,48,200,7.55,11.32,1e308',
              'unparsable_number'),
             (b'2022-01-03,2936,39327,Malibu', 'wrong_field_count')],
        row_reason=_sales_reason),
    # cp1252, as an older spreadsheet program writes it: its bytes read as letters with encoding=cp1252; 0x81
    # is undefined in cp1252
    'recommender': Case(
        'recommender', 'listens_sample.csv', 3000, encoding='cp1252', settings={'encoding': 'cp1252'},
        good=['user_00000,t00418,"Track 418, ""Live""\nat the Café",Café Tacvba,country|10s,1730335276'],
        bad=[(b'user_00001,t00001,Track \x81,Artist 6,rock,1730335276', 'bad_encoding'),
             (b'user_00001,t00001,Track 1,Artist 6,rock,inf', 'unparsable_timestamp'),
             (b'user_00001,t00001,Track 1,Artist 6,rock,1e308', 'unparsable_timestamp'),
             (b'user_00001,t00001,Track 1,Artist 6', 'wrong_field_count')],
        row_reason=_recommender_reason),
}


def _run_ingestion(case: Case, data: str, root: str) -> Tuple[str, str]:
  """Runs the use case's ExampleGen + ExamplesBuilder (its own wiring); (examples uri, report uri)."""
  use_case = registry.get(case.use_case)
  settings = {**use_case.all_settings, **case.settings}
  full = use_case.create_pipeline(f'{case.use_case}_ingest', os.path.join(root, 'root'), data,
                                  os.path.join(root, 'serving'), settings, runners.direct_runner_args('in_memory', 1))
  parts = [c for c in full.components if c.id.endswith('ExampleGen') or c.id == 'ExamplesBuilder']
  assert len(parts) == 2
  for part in parts:  # the rest of the pipeline is not run: forget the edges to it
    part._downstream_nodes = {node for node in part._downstream_nodes if node in parts}  # pylint: disable=protected-access
  runners.run_local(tfx.dsl.Pipeline(
      pipeline_name=f'{case.use_case}_ingest', pipeline_root=os.path.join(root, 'root'), components=parts,
      metadata_connection_config=runners.sqlite_metadata(os.path.join(root, 'metadata.sqlite')),
      beam_pipeline_args=runners.direct_runner_args('in_memory', 1)))
  builder = os.path.join(root, 'root', 'ExamplesBuilder')
  [examples] = tf.io.gfile.glob(os.path.join(builder, 'examples', '*'))
  [report] = tf.io.gfile.glob(os.path.join(builder, 'report', '*'))
  return examples, report


def _float_values(examples_uri: str):
  for path in tf.io.gfile.glob(os.path.join(examples_uri, 'Split-*', '*.gz')):
    for record in tf.data.TFRecordDataset(path, compression_type='GZIP'):
      for feature in tf.train.Example.FromString(record.numpy()).features.feature.values():
        yield from feature.float_list.value


@pytest.mark.parametrize('name', sorted(CASES))
def test_a_spreadsheet_export_is_read_or_its_bad_lines_counted(name, tmp_path):
  case = CASES[name]
  data = str(tmp_path / 'export.csv.gz')
  case.write(data)
  registry.check_csv_header(data, registry.get(name).required_columns)  # the CLI's check: BOM and gzip pass
  examples, report = _run_ingestion(case, data, str(tmp_path))

  counts = beam_io.read_counts(report)
  expected = case.expected_reasons()
  assert counts['rows_in'] == len(case.lines) + len(case.good) + len(case.bad)  # in = read + rejected:
  skipped = beam_io.counts_under(counts, 'skipped')
  row_level = {reason: skipped.get(reason, 0) for reason in expected if reason}
  assert row_level == {reason: n for reason, n in expected.items() if reason}
  assert all(math.isfinite(v) for v in _float_values(examples))

  rejected = []
  for path in tf.io.gfile.glob(os.path.join(report, 'rejected*.csv')):
    with tf.io.gfile.GFile(path) as f:
      rejected += list(csv.DictReader(io.StringIO(f.read())))
  by_reason = collections.defaultdict(list)
  for row in rejected:
    by_reason[row['reason']].append(json.loads(row['record']))  # strict JSON: no NaN token
  assert collections.Counter({r: len(v) for r, v in by_reason.items()}) == collections.Counter(skipped)
  unreadable = [line.decode(case.encoding, errors='replace') for line, reason in case.bad
                if reason == 'bad_encoding' or (reason == 'wrong_field_count' and name != 'sales_forecast')]
  originals = collections.Counter(r for r in by_reason['bad_encoding'] + by_reason['wrong_field_count']
                                  if isinstance(r, str))
  assert not collections.Counter(unreadable) - originals  # each line the reader could not read, as it was
