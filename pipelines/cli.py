"""CLI: python -m pipelines {list,run,compile,backtest} ...

  python -m pipelines list
  python -m pipelines run USE_CASE [--data PATH|gs://...|bq://project.dataset.table] [--output DIR]
      [--runner local|dataflow|vertex] [--project P --region R --temp-location gs://... --image IMAGE]
      [--set key=value ...]
  python -m pipelines compile USE_CASE --runner vertex --output SPEC.json [--image IMAGE] [--data ...] [...]
  python -m pipelines run batch_inference [--model PATH | --from USE_CASE] [--rows N] [--data FILES|bq://...]
  python -m pipelines backtest clv --cut DATE [--horizon DAYS] [--data CSV] [--output DIR] [--set key=value ...]

A run prints one line per component as it starts and ends, then its status and the report's path; the full log
is runs/<use case>/logs/run.log (--verbose prints it instead). User errors (unknown use case, missing data, bad
setting, invalid BigQuery identifier, missing cloud flags or credentials) print one line on stderr and exit 2. A
failed run prints the failing reason on stderr, writes summary.json with status 'failed' and exits 1.
"""
import argparse
import contextlib
import os
import sys
import time
from typing import List, Optional

from absl import logging

from pipelines import bigquery, progress, registry

EXIT_USAGE = 2
EXIT_FAILED = 1
DEFAULT_REGION = 'us-central1'


def _add_pipeline_arguments(parser: argparse.ArgumentParser, runners: List[str], output_help: str,
                            output_default: Optional[str]) -> None:
  parser.add_argument('use_case')
  parser.add_argument('--data', help='input: a CSV file (local or gs://) or bq://project.dataset.table '
                      '(default for local runs: the bundled data of the use case)')
  parser.add_argument('--output', default=output_default, required=output_default is None, help=output_help)
  parser.add_argument('--runner', default=runners[0], choices=runners, help=f'default: {runners[0]}')
  parser.add_argument('--set', dest='settings', action='append', default=[], metavar='KEY=VALUE',
                      help='override a setting; see `list`')
  parser.add_argument('--verbose', action='store_true',
                      help='print the full TFX/Beam/TensorFlow log (default: to runs/<use case>/logs/run.log)')
  scoring = parser.add_argument_group('batch_inference')
  scoring.add_argument('--model', help='a SavedModel whose serving signature takes serialized tf.Examples '
                       '(a pushed model folder or a Trainer model artifact)')
  scoring.add_argument('--from', dest='from_use_case', metavar='USE_CASE',
                       help="score the latest model USE_CASE pushed (found in --output's ML Metadata)")
  scoring.add_argument('--rows', type=int, help='rows of the generated default input (default 200000)')
  cloud = parser.add_argument_group('Google Cloud (dataflow, vertex and bq:// input)')
  cloud.add_argument('--project', default=os.environ.get('GOOGLE_CLOUD_PROJECT'),
                     help='project id (default: $GOOGLE_CLOUD_PROJECT)')
  cloud.add_argument('--region', default=os.environ.get('GOOGLE_CLOUD_REGION', DEFAULT_REGION),
                     help=f'region (default: $GOOGLE_CLOUD_REGION or {DEFAULT_REGION})')
  cloud.add_argument('--temp-location', help='gs:// folder for temporary files')
  cloud.add_argument('--pipeline-root', help='gs:// folder for artifacts (default: gs://<temp bucket>/tfx/<use case>)')
  cloud.add_argument('--image', help='container image built from the Dockerfile (default: '
                     '<region>-docker.pkg.dev/<project>/marketing-ml/tfx:latest)')
  cloud.add_argument('--service-account', default='', help='service account for Vertex steps and Dataflow workers')


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog='python -m pipelines', description=__doc__.splitlines()[0])
  commands = parser.add_subparsers(dest='command', required=True)
  commands.add_parser('list', help='list the use cases and their settings')
  _add_pipeline_arguments(commands.add_parser('run', help='run a use case pipeline'), ['local', 'dataflow', 'vertex'],
                          'output directory (default: runs/)', 'runs')
  _add_pipeline_arguments(commands.add_parser('compile', help='compile a pipeline for Vertex AI Pipelines'),
                          ['vertex'], 'the pipeline spec file to write (.json or .yaml)', None)
  backtest = commands.add_parser('backtest', help='clv: run as of a cut date, compare with the actual future')
  backtest.add_argument('use_case', choices=[name for name, use_case in registry.USE_CASES.items() if use_case.backtest])
  backtest.add_argument('--cut', required=True, help='YYYY-MM-DD: train and score as of this date')
  backtest.add_argument('--horizon', type=int, default=120, help='days of the label and the future (default 120)')
  backtest.add_argument('--data', help='a local CSV (default: the bundled data)')
  backtest.add_argument('--output', default='runs', help='output directory (default: runs/)')
  backtest.add_argument('--set', dest='settings', action='append', default=[], metavar='KEY=VALUE')
  backtest.add_argument('--verbose', action='store_true', help='print the full log')
  return parser


