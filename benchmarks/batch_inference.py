"""Batch inference speed, side by side on the same file and model: the whole batch_inference pipeline
(`python -m pipelines run batch_inference`, caching defeated) against the plain script
(benchmarks/plain_batch_scoring.py: pandas reads, tfx_bsl encodes, the SavedModel scores batches of 1,000,
pandas writes), their ratio, the pipeline's seconds per component, and how far their predictions differ.
Wall seconds and this process's CPU seconds (both run in it: DirectRunner in_memory) are printed: on a shared
machine the CPU seconds compare the work done, the wall seconds also the waiting for a core.

    python benchmarks/batch_inference.py [--rows 100000 1000000] [--modes in_memory] [--model PATH | --output runs]
        [--batch-size 1000] [--work /tmp/bi_bench]

The model is --model (a Trainer model folder holding Format-Serving/), or the latest CLV model pushed under
--output (run `python -m pipelines run clv` first). Inputs are the generated CLV customers
(pipelines/batch_inference/generate.py), written once per size under --work.
"""
import argparse
import csv
import glob
import json
import os
import sys
import time
from typing import Dict, List

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from pipelines.batch_inference import generate  # pylint: disable=g-import-not-at-top,wrong-import-position
import plain_batch_scoring  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.batch_inference import pipeline as pipeline_bi  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top,wrong-import-position

KEY = 'customer_id'


def pipeline_run(model: str, data: str, output: str, mode: str, batch_size: int) -> Dict[str, object]:
  """Runs batch_inference into a fresh output folder (no cache); returns its summary.json."""
  args = ['run', 'batch_inference', '--model', model, '--data', data, '--output', output, '--set',
          f'key_column={KEY}', '--set', f'beam_mode={mode}', '--set', f'batch_size={batch_size}']
  if main(args) != 0:
    raise RuntimeError(f'batch_inference failed: {" ".join(args)}')
  with open(os.path.join(output, 'batch_inference', 'summary.json')) as f:
    summary = json.load(f)
  assert summary['data']['balanced'], summary['data']
  return summary


def _predictions(pattern: str, column: str) -> Dict[str, float]:
  values: Dict[str, float] = {}
  for path in sorted(glob.glob(pattern)):
    with open(path) as f:
      values.update((row[KEY], float(row[column])) for row in csv.DictReader(f))
  return values


def main_benchmark() -> None:
  """Parses flags, runs the plain script and the pipeline for every size and mode, prints the table."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rows', type=int, nargs='+', default=[100_000, 1_000_000])
  parser.add_argument('--modes', nargs='+', default=['in_memory'])
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
  lines: List[str] = ['| rows | mode | plain script s (CPU s) | pipeline s (CPU s) | ratio wall (CPU) | '
                      'pipeline s per component | max abs prediction difference |', '|---|---|---|---|---|---|---|']
  for rows in args.rows:
    data = os.path.join(args.work, f'customers-{rows}.csv')
    if not os.path.exists(data):
      generate.write_csv(data, rows, seed=42)
    plain_out = os.path.join(args.work, f'plain-{rows}.csv')
    cpu = time.process_time()
    plain = plain_batch_scoring.score(model_dir, data, plain_out, KEY, args.batch_size)
    plain_cpu = time.process_time() - cpu
    for mode in args.modes:
      output = os.path.join(args.work, f'run-{mode}-{rows}-{time.time():.0f}')
      cpu = time.process_time()
      summary = pipeline_run(model, data, output, mode, args.batch_size)
      pipeline_cpu = time.process_time() - cpu
      components = ', '.join(f'{name} {info["seconds"]:.0f}' for name, info in summary['components'].items()
                             if info.get('seconds'))
      mine = _predictions(os.path.join(output, 'batch_inference', 'predictions*.csv'), 'predicted_value')
      theirs = _predictions(plain_out, 'predicted_value')
      diff = max(abs(mine[k] - theirs[k]) for k in theirs) if mine.keys() == theirs.keys() else float('nan')
      wall = summary['wall_seconds']
      lines.append(f'| {rows:,} | {mode} | {plain["total"]:.1f} ({plain_cpu:.1f}; read {plain["read"]:.1f}, encode '
                   f'{plain["encode"]:.1f}, score {plain["score"]:.1f}, write {plain["write"]:.1f}) | '
                   f'{wall:.1f} ({pipeline_cpu:.1f}) | {wall / plain["total"]:.1f}x ({pipeline_cpu / plain_cpu:.1f}x) | '
                   f'{components} | {diff:.1e} |')
      print(lines[-1], flush=True)
  print('\n'.join(lines))


if __name__ == '__main__':
  main_benchmark()
