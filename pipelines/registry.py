"""Use-case registry: name -> create_pipeline, default data, required input columns, settings."""
import csv
import dataclasses
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from pipelines.attribution import pipeline as attribution
from pipelines.batch_inference import pipeline as batch_inference
from pipelines.clv import backtest as clv_backtest
from pipelines.clv import pipeline as clv
from pipelines.recommender import pipeline as recommender
from pipelines.sales_forecast import pipeline as sales_forecast

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UsageError(ValueError):
  """A user error (unknown use case, bad setting, missing or malformed data): one line, exit code 2."""


# Settings of every use case: where Beam runs and how a cloud run reads and scales.
COMMON_SETTINGS: Dict[str, Any] = {
    'beam_mode': 'in_memory',           # DirectRunner: 'in_memory' or 'multi_processing'
    'beam_workers': 0,                  # DirectRunner workers; 0 = one per core
    'bq_column_map': '',                # bq:// input: 'our_column:their_column,...' where the names differ
    'encoding': 'utf-8',                # of CSV input: utf-8 (a byte-order mark allowed), cp1252, latin-1, ...
    'dataflow_machine_type': 'n1-standard-4',
    'dataflow_max_workers': 10,
    'dataflow_disk_size_gb': 50,
    'dataflow_worker_image': '',        # default: --image (the project's container image)
    'dataflow_setup_file': '',          # instead of an image: a setup.py Dataflow installs on each worker
    'vertex_beam': 'dataflow',          # on Vertex, Beam runs on 'dataflow' or 'direct' in the step's container
}
COMMON_SETTING_CHOICES = {'beam_mode': ('in_memory', 'multi_processing'), 'vertex_beam': ('dataflow', 'direct')}


@dataclasses.dataclass(frozen=True)
class UseCase:
  """Everything the CLI and the report need to know about one use case."""
  name: str
  description: str
  create_pipeline: Callable[..., Any]
  default_data: str
  required_columns: Sequence[str]
  settings: Mapping[str, Any]
  setting_choices: Mapping[str, Tuple[str, ...]]
  # summary.json metrics name -> (TFMA model name, output name, metric-key prefix) in the Evaluator's result.
  reported_models: Mapping[str, Tuple[str, str, str]]
  # (settings, artifact(node_id, output_key), predictions csv, output dir) -> report.ReportExtras: extra
  # outputs {name: path} (PNG plots are shown in report.md), metrics per model and data counts
  report_extras: Optional[Callable[..., Any]] = None
  # (CLI args, settings, run_use_case(name), required_columns(name)) -> (data URI, settings): resolves flags such as --model / --from
  # into settings before create_pipeline (which stays pure wiring); ValueError for a user error
  prepare: Optional[Callable[..., Tuple[str, Dict[str, Any]]]] = None
  # (data, cut, horizon days, output, --set list, run_pipeline(argv), terminal) -> exit code: `backtest USE_CASE`
  backtest: Optional[Callable[..., int]] = None
  # (metric key, title) rows of report.md's metrics table
  reported_metrics: Sequence[Tuple[str, str]] = (
      ('example_count', 'examples'), ('mean_absolute_error', 'MAE'), ('root_mean_squared_error', 'RMSE'),
      ('normalized_gini', 'normalized Gini'), ('mean_prediction', 'mean prediction'), ('mean_label', 'mean label'))

  @property
  def all_settings(self) -> Dict[str, Any]:
    """The use case's own settings followed by the settings every use case shares (COMMON_SETTINGS)."""
    return {**self.settings, **COMMON_SETTINGS}


