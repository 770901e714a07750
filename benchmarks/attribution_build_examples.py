"""Throughput of modules.attribution.build_examples (impressions -> padded journeys) in impressions per second.

Impressions come from the bundled simulator (pipelines/attribution/simulate.py) with as many users as it takes to
reach each size, written to a CSV file; the job reads it as text lines, turns each into a dict row (as
ExamplesBuilder hands rows to build_examples) and runs build_examples on the Beam DirectRunner; every output
(journeys per split, rejected rows) is counted, so all of it runs. The rows are read from a file, not given with
beam.Create: Create infers the type of every element and pickles them all into the job (about 0.1 ms a row,
more than build_examples itself). Wall and CPU seconds are printed: in_memory runs in this process, so on a
shared machine the CPU seconds compare the work done.

Run: TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/attribution_build_examples.py [--sizes 100000,1000000]
     [--beam-mode in_memory|multi_processing] [--workers N]
"""
import argparse
import csv
import os
import tempfile
import time
from typing import Dict, List

import apache_beam as beam
import numpy as np

from modules import attribution
from pipelines import csv_lines, runners
from pipelines.attribution import simulate

DAYS = 28
COLUMNS = ['uid', 'timestamp', 'campaign', 'conversion']


def impressions(size: int, seed: int) -> List[Dict[str, object]]:
  """`size` simulated impression rows (users scaled from the bundled data's impressions per user)."""
  names, rates, effects = zip(*simulate.CAMPAIGNS)
  per_user = sum(rates) * DAYS
  drawn, uniforms = simulate.draw(int(size / per_user) + 1, DAYS, rates, seed)
  _, converted_after = simulate.simulate(drawn, uniforms, effects, simulate.BASE_LOGIT, simulate.TAU_DAYS)
  order = np.argsort(drawn.time, kind='stable')[:size]
  return [{'uid': f'u{drawn.user[i]:07d}', 'timestamp': simulate.EPOCH + int(drawn.time[i]),
           'campaign': names[drawn.campaign[i]], 'conversion': int(converted_after[i])} for i in order]


def write_csv(rows: List[Dict[str, object]], path: str) -> None:
  """The rows as a CSV file with a header."""
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)


def run(path: str, beam_args: List[str]) -> Dict[str, int]:
  """build_examples over the file's rows; returns the output counts by split and rejected (Beam counters)."""
  pipeline = beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(beam_args))
  rows = (pipeline | beam.io.ReadFromText(path, skip_header_lines=1)
          | beam.Map(csv_lines.csv_line_to_row, COLUMNS, 'malformed_line'))
  built = attribution.build_examples(rows, {'journey_max_length': 10})
  for name, collection in dict(built.splits, rejected=built.rejected).items():
    counter = beam.metrics.Metrics.counter('benchmark', name)
    _ = collection | f'Count[{name}]' >> beam.Map(lambda _, c=counter: c.inc())
  result = pipeline.run()
  result.wait_until_finish()
  return {m.key.metric.name: m.committed for m in result.metrics().query()['counters']}


def main() -> None:
  """Prints impressions/s for each size."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='100000,1000000')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--beam-mode', default='in_memory', choices=runners.BEAM_MODES)
  parser.add_argument('--workers', type=int, default=0)
  args = parser.parse_args()
  for size in [int(s) for s in args.sizes.split(',')]:
    rows = impressions(size, args.seed)
    with tempfile.TemporaryDirectory() as directory:
      path = os.path.join(directory, 'impressions.csv')
      write_csv(rows, path)
      start, cpu = time.perf_counter(), time.process_time()
      counts = run(path, runners.direct_runner_args(args.beam_mode, args.workers))
      seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    journeys = sum(counts.get(s, 0) for s in ('train', 'eval', 'test'))
    print(f'{len(rows):>9,} impressions -> {journeys:,} journeys ({counts.get("converting", 0):,} converting, '
          f'{counts.get("rejected", 0):,} touches truncated) in {seconds:.1f} s: {len(rows) / seconds:,.0f} '
          f'impressions/s; {cpu:.1f} CPU s: {len(rows) / cpu:,.0f} impressions per CPU s ({args.beam_mode})',
          flush=True)


if __name__ == '__main__':
  main()
