"""CSV files (local or gs://, gzipped when the name ends in .gz) read as CSV defines them, never failing on a bad
line: the one reader of every use case's CSV input.

A UTF-8 byte-order mark and CRLF line ends are accepted; quoted fields may hold commas, quotes and line breaks.
Each file is decoded line by line in the run's `encoding` (default utf-8; cp1252 or latin-1 for files from
older spreadsheet programs): a line that is not valid in it, and a record whose field count differs from the
header's (or that holds a NUL byte), becomes a *rejected row* {REJECTED_REASON: 'bad_encoding' or
'wrong_field_count', REJECTED_LINE: the original text}, which the ExamplesBuilder sets aside with its reason
before the use case sees the rows (pipelines/components/examples_builder.py). Blank lines are not rows.
Values stay strings, as BigQuery gives them; the use case parses them.

CsvExampleGen fails a whole run on one line with a wrong field count or a byte not in UTF-8, so every use case
reads local and gs:// CSV files through CsvRowsExecutor (pipelines/example_gens.py) instead.
"""
import abc
import codecs
import csv
import gzip
import io
import itertools
import json
import os
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
from pyarrow import csv as pa_csv
import tensorflow as tf
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders import example_coder

from pipelines import arrow_io, beam_io

REJECTED_REASON = '__rejected_reason__'  # on a row the reader could not read: why
REJECTED_LINE = '__rejected_line__'      # ... and the original text of the line(s)
BAD_ENCODING = 'bad_encoding'
WRONG_FIELD_COUNT = 'wrong_field_count'
DEFAULT_ENCODING = 'utf-8'
BATCH_ROWS = 1000  # rows per encoded batch: tfx_bsl's encoder pays per call, not per row
_BOM = '\ufeff'

Record = Tuple[Optional[List[str]], str]  # (fields, or None when unreadable; the record's text)


def open_binary(path: str) -> io.IOBase:
  """`path` (local or any tf.io.gfile path) opened for reading bytes, gunzipped when its name ends in .gz."""
  raw = open(path, 'rb') if '://' not in path else tf.io.gfile.GFile(path, 'rb')  # pylint: disable=consider-using-with
  return gzip.GzipFile(fileobj=raw) if path.endswith('.gz') else raw


def csv_records(raw_lines: Iterable[bytes], encoding: str = DEFAULT_ENCODING, file_start: bool = True
                ) -> Iterator[Tuple[Record, str]]:
  """((fields, text), reason) for each CSV record of the byte lines: reason '' for a readable record (fields
  as csv.reader gives them, a quoted line break kept), BAD_ENCODING for a line that does not decode (fields
  None, its text decoded with U+FFFD for the bad bytes) and WRONG_FIELD_COUNT for a line csv cannot read (a
  NUL byte). A byte-order mark at the start is dropped (when the lines are a file's first: `file_start`);
  blank lines are skipped. Lines are pulled only as the records need them."""
  consumed: List[str] = []
  bad: List[str] = []
  first = [file_start]

  def decoded() -> Iterator[str]:
    for raw in raw_lines:
      try:
        line = raw.decode(encoding)
      except UnicodeDecodeError:
        bad.append(raw.decode(encoding, errors='replace').rstrip('\r\n'))
        continue
      if first[0]:
        first[0] = False
        line = line.lstrip(_BOM)
      consumed.append(line)
      yield line

  reader = csv.reader(decoded())
  while True:
    try:
      fields: Optional[List[str]] = next(reader)
      reason = ''
    except StopIteration:
      break
    except csv.Error:
      fields, reason = None, WRONG_FIELD_COUNT
    for line in bad:
      yield (None, line), BAD_ENCODING
    bad.clear()
    text = ''.join(consumed).rstrip('\r\n')
    consumed.clear()
    if fields == []:  # pylint: disable=g-explicit-bool-comparison  (None: unreadable)
      continue  # a blank line is no row
    yield (fields, text), reason
  for line in bad:  # undecodable lines after the last record
    yield (None, line), BAD_ENCODING