def _list(console: progress.Console) -> int:
  for use_case in registry.USE_CASES.values():
    print(f'{use_case.name}: {use_case.description}', file=console.out)
    print(f'  data: {os.path.relpath(use_case.default_data)} (columns: {", ".join(use_case.required_columns)})',
          file=console.out)
    for key, value in use_case.all_settings.items():
      print(f'  --set {key}={value}', file=console.out)
  return 0


def _cloud_config(args: argparse.Namespace, use_case_name: str):
  """The CloudConfig from the flags, or UsageError naming what is missing."""
  from pipelines import runners  # pylint: disable=g-import-not-at-top
  needs = f'--runner {args.runner}' if args.runner != 'local' else 'bq:// input'
  if not args.project:
    raise registry.UsageError(f'{needs} needs --project (or GOOGLE_CLOUD_PROJECT)')
  if not (args.temp_location or '').startswith('gs://'):
    raise registry.UsageError(f'{needs} needs --temp-location gs://BUCKET/PATH (got {args.temp_location!r})')
  bucket = args.temp_location[len('gs://'):].split('/')[0]
  pipeline_root = args.pipeline_root or f'gs://{bucket}/tfx/{use_case_name}'
  if args.runner != 'local' and not pipeline_root.startswith('gs://'):
    raise registry.UsageError(f'--pipeline-root must be a gs:// folder for --runner {args.runner}')
  return runners.CloudConfig(
      project=args.project, region=args.region, temp_location=args.temp_location, pipeline_root=pipeline_root,
      image=args.image or f'{args.region}-docker.pkg.dev/{args.project}/marketing-ml/tfx:latest',
      service_account=args.service_account)


def _beam_args(runner: str, settings, cloud, bigquery_input: bool) -> List[str]:
  from pipelines import runners  # pylint: disable=g-import-not-at-top
  if runner == 'dataflow' or (runner == 'vertex' and settings['vertex_beam'] == 'dataflow'):
    return runners.dataflow_args(cloud, settings)
  direct = runners.direct_runner_args(settings['beam_mode'], settings['beam_workers'])
  return direct + (runners.bigquery_direct_args(cloud) if bigquery_input else [])


def _check_credentials() -> None:
  from pipelines import runners  # pylint: disable=g-import-not-at-top
  problem = runners.google_credentials_problem()
  if problem:
    raise registry.UsageError(problem)


def _pipeline(args: argparse.Namespace, console: progress.Console):
  """(use case, settings, data URI, cloud config or None, output dir, pipeline) for run and compile."""
  from pipelines import runners  # pylint: disable=g-import-not-at-top
  use_case = registry.get(args.use_case)
  settings = registry.resolve_settings(use_case, args.settings)
  if use_case.prepare is None and (args.model or args.from_use_case or args.rows is not None):
    raise registry.UsageError(f'--model, --from and --rows are for batch_inference, not {use_case.name}')
  bigquery_input = bool(args.data) and bigquery.is_bigquery_uri(args.data)
  if args.runner != 'local' and not args.data:
    raise registry.UsageError(f'--runner {args.runner} needs --data gs://.../file.csv or bq://project.dataset.table')
  data_uri = args.data or use_case.default_data
  if use_case.prepare is not None:
    try:
      data_uri, settings = use_case.prepare(args, settings, lambda name: _run_first(name, args.output, console),
                                            lambda name: registry.get(name).required_columns)
    except ValueError as e:
      raise registry.UsageError(str(e).splitlines()[0]) from None
  elif '://' not in data_uri:
    if args.runner != 'local':
      raise registry.UsageError(f'--runner {args.runner} cannot read the local file {data_uri}: copy it to gs:// '
                                'or load it into BigQuery and pass that as --data')
    data_uri = os.path.abspath(data_uri)
    registry.check_csv_header(data_uri, use_case.required_columns)
  cloud = _cloud_config(args, use_case.name) if args.runner != 'local' or bigquery_input else None

  output_dir = os.path.abspath(os.path.join(args.output, use_case.name)) if args.command == 'run' else None
  metadata = None
  if args.runner == 'local' or args.runner == 'dataflow':
    metadata = runners.sqlite_metadata(os.path.join(output_dir, 'metadata.sqlite'))
  pipeline_root = cloud.pipeline_root if args.runner != 'local' else os.path.join(output_dir, 'root')
  try:
    pipeline = use_case.create_pipeline(
        # Vertex pipeline names allow only [a-z0-9-]
        pipeline_name=use_case.name.replace('_', '-') if args.runner == 'vertex' else use_case.name,
        pipeline_root=pipeline_root, data_uri=data_uri,
        serving_dir=os.path.join(pipeline_root if args.runner != 'local' else output_dir, 'serving_model'),
        settings=settings, beam_pipeline_args=_beam_args(args.runner, settings, cloud, bigquery_input),
        metadata_connection_config=metadata)
  except bigquery.InvalidIdentifier as e:
    raise registry.UsageError(str(e)) from None
  return use_case, settings, data_uri, cloud, output_dir, pipeline


