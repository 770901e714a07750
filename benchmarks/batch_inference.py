"""Batch inference speed: rows/s of (a) the raw model called in one process in batches, (b) the pipeline's
scoring stage (the BatchScorer execution, or BulkInferrer + PredictionsExport with --scorers bulk_inferrer) and
(c) the whole pipeline, per input size, DirectRunner mode and scorer; and (r) reading the stage's input alone
(the ExamplesBuilder's GZIP TFRecords in batches, as BatchScorer reads them, nothing scored), the part of (b)
that (a) does not pay.

    python benchmarks/batch_inference.py [--rows 10000 100000 1000000] [--modes in_memory multi_processing]
        [--scorers batch_scorer bulk_inferrer] [--model PATH | --output runs] [--batch-size 1000]
        [--work /tmp/bi_bench]

The model is --model (a SavedModel or Trainer model folder), or the latest CLV model pushed under --output
(run `python -m pipelines run clv` first). Inputs are the generated CLV customers
(data/batch_inference/generate.py), written once per size under --work. Prints a table and the ratio (b)/(a).
"""
import argparse
import csv
import glob
import json
import os
import sys
import time
from typing import Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'data', 'batch_inference'))
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

import generate  # pylint: disable=g-import-not-at-top,wrong-import-position
from modules import batch_inference as bi  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.batch_inference import pipeline as pipeline_bi  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines import beam_io  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.batch_inference import batch_scorer  # pylint: disable=g-import-not-at-top,wrong-import-position


def raw_model_rows_per_second(model_dir: str, data: str, batch_size: int) -> float:
  """Rows/s of the SavedModel's serving signature in a TF1 session (as tfx-bsl's RunInference runs it) over
  the serialized examples of `data`, in batches of batch_size; parsing the CSV is not timed."""
  spec = bi.model_input_spec(model_dir)
  with open(data) as f:
    serialized = [beam_io.row_to_example(bi.check_row(row, 'customer_id', spec)[0]).SerializeToString()
                  for row in csv.DictReader(f)]
  graph = tf.compat.v1.Graph()
  with tf.compat.v1.Session(graph=graph) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ['serve'], model_dir)
    signature = meta.signature_def['serving_default']
    feed = next(iter(signature.inputs.values())).name
    fetches = {k: v.name for k, v in signature.outputs.items()}
    session.run(fetches, {feed: serialized[:batch_size]})  # warm up
    started = time.time()
    for start in range(0, len(serialized), batch_size):
      session.run(fetches, {feed: serialized[start:start + batch_size]})
    return len(serialized) / (time.time() - started)


def read_rows_per_second(files: List[str], batch_size: int) -> float:
  """Rows/s of reading GZIP TFRecord files in batches as BatchScorer reads them (batch_scorer.record_batches)."""
  started, rows = time.time(), 0
  for path in files:
    rows += sum(len(batch) for batch in batch_scorer.record_batches(path, batch_size))
  return rows / (time.time() - started)


SCORING_NODES = {'batch_scorer': ('BatchScorer',), 'bulk_inferrer': ('BulkInferrer', 'PredictionsExport')}


def pipeline_run(model: str, data: str, output: str, mode: str, scorer: str, batch_size: int) -> Dict[str, float]:
  """Runs batch_inference with caching defeated (a fresh output folder); returns its seconds."""
  args = ['run', 'batch_inference', '--model', model, '--data', data, '--output', output, '--set',
          'key_column=customer_id', '--set', f'beam_mode={mode}', '--set', f'scorer={scorer}', '--set',
          f'batch_size={batch_size}']
  if main(args) != 0:
    raise RuntimeError(f'batch_inference failed: {" ".join(args)}')
  with open(os.path.join(output, 'batch_inference', 'summary.json')) as f:
    summary = json.load(f)
  assert summary['data']['balanced'], summary['data']
  examples = glob.glob(os.path.join(output, 'batch_inference', 'root', 'ExamplesBuilder', 'examples', '*',
                                     'Split-score', '*'))
  return {'scoring': sum(summary['components'][node]['seconds'] for node in SCORING_NODES[scorer]),
          'pipeline': summary['wall_seconds'],
          'rows_out': summary['data']['rows_out'],
          'read': read_rows_per_second(examples, batch_size)}


def main_benchmark() -> None:
  """Parses flags, runs every size x mode, prints the table."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rows', type=int, nargs='+', default=[10_000, 100_000, 1_000_000])
  parser.add_argument('--modes', nargs='+', default=['in_memory', 'multi_processing'])
  parser.add_argument('--scorers', nargs='+', default=['batch_scorer'], choices=sorted(SCORING_NODES))
  parser.add_argument('--model', help='default: the latest CLV model pushed under --output')
  parser.add_argument('--output', default='runs')
  parser.add_argument('--batch-size', type=int, default=1000)
  parser.add_argument('--work', default='/tmp/batch_inference_benchmark')
  args = parser.parse_args()
  model = args.model
  if not model:
    found = pipeline_bi.latest_pushed_model(os.path.join(os.path.abspath(args.output), 'clv', 'metadata.sqlite'))
    if found is None:
      sys.exit(f'no pushed CLV model under {args.output}: run `python -m pipelines run clv` or pass --model')
    model = found['model']
  model_dir = os.path.join(pipeline_bi.model_artifact_dir(model, os.path.join(args.work, 'models')),
                           pipeline_bi.SERVING_DIR)
  lines: List[str] = ['| rows | mode | scorer | (a) raw model rows/s | (b) scoring stage rows/s | (b)/(a) | '
                      '(r) reading alone rows/s | (c) pipeline s | pipeline rows/s |',
                      '|---|---|---|---|---|---|---|---|---|']
  for rows in args.rows:
    data = os.path.join(args.work, f'customers-{rows}.csv')
    if not os.path.exists(data):
      generate.write_csv(data, rows, seed=42)
    raw = raw_model_rows_per_second(model_dir, data, args.batch_size)
    for mode in args.modes:
      for scorer in args.scorers:
        result = pipeline_run(model, data, os.path.join(args.work, f'run-{mode}-{scorer}-{rows}-{time.time():.0f}'),
                              mode, scorer, args.batch_size)
        scoring = rows / result['scoring']
        lines.append(f'| {rows} | {mode} | {scorer} | {raw:,.0f} | {scoring:,.0f} ({result["scoring"]:.1f} s) | '
                     f'{scoring / raw:.2f} | {result["read"]:,.0f} | {result["pipeline"]:.0f} | '
                     f'{rows / result["pipeline"]:,.0f} |')
        print(lines[-1], flush=True)
  print('\n'.join(lines))


if __name__ == '__main__':
  main_benchmark()
