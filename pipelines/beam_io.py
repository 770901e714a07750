"""Beam helpers shared by our components: tf.Example <-> dict rows, counters written as one JSON file."""
import functools
import json
import math
import os
import uuid
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
import numpy as np
import pyarrow as pa
import tensorflow as tf
from tfx_bsl.coders import example_coder

COUNTS_FILE = 'counts.json'
READ_RECORDS = 10_000  # records a reader run reads, at least (1M rows: 1.8 CPU-s, against 2.1 reading 1,000 a run)
Row = Dict[str, Any]


def example_to_row(example: tf.train.Example) -> Row:
  """Converts a tf.Example to a dict: one value -> scalar, none -> None, several -> list; bytes decoded."""
  row: Row = {}
  features = example.features.feature
  for name in features:  # keys, then lookups: the map's items() view iterates in Python, a sixth slower
    feature = features[name]
    kind = feature.WhichOneof('kind')
    values = getattr(feature, kind).value if kind else ()
    if kind == 'bytes_list':
      values = [v.decode('utf-8', errors='replace') for v in values]
    row[name] = values[0] if len(values) == 1 else (list(values) or None)
  return row


def serialized_example_to_row(serialized: bytes) -> Row:
  """example_to_row of a serialized tf.Example, decoded in C++ by tfx_bsl (ExampleToNumpyDict, as TFMA's input
  extractor does): a third of the time of parsing the proto and walking its map in Python (50 against 150 us a
  row of 13 features on our 2-core machine). Raises RuntimeError for bytes that are not a tf.Example."""
  row: Row = {}
  for name, array in example_coder.ExampleToNumpyDict(serialized).items():
    values = [] if array is None else array.tolist()  # None: a feature with no kind set
    if values and array.dtype == object:
      values = [v.decode('utf-8', errors='replace') for v in values]
    row[name] = values[0] if len(values) == 1 else (values or None)
  return row


def _kind_and_values(value: Any) -> Tuple[str, List[Any]]:
  """(tf.Example list kind, values) of a non-None row value; the first value picks the kind (row_to_example)."""
  values = value if isinstance(value, (list, tuple)) else (value,)
  first = values[0] if values else 0.0
  if isinstance(first, int) and not isinstance(first, float):  # bool is an int
    return 'int64_list', [int(v) for v in values]
  if isinstance(first, float) or hasattr(first, 'dtype'):
    return 'float_list', [float(v) for v in values]
  return 'bytes_list', [v if isinstance(v, bytes) else str(v).encode('utf-8') for v in values]


def row_to_example(row: Mapping[str, Any]) -> tf.train.Example:
  """Converts a dict of scalars or lists (int, float, str, bytes) to a tf.Example; None values are omitted.
  The first value picks the kind: bool or int -> int64_list, float or a NumPy number -> float_list, else
  bytes_list (str encoded as UTF-8); an empty list is a float_list with no values.

  Filled in place (a map entry per feature, its list extended): three times faster than building Feature
  messages and copying them in."""
  example = tf.train.Example()
  features = example.features.feature
  for name, value in row.items():
    if value is None:
      continue
    kind, values = _kind_and_values(value)
    kind_list = getattr(features[name], kind)
    kind_list.value.extend(values)
    if not values:
      kind_list.SetInParent()  # an empty list is still a feature of its kind
  return example


_ARROW_TYPES = {'int64_list': pa.large_list(pa.int64()), 'float_list': pa.large_list(pa.float32()),
                'bytes_list': pa.large_list(pa.large_binary())}
_ENCODER = example_coder.RecordBatchToExamplesEncoder()


def _uniform_columns(rows: Sequence[Mapping[str, Any]]) -> Optional[Dict[str, Tuple[str, List[List[Any]]]]]:
  """{feature: (kind, its values in each row)} when every row has the same features, none None, each of one
  kind in all rows; else None."""
  columns: Dict[str, List[List[Any]]] = {name: [] for name in rows[0]} if rows else {}
  kinds: Dict[str, str] = {}
  for row in rows:
    if len(row) != len(columns):
      return None
    for name, value in row.items():
      column = columns.get(name)
      if column is None or value is None:
        return None
      kind, values = _kind_and_values(value)
      if kinds.setdefault(name, kind) != kind:
        return None
      column.append(values)
  return {name: (kinds[name], values) for name, values in columns.items()} if columns else None


