"""Raw rows as Arrow RecordBatches in Parquet files: an ExampleGen payload (TFX's FORMAT_PARQUET) that the
ExamplesBuilder reads column by column, so rows go from the CSV reader to the model's tf.Examples without being
encoded as tf.Examples, compressed, read back and parsed on the way (the CPU seconds each costs:
benchmarks/RESULTS.md, batch_inference ingestion).

A batch has one nullable value per row and column. A row the reader could not read (pipelines.csv_lines) has
its reason and original line in two columns of the reader's (csv_lines.REJECTED_REASON and REJECTED_LINE) and
no other value.
"""
import functools
import io
import os
from typing import Any, Dict, Iterator, List, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import fs as pa_fs
import pyarrow.parquet as pq
import tensorflow as tf

from pipelines import beam_io

Row = Dict[str, Any]
FILE_PREFIX = 'data_parquet'
FILE_FORMAT = 'parquet'  # the Examples artifact's file_format property (TFX's write_split names no Parquet one)


def batch_rows(batch: pa.RecordBatch) -> List[Row]:
  """The rows of a batch as dicts, as beam_io.serialized_example_to_row gives the same rows' tf.Examples: null
  values left out, bytes decoded as UTF-8 (U+FFFD for an invalid byte)."""
  rows = []
  for row in batch.to_pylist():
    rows.append({name: value.decode('utf-8', errors='replace') if isinstance(value, bytes) else value
                 for name, value in row.items() if value is not None})
  return rows


def split_unreadable(batch: pa.RecordBatch, reason_column: str, line_column: str) -> Iterator[Any]:
  """The batch's readable rows (no reason) without the two columns, and each row the reader could not read
  tagged 'unreadable' as {'reason', 'record': its original line}."""
  names = batch.schema.names
  if reason_column not in names:
    yield batch
    return
  reasons = batch.column(names.index(reason_column))
  kept = [name for name in names if name not in (reason_column, line_column)]
  readable = pc.is_null(reasons)
  if readable.false_count:
    lines = batch.column(names.index(line_column))
    unreadable = pc.invert(readable)
    for reason, line in zip(reasons.filter(unreadable).to_pylist(), lines.filter(unreadable).to_pylist()):
      yield beam.pvalue.TaggedOutput('unreadable', {'reason': reason, 'record': line or ''})
    batch = batch.filter(readable)
  if batch.num_rows:
    yield pa.RecordBatch.from_arrays([batch.column(names.index(name)) for name in kept], kept)


class GFileStream(io.RawIOBase):
  """A tf.io.gfile file (gs:// and any other scheme TensorFlow reads) as the binary stream pyarrow takes: the
  project's one way to cloud storage, where Arrow's own GCS file system is experimental in pyarrow 10."""

  def __init__(self, path: str, mode: str):
    super().__init__()
    self._file = tf.io.gfile.GFile(path, mode)
    self._writing = 'w' in mode

  def readable(self) -> bool:
    return not self._writing

  def writable(self) -> bool:
    return self._writing

  def seekable(self) -> bool:
    return not self._writing

  def readinto(self, buffer) -> int:
    data = self._file.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)

  def write(self, data) -> int:
    self._file.write(bytes(data))
    return len(data)

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    self._file.seek(offset, whence)
    return self._file.tell()

  def tell(self) -> int:
    return self._file.tell()

  def close(self) -> None:
    if not self.closed:
      self._file.close()
    super().close()


def _open(path: str, mode: str) -> Any:
  """A local file through Arrow's own file system (C++ I/O), any other path through GFileStream."""
  if '://' in path:
    return GFileStream(path, mode)
  local = pa_fs.LocalFileSystem()
  return local.open_input_file(path) if mode == 'rb' else local.open_output_stream(os.path.abspath(path))


def file_batches(path: str, batch_size: int) -> Iterator[pa.RecordBatch]:
  """The RecordBatches of one Parquet file (a local path or a URI), up to batch_size rows each."""
  with _open(path, 'rb') as f:
    yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, use_threads=False)


@beam.ptransform_fn
def ReadRecordBatches(pipeline: beam.Pipeline, file_patterns: Sequence[str],  # pylint: disable=invalid-name
                      batch_size: int, spread: bool = True) -> beam.PCollection:
  """RecordBatches of up to batch_size rows of the Parquet files matching the patterns, each file read by one
  worker (beam_io.ReadFileBatches)."""
  return pipeline | 'ReadFiles' >> beam_io.ReadFileBatches(  # pylint: disable=no-value-for-parameter
      file_patterns, functools.partial(file_batches, batch_size=batch_size), spread)


class _ParquetBatches:
  """A Parquet file of `schema` written a RecordBatch at a time."""

  def __init__(self, path: str, schema: pa.Schema):
    self._file = _open(path, 'wb')
    self._writer = pq.ParquetWriter(self._file, schema, compression='snappy')

  def write(self, batch: pa.RecordBatch) -> None:
    self._writer.write_batch(batch)

  def close(self) -> None:
    self._writer.close()
    self._file.close()


def _empty_parquet_file(path: str, schema: pa.Schema) -> None:
  with _open(path, 'wb') as f:
    pq.write_table(schema.empty_table(), f)


@beam.ptransform_fn
def WriteRecordBatches(batches: beam.PCollection, output_dir: str,  # pylint: disable=invalid-name
                       schema: pa.Schema) -> beam.pvalue.PDone:
  """Writes RecordBatches of `schema` as Parquet files in output_dir (data_parquet-SSSSS-of-NNNNN.parquet), a
  file per bundle (beam_io.WriteBundleFiles); no batch at all gives one file of no rows."""
  return batches | 'WriteBundles' >> beam_io.WriteBundleFiles(  # pylint: disable=no-value-for-parameter
      output_dir, functools.partial(_ParquetBatches, schema=schema), FILE_PREFIX, '.parquet',
      functools.partial(_empty_parquet_file, schema=schema))
