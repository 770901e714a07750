"""CLI: python -m pipelines {list,run} ...

  python -m pipelines list
  python -m pipelines run clv [--data PATH] [--output DIR] [--runner local] [--set key=value ...]

User errors (unknown use case, missing data, bad setting) print one line on stderr and exit 2.
A failed run prints the failing reason on stderr, writes summary.json with status 'failed' and exits 1.
"""
import argparse
import os
import sys
import time
from typing import List, Optional

from absl import logging

from pipelines import registry

EXIT_USAGE = 2
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m pipelines', description=__doc__.splitlines()[0])
  commands = parser.add_subparsers(dest='command', required=True)
  commands.add_parser('list', help='list the use cases and their settings')
  run = commands.add_parser('run', help='run a use case pipeline')
  run.add_argument('use_case')
  run.add_argument('--data', help='input file (default: the bundled data of the use case)')
  run.add_argument('--output', default='runs', help='output directory (default: runs/)')
  run.add_argument('--runner', default='local', choices=['local'], help='where to run (default: local)')
  run.add_argument('--set', dest='settings', action='append', default=[], metavar='KEY=VALUE',
                   help='override a setting; see `list`')
  return parser


def _list() -> int:
  for use_case in registry.USE_CASES.values():
    print(f'{use_case.name}: {use_case.description}')
    print(f'  data: {os.path.relpath(use_case.default_data)} (columns: {", ".join(use_case.required_columns)})')
    for key, value in use_case.settings.items():
      print(f'  --set {key}={value}')
  return 0


def _run(args: argparse.Namespace) -> int:
  # Imported here so `list` and usage errors answer without loading TensorFlow.
  from pipelines import report, runners  # pylint: disable=g-import-not-at-top

  use_case = registry.get(args.use_case)
  settings = registry.resolve_settings(use_case, args.settings)
  data_path = os.path.abspath(args.data or use_case.default_data)
  registry.check_csv_header(data_path, use_case.required_columns)

  output_dir = os.path.abspath(os.path.join(args.output, use_case.name))
  metadata_path = os.path.join(output_dir, 'metadata.sqlite')
  pipeline = use_case.create_pipeline(
      pipeline_name=use_case.name, pipeline_root=os.path.join(output_dir, 'root'), data_path=data_path,
      serving_dir=os.path.join(output_dir, 'serving_model'), settings=settings,
      beam_pipeline_args=runners.direct_runner_args(settings['beam_mode'], settings['beam_workers']),
      metadata_connection_config=runners.sqlite_metadata(metadata_path))
  logging.info('Running %s on %s with %s', use_case.name, data_path, settings)

  started = time.time()
  error = None
  try:
    runners.run_local(pipeline)
  except Exception as e:  # pylint: disable=broad-except
    error = f'{type(e).__name__}: {e}'
    logging.exception('Pipeline %s failed', use_case.name)
  summary = report.write(use_case, output_dir, metadata_path, runner=args.runner, data_path=data_path,
                         settings=settings, wall_seconds=time.time() - started, error=error)
  if error:
    print(f'{use_case.name} failed: {error.splitlines()[0]} (details above; summary in '
          f'{os.path.join(output_dir, "summary.json")})', file=sys.stderr)
    return EXIT_FAILED
  print(f'{use_case.name}: {summary["status"]} in {summary["wall_seconds"]:.0f}s; report: '
        f'{os.path.join(output_dir, "report.md")}')
  return 0


def main(argv: Optional[List[str]] = None) -> int:
  """Entry point; returns the exit code."""
  args = _parser().parse_args(argv)
  logging.set_verbosity(logging.INFO)
  try:
    return _list() if args.command == 'list' else _run(args)
  except registry.UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE


if __name__ == '__main__':
  sys.exit(main())