def rows_to_serialized_examples(rows: Sequence[Mapping[str, Any]]) -> List[bytes]:
  """row_to_example(row).SerializeToString() of each row, in order. Encoded in C++ by tfx_bsl's
  RecordBatchToExamplesEncoder (as Transform writes examples) when the batch's columns are uniform
  (_uniform_columns): half the time of row_to_example (55 against 120 us a row of 13 features on our 2-core
  machine). Other batches (the encoder writes a None as a feature with no kind, and a column has one type) are
  converted row by row."""
  columns = _uniform_columns(rows)
  if columns is None:
    return [row_to_example(row).SerializeToString() for row in rows]
  batch = pa.RecordBatch.from_arrays([pa.array(values, type=_ARROW_TYPES[kind]) for kind, values in columns.values()],
                                     list(columns))
  return _ENCODER.encode(batch)


@beam.ptransform_fn
def RowsToSerializedExamples(rows: beam.PCollection) -> beam.PCollection:  # pylint: disable=invalid-name
  """Dict rows -> serialized tf.Examples (rows_to_serialized_examples over batches of up to 1,000 rows)."""
  return (rows
          | 'Batch' >> beam.BatchElements(min_batch_size=1, max_batch_size=1000)
          | 'Encode' >> beam.FlatMap(rows_to_serialized_examples))


def record_batches(path: str, batch_size: int) -> Iterator[np.ndarray]:
  """The serialized records of one GZIP TFRecord file, `batch_size` at a time (the last batch may be smaller).

  Read by a TF1 TFRecordReader (ReaderReadUpTo, record by record in C++) from a queue holding the file, closed,
  so the end of the file is the queue's OutOfRange; at least READ_RECORDS records a session run, sliced into
  batches. Measured on a 1M-row file on 2 cores: 1.8 CPU-s with the fetch into NumPy (2.1 reading 1,000 records
  a run), against 3.7 CPU-s for tf.data's TFRecordDataset + batch (an iterator step per record) without any
  fetch; and a tf.data iterator that had read the file made the session's close take 2-4 s."""
  read_size = batch_size * math.ceil(READ_RECORDS / batch_size)  # whole batches, so only the last is short
  graph = tf.compat.v1.Graph()
  with graph.as_default():
    queue = tf.queue.FIFOQueue(1, tf.string)
    enqueue, close = queue.enqueue(path), queue.close()
    _, records = tf.compat.v1.TFRecordReader(options=tf.io.TFRecordOptions('GZIP')).read_up_to(queue, read_size)
  with tf.compat.v1.Session(graph=graph) as session:
    session.run(enqueue)
    session.run(close)
    while True:
      try:
        read = session.run(records)
      except tf.errors.OutOfRangeError:
        return
      for start in range(0, len(read), batch_size):
        yield read[start:start + batch_size]


def one_worker(beam_pipeline_args: Sequence[str]) -> bool:
  """Whether Beam runs these args' pipelines on one worker in this process (the DirectRunner or FnApiRunner
  in_memory): there, spreading elements over workers only encodes and decodes them."""
  options = PipelineOptions(list(beam_pipeline_args))
  return (options.view_as(StandardOptions).runner in (None, 'DirectRunner', 'FnApiRunner')
          and options.view_as(DirectOptions).direct_running_mode == 'in_memory')


@beam.ptransform_fn
def ReadFileBatches(pipeline: beam.Pipeline, file_patterns: Sequence[str],  # pylint: disable=invalid-name
                    read_file: Callable[[str], Iterable[Any]], spread: bool = True) -> beam.PCollection:
  """The batches read_file(path) gives of each file matching the patterns, each file read by one worker, the
  batches then spread over the workers when `spread` (not on one worker (one_worker), where the Reshuffle only
  encodes and decodes every batch)."""
  files = sorted({path for pattern in file_patterns for path in tf.io.gfile.glob(pattern)})
  batches = (pipeline
             | 'Files' >> beam.Create(files)
             | 'ReadBatches' >> beam.FlatMap(read_file))
  return batches | 'SpreadBatches' >> beam.Reshuffle() if spread else batches