def _run_first(use_case_name: str, output: str, console: progress.Console) -> None:
  """Runs another use case's pipeline into the same --output (batch_inference's default model), or UsageError."""
  print(f'no pushed {use_case_name} model under {output}: running the {use_case_name} pipeline first',
        file=console.err)
  with progress.capture(console.verbose) as inner:
    code = main(['run', use_case_name, '--output', output] + (['--verbose'] if console.verbose else []), inner)
  if code != 0:
    raise registry.UsageError(f'the {use_case_name} pipeline run that batch_inference needs failed')


def _compile(args: argparse.Namespace, console: progress.Console) -> int:
  from pipelines import runners  # pylint: disable=g-import-not-at-top
  _, _, _, cloud, _, pipeline = _pipeline(args, console)
  spec = runners.compile_vertex(pipeline, cloud.image, args.output)
  print(f'{args.use_case}: Vertex AI pipeline spec written to {spec} (image {cloud.image}, '
        f'root {cloud.pipeline_root})', file=console.out)
  return 0


def _run(args: argparse.Namespace, console: progress.Console) -> int:
  from pipelines import report, runners  # pylint: disable=g-import-not-at-top
  use_case, settings, data_uri, cloud, output_dir, pipeline = _pipeline(args, console)
  console.attach_log(os.path.join(output_dir, 'logs', 'run.log'))
  if cloud is not None:
    _check_credentials()
    if data_uri.startswith('gs://') and use_case.prepare is None:
      registry.check_csv_header(data_uri, use_case.required_columns)

  if args.runner == 'vertex':
    spec = runners.compile_vertex(pipeline, cloud.image, os.path.join(output_dir, f'{use_case.name}_pipeline.json'))
    job = runners.submit_vertex(spec, cloud, display_name=use_case.name)
    report.write_submitted(use_case, output_dir, data_uri, settings, spec, job)
    print(f'{use_case.name}: submitted to Vertex AI Pipelines as {job}; spec {spec}', file=console.out)
    return 0

  logging.info('Running %s on %s with %s (runner %s)', use_case.name, data_uri, settings, args.runner)
  print(f'{use_case.name}: running {len(pipeline.components)} components on {data_uri}; log: {console.log_path}',
        file=console.out)
  started = time.time()
  error = None
  try:
    with console.components(len(pipeline.components)):
      runners.run_local(pipeline)
  except Exception as e:  # pylint: disable=broad-except
    error = f'{type(e).__name__}: {e}'
    logging.exception('Pipeline %s failed', use_case.name)
  metadata_path = os.path.join(output_dir, 'metadata.sqlite')
  summary = report.write(use_case, output_dir, metadata_path, runner=args.runner, data_path=data_uri,
                         settings=settings, wall_seconds=time.time() - started, error=error)
  if error:
    print(f'{use_case.name} failed: {error.splitlines()[0]} (details in {console.log_path or "the log above"}; '
          f'summary in {os.path.join(output_dir, "summary.json")})', file=console.err)
    return EXIT_FAILED
  champion = (summary.get('champion') or {}).get('winner')
  print(f'{use_case.name}: {summary["status"]} in {summary["wall_seconds"]:.0f}s'
        + (f'; champion: {champion}' if champion else '')
        + f'; report: {os.path.join(output_dir, "report.md")}', file=console.out)
  return 0


def _backtest(args: argparse.Namespace, console: progress.Console) -> int:
  use_case = registry.get(args.use_case)
  data = args.data or use_case.default_data
  registry.check_csv_header(data, use_case.required_columns)
  try:
    return use_case.backtest(data, args.cut, args.horizon, args.output, args.settings,
                             lambda argv: main(argv + (['--verbose'] if console.verbose else []), console), console.out)
  except ValueError as e:  # a bad --cut, or a cut the data cannot check
    raise registry.UsageError(str(e).splitlines()[0]) from None


def main(argv: List[str], console: progress.Console) -> int:
  """Runs the command in `argv`, printing to `console` (pipelines.progress); returns the exit code."""
  try:  # argparse's usage and help messages go to the terminal, not the log
    with contextlib.redirect_stdout(console.out), contextlib.redirect_stderr(console.err):
      args = _parser().parse_args(argv)
  except SystemExit as e:
    return int(e.code or 0)
  logging.set_verbosity(logging.INFO)
  try:
    return {'list': lambda _, c: _list(c), 'run': _run, 'compile': _compile,
            'backtest': _backtest}[args.command](args, console)
  except registry.UsageError as e:
    print(f'error: {e}', file=console.err)
    return EXIT_USAGE