USE_CASES: Dict[str, UseCase] = {
    'clv': UseCase(
        name='clv',
        description='Customer lifetime value: DNN of next-period spend vs BTYD and the training mean; backtest',
        create_pipeline=clv.create_pipeline,
        default_data=os.path.join(REPO_ROOT, 'data', 'clv', 'transactions.csv'),
        required_columns=clv.REQUIRED_COLUMNS,
        settings=clv.SETTINGS,
        setting_choices=clv.SETTING_CHOICES,
        reported_models={'dnn': ('candidate', 'predicted_value', ''), 'btyd': ('candidate', 'predicted_value', 'btyd'),
                         'baseline': ('candidate', 'mean_baseline', '')},
        report_extras=clv.report_extras,
        backtest=clv_backtest.run),
    'attribution': UseCase(
        name='attribution',
        description='Campaign attribution: counterfactual credit from a conversion model vs rules, Markov, Shapley',
        create_pipeline=attribution.create_pipeline,
        default_data=attribution.DEFAULT_DATA,
        required_columns=attribution.REQUIRED_COLUMNS,
        settings=attribution.SETTINGS,
        setting_choices=attribution.SETTING_CHOICES,
        reported_models=attribution.REPORTED_MODELS,
        report_extras=attribution.report_extras,
        reported_metrics=attribution.REPORTED_METRICS),
    'sales_forecast': UseCase(
        name='sales_forecast',
        description='Sales forecast: next-month bottles per item, a correction to the best of six baselines',
        create_pipeline=sales_forecast.create_pipeline,
        default_data=os.path.join(REPO_ROOT, 'data', 'sales_forecast', 'sales.csv'),
        required_columns=sales_forecast.REQUIRED_COLUMNS,
        settings=sales_forecast.SETTINGS,
        setting_choices=sales_forecast.SETTING_CHOICES,
        reported_models=sales_forecast.REPORTED_MODELS,
        report_extras=sales_forecast.report_extras,
        reported_metrics=sales_forecast.REPORTED_METRICS),
    'recommender': UseCase(
        name='recommender',
        description='Recommender: two-tower retrieval (sampled softmax) vs popularity and random, top-k serving',
        create_pipeline=recommender.create_pipeline,
        default_data=recommender.DEFAULT_DATA,
        required_columns=recommender.REQUIRED_COLUMNS,
        settings=recommender.SETTINGS,
        setting_choices=recommender.SETTING_CHOICES,
        reported_models=recommender.REPORTED_MODELS,
        report_extras=recommender.report_extras,
        reported_metrics=recommender.REPORTED_METRICS),
    'batch_inference': UseCase(
        name='batch_inference',
        description='Batch inference: a pushed model (--model PATH / --from USE_CASE) over keyed files or BigQuery',
        create_pipeline=batch_inference.create_pipeline,
        default_data=batch_inference.DEFAULT_DATA,
        required_columns=batch_inference.REQUIRED_COLUMNS,
        settings=batch_inference.SETTINGS,
        setting_choices=batch_inference.SETTING_CHOICES,
        reported_models=batch_inference.REPORTED_MODELS,
        report_extras=batch_inference.report_extras,
        reported_metrics=batch_inference.REPORTED_METRICS,
        prepare=batch_inference.prepare),
}


def get(name: str) -> UseCase:
  """The use case called `name`, or UsageError naming the known ones."""
  if name not in USE_CASES:
    raise UsageError(f'unknown use case {name!r}; known: {", ".join(sorted(USE_CASES))}')
  return USE_CASES[name]


def resolve_settings(use_case: UseCase, assignments: List[str]) -> Dict[str, Any]:
  """Defaults overridden by `key=value` strings, each converted to the default's type."""
  settings = use_case.all_settings
  for assignment in assignments:
    key, sep, text = assignment.partition('=')
    key = key.strip()
    if not sep:
      raise UsageError(f'--set expects key=value, got {assignment!r}')
    if key not in settings:
      raise UsageError(f'unknown setting {key!r} for {use_case.name}; known: {", ".join(sorted(settings))}')
    default = settings[key]
    try:
      value = type(default)(text) if not isinstance(default, bool) else text.lower() in ('1', 'true', 'yes')
    except ValueError:
      raise UsageError(f'setting {key}={text!r} is not a valid {type(default).__name__}') from None
    choices = {**COMMON_SETTING_CHOICES, **use_case.setting_choices}.get(key)
    if choices and value not in choices:
      raise UsageError(f'setting {key}={text!r} must be one of {", ".join(choices)}')
    settings[key] = value
  return settings


def check_csv_header(path: str, required_columns: Sequence[str]) -> None:
  """UsageError unless `path` (local or gs://, gzipped when it ends in .gz) is a readable CSV file whose header
  has every required column. A UTF-8 byte-order mark and CRLF are accepted; the header is read as UTF-8 with
  any other byte replaced (column names are ASCII; the rows are decoded in the run's `encoding`)."""
  from pipelines import csv_lines  # pylint: disable=g-import-not-at-top  (it loads TensorFlow)
  exists = os.path.isfile if '://' not in path else __import__('tensorflow').io.gfile.exists
  try:
    if not exists(path):
      raise UsageError(f'data file not found: {path}')
    line = csv_lines.first_line(path)
    header = [column.strip() for column in next(csv.reader([line]))] if line else []
  except UsageError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise UsageError(f'cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
                     ) from None
  missing = [column for column in required_columns if column not in header]
  if missing and any(ch in line for ch in '\x00\ufffd'):
    raise UsageError(f'cannot read {path}: its first line is not CSV text (a binary file, or gzipped without .gz)')
  if missing:
    raise UsageError(f'{path} lacks required column(s) {", ".join(missing)}; '
                     f'expected a CSV header with {", ".join(required_columns)}, found {", ".join(header)}')