def _record_lists(path: str, batch_size: int) -> Iterator[List[bytes]]:
  return (batch.tolist() for batch in record_batches(path, batch_size))


@beam.ptransform_fn
def ReadExampleBatches(pipeline: beam.Pipeline, file_patterns: Sequence[str],  # pylint: disable=invalid-name
                       batch_size: int, spread: bool = True) -> beam.PCollection:
  """Lists of up to batch_size serialized records of the GZIP TFRecord files matching the patterns, each file
  read in C++ (record_batches) by one worker (ReadFileBatches)."""
  return pipeline | 'ReadFiles' >> ReadFileBatches(  # pylint: disable=no-value-for-parameter
      file_patterns, functools.partial(_record_lists, batch_size=batch_size), spread)


@beam.ptransform_fn
def ReadExampleRows(pipeline: beam.Pipeline, file_pattern: str) -> beam.PCollection:  # pylint: disable=invalid-name
  """Reads GZIP TFRecords of tf.Examples as dict rows (serialized_example_to_row)."""
  return (pipeline
          | 'Read' >> beam.io.ReadFromTFRecord(file_pattern)
          | 'ToRow' >> beam.Map(serialized_example_to_row))


@beam.ptransform_fn
def WriteExampleRows(rows: beam.PCollection, output_dir: str) -> beam.pvalue.PDone:  # pylint: disable=invalid-name
  """Writes dict rows as GZIP TFRecords of tf.Examples, as ExampleGen does."""
  return (rows
          | 'ToExamples' >> RowsToSerializedExamples()  # pylint: disable=no-value-for-parameter
          | 'Write' >> beam.io.WriteToTFRecord(os.path.join(output_dir, 'data_tfrecord'), file_name_suffix='.gz'))


GZIP_LEVEL = 1  # zlib level of the TFRecords we write: a third of level 6's CPU (100k raw CLV examples: 0.4
                # against 1.2 CPU-s) for files 36% larger; any GZIP reader reads either


class _WriteBundleFiles(beam.DoFn):
  """Writes each bundle's batches to one temporary file (a writer open_file(path) opens: write(batch), close())
  and outputs that file's path when the bundle is done."""

  def __init__(self, temporary_dir: str, open_file: Callable[[str], Any]):
    self._temporary_dir = temporary_dir
    self._open_file = open_file
    self._writer, self._path = None, ''

  def start_bundle(self):
    self._writer, self._path = None, ''

  def process(self, batch: Any):
    if self._writer is None:
      self._path = os.path.join(self._temporary_dir, uuid.uuid4().hex)
      self._writer = self._open_file(self._path)
    self._writer.write(batch)

  def finish_bundle(self):
    if self._writer is not None:
      self._writer.close()
      yield beam.transforms.window.GlobalWindows.windowed_value(self._path)
      self._writer = None


def _finalize_files(temporary: List[str], output_dir: str, temporary_dir: str, prefix: str, suffix: str,
                    write_empty: Callable[[str], None]) -> None:
  """Renames the committed bundles' files to <output_dir>/<prefix>-SSSSS-of-NNNNN<suffix> and removes the
  temporary folder (with the files of bundles that failed and were retried). No file at all: one empty file
  (write_empty), so a reader of the folder finds its (empty) split."""
  if not temporary:
    write_empty(os.path.join(output_dir, f'{prefix}-00000-of-00001{suffix}'))
  for index, path in enumerate(sorted(temporary)):
    tf.io.gfile.rename(path, os.path.join(output_dir, f'{prefix}-{index:05d}-of-{len(temporary):05d}{suffix}'),
                       overwrite=True)
  tf.io.gfile.rmtree(temporary_dir)