def csv_header(path: str, encoding: str = DEFAULT_ENCODING) -> List[str]:
  """The column names of a CSV file's first record, stripped (a byte-order mark dropped); [] for an empty
  file. Raises ValueError when the first line is not valid in `encoding`."""
  with open_binary(path) as stream:
    for (fields, text), reason in csv_records(stream, encoding):
      if reason == BAD_ENCODING:
        raise ValueError(f'the header of {path} is not valid {encoding}: {text[:80]!r}')
      return [name.strip() for name in fields or []]
  return []


def first_line(path: str, encoding: str = DEFAULT_ENCODING) -> str:
  """The first line of a text file (a byte-order mark dropped), decoded with U+FFFD for invalid bytes."""
  with open_binary(path) as stream:
    return stream.readline().decode(encoding, errors='replace').lstrip(_BOM).strip()


def rejected_row(reason: str, text: str) -> Dict[str, str]:
  """The row standing for a line the reader could not read (see the module docstring)."""
  return {REJECTED_REASON: reason, REJECTED_LINE: text}


def csv_line_to_row(line: str, header: Sequence[str], malformed_key: str,
                    keep: Optional[Sequence[str]] = None) -> Dict[str, str]:
  """One CSV record's text as {column: string} (only the columns in `keep`, when given), or {malformed_key:
  line} when it does not parse into the header's fields (a wrong field count, a NUL byte)."""
  try:
    fields = next(csv.reader([line])) if line else []
  except csv.Error:
    fields = []
  if len(fields) != len(header):
    return {malformed_key: line}
  return {name: value for name, value in zip(header, fields) if keep is None or name in keep}


LineToRow = Callable[[str, List[str]], Dict[str, str]]  # (record text, header) -> row: csv_line_to_row, bound


def _matching_files(pattern: str, required: Sequence[str], encoding: str) -> Tuple[List[str], List[str]]:
  """(files matching `pattern`, their common header); ValueError when none matches, a file lacks a required
  column, or the headers differ."""
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise ValueError(f'no file matches {pattern}')
  headers = {path: csv_header(path, encoding) for path in files}
  for path, names in headers.items():
    missing = [name for name in required if name not in names]
    if missing:
      raise ValueError(f'{path} lacks column(s) {", ".join(missing)}; its header is {", ".join(names)}')
  header = headers[files[0]]
  if any(names != header for names in headers.values()):
    raise ValueError(f'the files matching {pattern} have different headers')
  return files, header


def file_records(path: str, encoding: str) -> Iterator[Tuple[Record, str]]:
  """csv_records of one file after its header (which csv_header read and checked)."""
  with open_binary(path) as stream:
    records = csv_records(stream, encoding)
    next(records, None)
    yield from records


# ---------------------------------------------------------------------------------------------------
# The fast path: blocks of plain lines read by Arrow's C++ CSV reader, the others by csv_records
# ---------------------------------------------------------------------------------------------------

BLOCK_BYTES = 1 << 20  # bytes of a file taken at a time (about 4,500 rows of CLV customers)
_QUOTE, _NUL, _CR, _NEWLINE = b'"', b'\x00', b'\r', b'\n'


def _arrow_block(block: bytes, header: Sequence[str], encoding: str) -> Optional[pa.Table]:
  """The records of a block of whole lines as binary columns (UTF-8), read by Arrow, when Arrow reads them as
  csv_records would: no quote (a quoted field may span lines), NUL byte, byte-order mark or carriage return
  but before a line feed, every line valid in `encoding`, of the header's width and within csv's field size
  limit, the header's names unique; else None."""
  if (not block.strip() or _QUOTE in block or _NUL in block
      or (_CR in block and block.count(_CR) != block.count(b'\r\n')) or len(set(header)) != len(header)):
    return None
  try:
    text = block.decode(encoding)
  except UnicodeDecodeError:
    return None
  if _BOM in text:  # some codecs drop it at the start of each line they decode
    return None
  ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord(_NEWLINE)) + 1
  if np.diff(ends, prepend=0, append=len(block)).max() >= csv.field_size_limit():
    return None  # csv refuses a field this long (the line is rejected)
  data = block if codecs.lookup(encoding).name == 'utf-8' else text.encode('utf-8')
  widths_differ = []

  def other_width(_) -> str:
    widths_differ.append(True)
    return 'skip'

  # open_csv, not read_csv: on Python 3.10 read_csv's signal handler walks the garbage collector's referrers
  # (80 ms a call in a process holding TensorFlow); a handler, not an error, for a line of another width
  table = pa_csv.open_csv(
      io.BytesIO(data), read_options=pa_csv.ReadOptions(column_names=list(header), use_threads=False,
                                                        block_size=len(data) + 1),
      parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=True, invalid_row_handler=other_width),
      convert_options=pa_csv.ConvertOptions(column_types={name: pa.large_binary() for name in header},
                                            strings_can_be_null=False)).read_all()
  return None if widths_differ else table


