"""Ingestion + build_examples speed for the sales forecast use case at 100k and 1M generated invoice lines.

  python benchmarks/sales_forecast_ingestion.py [--sizes 100000,1000000]

For each size, generates invoice lines with pipelines/sales_forecast/generate.py (demand scaled to reach the
size, malformed rows included), then times one Beam DirectRunner pipeline that reads the CSV as text lines
(pipelines.sales_forecast.line_to_row, as CsvLinesExampleGen does) and runs modules.sales_forecast.build_examples,
counting the examples per split and the rejected rows. Prints rows/s per size; linear scaling means a
similar rows/s at both sizes.
"""
import argparse
import datetime
import os
import tempfile
import time
from typing import Tuple

import apache_beam as beam

from modules import sales_forecast as sf
from pipelines.sales_forecast import generate
from pipelines.sales_forecast.pipeline import line_to_row


def make_file(rows: int, directory: str) -> str:
  """A CSV of about `rows` invoice lines (300 items, 2021-2023; 108k rows at scale 0.35)."""
  path = os.path.join(directory, f'sales_{rows}.csv')
  lines = generate.generate(7, n_items=300, n_stores=40, start=datetime.date(2021, 1, 1),
                              end=datetime.date(2023, 12, 31), scale=0.35 * rows / 108_000)
  generate.write(path, lines)
  return path


def time_build(path: str) -> Tuple[float, float]:
  """(wall s, CPU s of this process) of read-as-text + build_examples (every split and the rejected rows) on the
  DirectRunner in_memory (it runs in this process, so the CPU seconds are the whole job's)."""
  with open(path) as f:
    header = f.readline().strip().split(',')
  started, cpu = time.time(), time.process_time()
  with beam.Pipeline() as pipeline:
    rows = pipeline | beam.io.ReadFromText(path, skip_header_lines=1) | beam.Map(line_to_row, header)
    _ = sf.build_examples(rows, {'eval_months': 3})
  return time.time() - started, time.process_time() - cpu


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='100000,1000000')
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as directory:
    for size in [int(s) for s in args.sizes.split(',')]:
      path = make_file(size, directory)
      with open(path) as f:
        rows = sum(1 for _ in f) - 1
      seconds, cpu = time_build(path)
      print(f'{rows:>9} invoice lines: {seconds:7.1f} s, {rows / seconds:8.0f} rows/s; '
            f'{cpu:7.1f} CPU s, {rows / cpu:8.0f} rows per CPU s', flush=True)


if __name__ == '__main__':
  main()