@beam.ptransform_fn
def WriteBundleFiles(batches: beam.PCollection, output_dir: str,  # pylint: disable=invalid-name
                     open_file: Callable[[str], Any], prefix: str, suffix: str,
                     write_empty: Callable[[str], None]) -> beam.pvalue.PDone:
  """Writes the batches in output_dir as <prefix>-SSSSS-of-NNNNN<suffix>, a file per bundle (open_file(path):
  a writer with write(batch) and close()). Files are written under a temporary name and renamed once every
  bundle is committed, so a retried bundle's file is never read."""
  temporary_dir = os.path.join(output_dir, '.temp-' + os.urandom(8).hex())
  tf.io.gfile.makedirs(temporary_dir)
  return (batches
          | 'WriteFiles' >> beam.ParDo(_WriteBundleFiles(temporary_dir, open_file))
          | 'AllFiles' >> beam.combiners.ToList()
          | 'Finalize' >> beam.Map(_finalize_files, output_dir, temporary_dir, prefix, suffix, write_empty))


class _TFRecordBatches:
  """A GZIP TFRecord file written a list of records at a time by TF's C++ writer."""

  def __init__(self, path: str):
    self._writer = tf.io.TFRecordWriter(path, tf.io.TFRecordOptions('GZIP', compression_level=GZIP_LEVEL))

  def write(self, records: Sequence[bytes]) -> None:
    for record in records:
      self._writer.write(record)

  def close(self) -> None:
    self._writer.close()


def _empty_tfrecord_file(path: str) -> None:
  with tf.io.TFRecordWriter(path, 'GZIP'):
    pass


@beam.ptransform_fn
def WriteExampleBatches(batches: beam.PCollection, output_dir: str) -> beam.pvalue.PDone:  # pylint: disable=invalid-name
  """Writes lists of serialized records as GZIP TFRecords in output_dir, named as WriteToTFRecord names them
  (data_tfrecord-SSSSS-of-NNNNN.gz), a file per bundle (WriteBundleFiles), with no Python step per record but
  the writer's call (WriteToTFRecord has several: framing, checksums, compression)."""
  return batches | 'WriteBundles' >> WriteBundleFiles(  # pylint: disable=no-value-for-parameter
      output_dir, _TFRecordBatches, 'data_tfrecord', '.gz', _empty_tfrecord_file)


def _merge_counts(pairs: Iterable[Any]) -> str:
  return json.dumps(dict(sorted(pairs)), sort_keys=True)


@beam.ptransform_fn
def WriteCounts(keyed_ones: beam.PCollection, output_dir: str) -> beam.pvalue.PDone:  # pylint: disable=invalid-name
  """Sums (name, n) pairs per name and writes them as one JSON object to <output_dir>/counts.json."""
  return (keyed_ones
          | 'SumPerName' >> beam.CombinePerKey(sum)
          | 'AllNames' >> beam.combiners.ToList()
          | 'ToJson' >> beam.Map(_merge_counts)
          | 'Write' >> beam.io.WriteToText(os.path.join(output_dir, COUNTS_FILE), num_shards=1,
                                           shard_name_template=''))


def write_counts_file(output_dir: str, counts: Mapping[str, int]) -> None:
  """Writes counts counted outside a WriteCounts transform (e.g. Beam counters) as WriteCounts does."""
  with tf.io.gfile.GFile(os.path.join(output_dir, COUNTS_FILE), 'w') as f:
    f.write(_merge_counts(counts.items()) + '\n')


def read_counts(output_dir: str) -> Dict[str, int]:
  """Reads the counts written by WriteCounts; missing file -> empty dict."""
  path = os.path.join(output_dir, COUNTS_FILE)
  if not tf.io.gfile.exists(path):
    return {}
  with tf.io.gfile.GFile(path) as f:
    text = f.read().strip()
  return json.loads(text) if text else {}


def counts_under(counts: Mapping[str, int], prefix: str) -> Dict[str, int]:
  """The `<prefix>/<name>` entries of a counts dict, keyed by name (e.g. prefix 'skipped' -> by reason)."""
  return {k.split('/', 1)[1]: v for k, v in counts.items() if k.startswith(prefix + '/')}


def load_function(dotted_path: str) -> Any:
  """Imports `package.module.function` and returns the function."""
  import importlib  # pylint: disable=g-import-not-at-top
  module_name, _, attr = dotted_path.rpartition('.')
  if not module_name:
    raise ValueError(f'Expected a dotted path module.function, got {dotted_path!r}')
  return getattr(importlib.import_module(module_name), attr)