def _lines_after(stream: io.IOBase, pending: List[bytes]) -> Iterator[bytes]:
  """The lines of pending[0] (bytes already read) and then of the stream, each ending in its line feed; what
  is left of pending[0] stays there as lines are taken."""
  while True:
    head, newline, rest = pending[0].partition(_NEWLINE)
    if newline:
      pending[0] = rest
      yield head + newline
      continue
    line = head + stream.readline()
    pending[0] = b''
    if not line:
      return
    yield line


def file_blocks(path: str, header: Sequence[str], encoding: str) -> Iterator[Any]:
  """What file_records gives, in order, a block of lines at a time: a pa.Table of the block's records
  (_arrow_block) where Arrow reads them exactly, else the block's file_records; a record that a quote carries
  past the block's end is read on with it."""
  with open_binary(path) as stream:
    pending = [b'']
    next(csv_records(_lines_after(stream, pending), encoding), None)  # the header, pulled line by line
    while True:
      chunk = stream.read(BLOCK_BYTES)
      data = pending[0] + chunk
      cut = len(data) if not chunk else data.rfind(_NEWLINE) + 1
      block, pending[0] = data[:cut], data[cut:]
      table = _arrow_block(block, header, encoding) if block else None
      if table is not None:
        yield table
      elif block:
        yield list(_records_from(block, stream, pending, encoding))
      if not chunk:
        return


