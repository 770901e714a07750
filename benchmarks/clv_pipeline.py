"""Times the CLV pipeline on full CDNOW: a cold run and a second (cached) run, per component.

Usage: python benchmarks/clv_pipeline.py [--output DIR] [--set key=value ...]
Prints wall seconds, per-component seconds and cache hits, and the holdout metrics of each run.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from pipelines.__main__ import main as cli


def _run(output: str, settings: list) -> dict:
  started = time.time()
  code = cli(['run', 'clv', '--output', output] + [arg for s in settings for arg in ('--set', s)])
  if code:
    sys.exit(f'pipeline failed with exit code {code}')
  with open(os.path.join(output, 'clv', 'summary.json')) as f:
    summary = json.load(f)
  summary['measured_seconds'] = time.time() - started
  return summary


def _print(title: str, summary: dict) -> None:
  print(f'\n== {title}: {summary["measured_seconds"]:.1f} s wall (pipeline {summary["wall_seconds"]} s)')
  for node, info in summary['components'].items():
    print(f'  {node:32s} {info["seconds"]:8.2f} s  {"cached" if info["cached"] else ""}')
  for model, metrics in summary['metrics'].items():
    print(f'  {model:10s} MAE {metrics.get("mean_absolute_error", float("nan")):8.3f}  '
          f'RMSE {metrics.get("root_mean_squared_error", float("nan")):8.3f}  '
          f'normalized Gini {metrics.get("normalized_gini", float("nan")):6.3f}')


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output', help='output directory (default: a fresh temporary one, removed after)')
  parser.add_argument('--set', dest='settings', action='append', default=[])
  args = parser.parse_args()
  output = args.output or tempfile.mkdtemp(prefix='clv_bench_')
  try:
    _print('cold run', _run(output, args.settings))
    _print('second run, same inputs', _run(output, args.settings))
  finally:
    if not args.output:
      shutil.rmtree(output, ignore_errors=True)
