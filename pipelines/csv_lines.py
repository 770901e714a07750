"""CSV files read as text lines (local or gs://, gzipped when the name ends in .gz), never failing on a bad line.

CsvExampleGen fails a whole run on one line with a wrong field count; here such a line becomes a row holding
only the line, under the use case's malformed-line key, for its ExamplesBuilder to reject with its reason and
count like every other bad row. Values stay strings. Quoted fields with line breaks are not supported.
"""
import csv
import gzip
from typing import Callable, Collection, Dict, List, Optional, Sequence

import apache_beam as beam
import tensorflow as tf


def first_line(path: str) -> str:
  """The first line of a text file (local or any tf.io.gfile path), gunzipped when its name ends in .gz, as
  Beam's ReadFromText reads it."""
  with tf.io.gfile.GFile(path, 'rb') as raw:
    stream = gzip.GzipFile(fileobj=raw) if path.endswith('.gz') else raw
    return stream.readline().decode('utf-8').strip()


def csv_header(path: str) -> List[str]:
  """The column names on a CSV file's first line, stripped."""
  return [name.strip() for name in next(csv.reader([first_line(path)]))]


def csv_line_to_row(line: str, header: Sequence[str], malformed_key: str,
                    keep: Optional[Collection[str]] = None) -> Dict[str, str]:
  """One CSV line as {column: string} (only the columns in `keep`, when given), or {malformed_key: line} when it
  does not parse into the header's fields (a wrong field count, a NUL byte)."""
  try:
    fields = next(csv.reader([line])) if line else []
  except csv.Error:
    fields = []
  if len(fields) != len(header):
    return {malformed_key: line}
  return {name: value for name, value in zip(header, fields) if keep is None or name in keep}


LineToRow = Callable[[str, List[str]], Dict[str, str]]  # (line, header) -> row: csv_line_to_row, bound


@beam.ptransform_fn
def ReadCsvRows(pipeline: beam.Pipeline, pattern: str, line_to_row: LineToRow,  # pylint: disable=invalid-name
                required: Sequence[str] = ()) -> beam.PCollection:
  """line_to_row(line, header) of every line after the header of every file matching `pattern`.

  Raises ValueError when no file matches, a file lacks a `required` column, or the files' headers differ."""
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise ValueError(f'no file matches {pattern}')
  headers = {path: csv_header(path) for path in files}
  for path, names in headers.items():
    missing = [name for name in required if name not in names]
    if missing:
      raise ValueError(f'{path} lacks column(s) {", ".join(missing)}; its header is {", ".join(names)}')
  header = headers[files[0]]
  if any(names != header for names in headers.values()):
    raise ValueError(f'the files matching {pattern} have different headers')
  return (pipeline
          | 'ReadLines' >> beam.io.ReadFromText(pattern, skip_header_lines=1)
          | 'LineToRow' >> beam.Map(line_to_row, header))