def _records_from(block: bytes, stream: io.IOBase, pending: List[bytes], encoding: str
                  ) -> Iterator[Tuple[Record, str]]:
  """csv_records of the block's lines, then of the lines after it until a record ends at or after the
  block's end (a quoted line break may carry one past it)."""
  lines = block.split(_NEWLINE)
  lines = [line + _NEWLINE for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
  pulled = [0]

  def counted(source: Iterable[bytes]) -> Iterator[bytes]:
    for line in source:
      pulled[0] += 1
      yield line

  for item in csv_records(counted(itertools.chain(lines, _lines_after(stream, pending))), encoding,
                          file_start=False):
    yield item
    if item[1] != BAD_ENCODING and pulled[0] >= len(lines):
      return


def _batches(items: Iterator[Any], size: int) -> Iterator[List[Any]]:
  batch: List[Any] = []
  for item in items:
    batch.append(item)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def _rows_of_file(path: str, header: List[str], encoding: str, line_to_row: Optional[LineToRow]
                  ) -> Iterator[Dict[str, str]]:
  width = len(header)
  for (fields, text), reason in file_records(path, encoding):
    if reason:
      yield rejected_row(reason, text)
    elif line_to_row is not None:
      yield line_to_row(text, header)
    elif len(fields) != width:
      yield rejected_row(WRONG_FIELD_COUNT, text)
    else:
      yield dict(zip(header, fields))


@beam.ptransform_fn
def ReadCsvRows(pipeline: beam.Pipeline, pattern: str,  # pylint: disable=invalid-name
                line_to_row: Optional[LineToRow] = None, required: Sequence[str] = (),
                encoding: str = DEFAULT_ENCODING) -> beam.PCollection:
  """The rows of every file matching `pattern` (after its header): {column: string}, or a rejected_row for a
  line the reader could not read. With `line_to_row`, each readable record's text goes through it instead
  (a use case's own row format). Each file is read whole by one worker (a quoted line break may be anywhere).

  Raises ValueError when no file matches, a file lacks a `required` column, or the files' headers differ."""
  files, header = _matching_files(pattern, required, encoding)
  return (pipeline
          | 'Files' >> beam.Create(files)
          | 'ReadRows' >> beam.FlatMap(
              lambda path: _batches(_rows_of_file(path, header, encoding, line_to_row), BATCH_ROWS))
          | 'SpreadBatches' >> beam.Reshuffle()  # so the steps after reading are not all on one file's worker
          | 'Unbatch' >> beam.FlatMap(lambda batch: batch))


# ---------------------------------------------------------------------------------------------------
# Straight to serialized tf.Examples, a batch of records at a time (the ExampleGen of every use case)
# ---------------------------------------------------------------------------------------------------

_ENCODER = example_coder.RecordBatchToExamplesEncoder()


def _one_value_lists(values: List[str]) -> pa.Array:
  """A large_list<large_binary> array of one UTF-8 value per row, built without a Python list per row."""
  flat = pa.array(values, type=pa.large_string()).cast(pa.large_binary())
  return pa.LargeListArray.from_arrays(pa.array(np.arange(len(values) + 1), type=pa.int64()), flat)


def records_to_serialized_examples(header: Sequence[str], records: Sequence[Tuple[Record, str]]) -> List[bytes]:
  """Serialized tf.Examples of a batch of file_records: a readable record of the header's width as one bytes
  feature per column (encoded in C++ by tfx_bsl, column by column), any other as a rejected_row."""
  width = len(header)
  good = [fields for (fields, _), reason in records if not reason and len(fields) == width]
  serialized: List[bytes] = []
  if good:
    columns = [_one_value_lists(list(column)) for column in zip(*good)]
    serialized = _ENCODER.encode(pa.RecordBatch.from_arrays(columns, list(header)))
  for (fields, text), reason in records:
    if reason or len(fields) != width:
      row = rejected_row(reason or WRONG_FIELD_COUNT, text)
      serialized.append(beam_io.row_to_example(row).SerializeToString())
  return serialized


def table_to_serialized_examples(table: pa.Table) -> List[bytes]:
  """Serialized tf.Examples of a table of binary columns, one bytes feature per column (what
  records_to_serialized_examples gives for the same records)."""
  serialized: List[bytes] = []
  for batch in table.to_batches():
    offsets = pa.array(np.arange(batch.num_rows + 1), type=pa.int64())
    serialized += _ENCODER.encode(pa.RecordBatch.from_arrays(
        [pa.LargeListArray.from_arrays(offsets, column) for column in batch.columns], batch.schema.names))
  return serialized


def _examples_of_file(path: str, header: List[str], encoding: str) -> Iterator[List[bytes]]:
  for block in file_blocks(path, header, encoding):
    if isinstance(block, pa.Table):
      yield table_to_serialized_examples(block)
    else:
      for batch in _batches(iter(block), BATCH_ROWS):
        yield records_to_serialized_examples(header, batch)


@beam.ptransform_fn
def ReadCsvExamples(pipeline: beam.Pipeline, pattern: str, required: Sequence[str] = (),  # pylint: disable=invalid-name
                    encoding: str = DEFAULT_ENCODING) -> beam.PCollection:
  """Lists of up to BATCH_ROWS serialized tf.Examples of the rows of every file matching `pattern`
  (ReadCsvRows' rows, every value a bytes feature). Raises ValueError as ReadCsvRows does."""
  files, header = _matching_files(pattern, required, encoding)
  return (pipeline
          | 'Files' >> beam.Create(files)
          | 'ReadBatches' >> beam.FlatMap(_examples_of_file, header, encoding))


# ---------------------------------------------------------------------------------------------------
# Or as Arrow RecordBatches, for a Parquet payload (pipelines.arrow_io)
# ---------------------------------------------------------------------------------------------------

def record_batch_schema(header: Sequence[str]) -> Optional[pa.Schema]:
  """The schema of ReadCsvRecordBatches' batches: each column binary (UTF-8), then the reason and original line
  of a row the reader could not read; None when the header's names are not unique or take one of those two."""
  if len(set(header)) != len(header) or {REJECTED_REASON, REJECTED_LINE} & set(header):
    return None
  return pa.schema([pa.field(name, pa.large_binary()) for name in header]
                   + [pa.field(REJECTED_REASON, pa.large_string()), pa.field(REJECTED_LINE, pa.large_string())])


def _with_reader_columns(columns: List[pa.Array], reasons: List[Optional[str]], lines: List[Optional[str]],
                         schema: pa.Schema) -> pa.RecordBatch:
  return pa.RecordBatch.from_arrays(
      columns + [pa.array(reasons, type=pa.large_string()), pa.array(lines, type=pa.large_string())], schema=schema)


def records_to_record_batch(records: Sequence[Tuple[Record, str]], schema: pa.Schema) -> pa.RecordBatch:
  """A batch of file_records as one row each (records_to_serialized_examples' rows, in the records' order): a
  readable record of the header's width as its fields, any other as its reason and text."""
  width = len(schema) - 2
  good = [not reason and len(fields) == width for (fields, _), reason in records]
  columns: List[List[Optional[str]]] = [[] for _ in range(width)]
  reasons: List[Optional[str]] = []
  lines: List[Optional[str]] = []
  for ((fields, text), reason), readable in zip(records, good):
    for column, value in zip(columns, fields if readable else itertools.repeat(None, width)):
      column.append(value)
    reasons.append(None if readable else reason or WRONG_FIELD_COUNT)
    lines.append(None if readable else text)
  arrays = [pa.array(column, type=pa.large_string()).cast(pa.large_binary()) for column in columns]
  return _with_reader_columns(arrays, reasons, lines, schema)


def _record_batches_of_file(path: str, header: List[str], encoding: str, schema: pa.Schema
                            ) -> Iterator[pa.RecordBatch]:
  for block in file_blocks(path, header, encoding):
    if isinstance(block, pa.Table):
      for batch in block.to_batches():
        nulls = [None] * batch.num_rows
        yield _with_reader_columns(batch.columns, nulls, nulls, schema)
    else:
      for records in _batches(iter(block), BATCH_ROWS):
        yield records_to_record_batch(records, schema)


@beam.ptransform_fn
def ReadCsvRecordBatches(pipeline: beam.Pipeline, pattern: str, schema: pa.Schema,  # pylint: disable=invalid-name
                         required: Sequence[str] = (), encoding: str = DEFAULT_ENCODING) -> beam.PCollection:
  """ReadCsvExamples' rows as RecordBatches of `schema` (record_batch_schema of the files' header), a block
  of the file at a time. Raises ValueError as ReadCsvRows does."""
  files, header = _matching_files(pattern, required, encoding)
  return (pipeline
          | 'Files' >> beam.Create(files)
          | 'ReadBatches' >> beam.FlatMap(_record_batches_of_file, header, encoding, schema))


def csv_files_header(pattern: str, encoding: str = DEFAULT_ENCODING) -> List[str]:
  """The header common to the files matching `pattern`; ValueError as ReadCsvRows raises it."""
  return _matching_files(pattern, (), encoding)[1]


def encode_reader_config(encoding: str, required: Sequence[str]) -> example_gen_pb2.CustomConfig:
  """ExampleGen's custom_config for CsvRowsExecutor (JSON in a StringValue: the proto holds an Any)."""
  from google.protobuf import any_pb2, wrappers_pb2  # pylint: disable=g-import-not-at-top
  packed = any_pb2.Any()
  packed.Pack(wrappers_pb2.StringValue(value=json.dumps({'encoding': encoding, 'required': list(required)})))
  return example_gen_pb2.CustomConfig(custom_config=packed)


def decode_reader_config(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
  """encode_reader_config's settings from an ExampleGen's exec_properties (defaults when absent)."""
  from google.protobuf import wrappers_pb2  # pylint: disable=g-import-not-at-top
  settings: Dict[str, Any] = {'encoding': DEFAULT_ENCODING, 'required': []}
  text = exec_properties.get('custom_config')
  if text:
    config = proto_utils.json_to_proto(text, example_gen_pb2.CustomConfig()) if isinstance(text, str) else text
    value = wrappers_pb2.StringValue()
    if config.custom_config.Unpack(value):
      settings.update(json.loads(value.value))
  return settings


class BatchesExampleGenExecutor(BaseExampleGenExecutor):
  """An ExampleGen executor whose input transform (GetInputSourceToBatchesPTransform, called as
  GetInputSourceToExamplePTransform's) gives lists of serialized tf.Examples, written as they come to the one
  output split (beam_io.WriteExampleBatches: in the step that reads them on one worker, after a Reshuffle on
  several, so that the next components' workers get several files). TFX's own Do pays four Python steps a
  record (hash partition, serialization check, shuffle, write) where one output split needs none."""

  @abc.abstractmethod
  def GetInputSourceToBatchesPTransform(self) -> beam.PTransform:
    """A ptransform_fn (pipeline, exec_properties, split_pattern) -> PCollection of lists of serialized
    tf.Examples, or of RecordBatches when parquet_schema gives their schema."""

  def parquet_schema(self, exec_properties: Dict[str, Any], split_pattern: str) -> Optional[pa.Schema]:
    """The schema of the RecordBatches that GetInputSourceToBatchesPTransform gives for this input, written as
    a Parquet payload (pipelines.arrow_io); None (here) when it gives serialized tf.Examples."""
    del exec_properties, split_pattern
    return None

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    batches = self.GetInputSourceToBatchesPTransform()

    @beam.ptransform_fn
    def _Examples(pipeline, exec_properties, split_pattern):  # pylint: disable=invalid-name
      return (pipeline | 'Batches' >> batches(exec_properties, split_pattern)  # pylint: disable=no-value-for-parameter
              | 'Unbatch' >> beam.FlatMap(lambda batch: batch))
    return _Examples

  def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    input_config = proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                             example_gen_pb2.Input())
    output_config = proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
                                              example_gen_pb2.Output())
    split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
    if len(split_names) != 1 or len(input_config.splits) != 1:
      raise ValueError(f'{type(self).__name__} writes one split from one input split, not {split_names}')
    examples = output_dict[standard_component_specs.EXAMPLES_KEY]
    artifact_utils.get_single_instance(examples).split_names = artifact_utils.encode_split_names(split_names)
    exec_properties['_beam_pipeline_args'] = self._beam_pipeline_args or []
    split_pattern = input_config.splits[0].pattern
    schema = self.parquet_schema(exec_properties, split_pattern)
    uri = artifact_utils.get_split_uri(examples, split_names[0])
    with self._make_beam_pipeline() as pipeline:
      batches = pipeline | 'InputToBatches' >> self.GetInputSourceToBatchesPTransform()(  # pylint: disable=no-value-for-parameter
          exec_properties, split_pattern)
      if not beam_io.one_worker(self._beam_pipeline_args or []):  # several files for the next steps' workers
        batches = batches | 'SpreadBatches' >> beam.Reshuffle()
      if schema is None:
        _ = batches | 'Write' >> beam_io.WriteExampleBatches(uri)  # pylint: disable=no-value-for-parameter
      else:
        _ = batches | 'Write' >> arrow_io.WriteRecordBatches(uri, schema)  # pylint: disable=no-value-for-parameter
    for artifact in examples:
      if schema is None:
        examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(artifact,
                                       write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))
      else:
        examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_PARQUET)
        examples_utils.set_file_format(artifact, arrow_io.FILE_FORMAT)


@beam.ptransform_fn
def _CsvToBatches(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # pylint: disable=invalid-name
                  split_pattern: str) -> beam.PCollection:
  settings = decode_reader_config(exec_properties)
  return pipeline | 'ReadCsv' >> ReadCsvExamples(  # pylint: disable=no-value-for-parameter
      os.path.join(exec_properties['input_base'], split_pattern), settings['required'], settings['encoding'])


class CsvRowsExecutor(BatchesExampleGenExecutor):
  """ExampleGen executor reading CSV files with ReadCsvExamples: never fails on a bad line (see module doc)."""

  def GetInputSourceToBatchesPTransform(self) -> beam.PTransform:
    return _CsvToBatches
