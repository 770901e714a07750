"""Use-case registry: name -> create_pipeline, default data, required input columns, settings."""
import dataclasses
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from pipelines import clv

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UsageError(ValueError):
  """A user error (unknown use case, bad setting, missing or malformed data): one line, exit code 2."""


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
  # (settings, artifact(node_id, output_key), predictions csv, output dir) -> {name: path} of extra outputs
  # (PNG plots are shown in report.md)
  report_extras: Optional[Callable[..., Dict[str, str]]] = None


USE_CASES: Dict[str, UseCase] = {
    'clv': UseCase(
        name='clv',
        description='Customer lifetime value: per-customer DNN of next-period spend vs the training mean',
        create_pipeline=clv.create_pipeline,
        default_data=os.path.join(REPO_ROOT, 'data', 'clv', 'transactions.csv'),
        required_columns=clv.REQUIRED_COLUMNS,
        settings=clv.SETTINGS,
        setting_choices=clv.SETTING_CHOICES,
        reported_models={'dnn': ('candidate', 'predicted_value', ''), 'btyd': ('candidate', 'predicted_value', 'btyd'),
                         'baseline': ('candidate', 'mean_baseline', '')},
        report_extras=clv.report_extras),
}


def get(name: str) -> UseCase:
  """The use case called `name`, or UsageError naming the known ones."""
  if name not in USE_CASES:
    raise UsageError(f'unknown use case {name!r}; known: {", ".join(sorted(USE_CASES))}')
  return USE_CASES[name]


def resolve_settings(use_case: UseCase, assignments: List[str]) -> Dict[str, Any]:
  """Defaults overridden by `key=value` strings, each converted to the default's type."""
  settings = dict(use_case.settings)
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
    choices = use_case.setting_choices.get(key)
    if choices and value not in choices:
      raise UsageError(f'setting {key}={text!r} must be one of {", ".join(choices)}')
    settings[key] = value
  return settings


def check_csv_header(path: str, required_columns: Sequence[str]) -> None:
  """UsageError unless `path` is a readable CSV file whose header has every required column."""
  if not os.path.isfile(path):
    raise UsageError(f'data file not found: {path}')
  with open(path, newline='') as f:
    header = [column.strip() for column in f.readline().strip().split(',')]
  missing = [column for column in required_columns if column not in header]
  if missing:
    raise UsageError(f'{path} lacks required column(s) {", ".join(missing)}; '
                     f'expected a CSV header with {", ".join(required_columns)}, found {", ".join(header)}')
