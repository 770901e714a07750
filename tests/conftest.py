"""Test set-up: Keras 2 for every process, test markers, and the pipeline runs that several
test modules share (session fixtures here run once; a fixture imported into a second module would run again)."""
import contextlib
import csv
import dataclasses
import json
import os
import pathlib
import shutil
import sqlite3
import sys
import time
from typing import Any, Dict, List, Tuple

import nbclient
import nbformat
import pytest

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from pipelines.batch_inference import generate  # pylint: disable=g-import-not-at-top,wrong-import-position

SAMPLE = os.path.join(REPO, 'data', 'clv', 'transactions_sample.csv')
SALES_SAMPLE = os.path.join(REPO, 'data', 'sales_forecast', 'sales_sample.csv')
RECOMMENDER_SAMPLE = os.path.join(REPO, 'data', 'recommender', 'listens_sample.csv')
BAD_ROWS = ['77777,not-a-date,1,10.00', '77778,1997-02-01,1,-5.00', ',1997-02-01,1,5.00']
SCORING_ROWS = 300  # generated customers scored by `batch_inference_run`
_PAD = ',0' * (len(generate.CUSTOMER_COLUMNS) - 13)  # the CLV features after the first twelve
SCORING_BAD_LINES = ['0000005,1,2,3', ',1,0,30,10.0,10.0,0.0,1.0,0.0,0,1,3,0' + _PAD,  # malformed line, missing key
                     '9999999,one,0,30,10.0,10.0,0.0,1.0,0.0,0,1,3,0' + _PAD,  # unparsable value
                     '0000007,0,0,30,10.0,10.0,0.0,1.0,0.0,0,1,3,0' + _PAD]  # a second 0000007: duplicate key


@dataclasses.dataclass(frozen=True)
class PipelineRun:
  """A use case's run directory (runs/<use case>) and its summary.json."""
  out: pathlib.Path
  summary: Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class ClvRuns:
  """The CLV pipeline run twice into one output: the run directory, both summaries, the ML Metadata execution
  count after the first run and every execution after the second."""
  out: pathlib.Path
  first: Dict[str, Any]
  second: Dict[str, Any]
  executions_after_first: int
  executions: List[Any]


@dataclasses.dataclass(frozen=True)
class BatchInferenceRun:
  """A copy of a batch_inference run directory, its summary and the input rows it scored."""
  out: pathlib.Path
  summary: Dict[str, Any]
  inputs: List[Dict[str, str]]


def _executions(metadata_path):
  from ml_metadata import metadata_store  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  return metadata_store.MetadataStore(config).get_executions()


@pytest.fixture(scope='session')
def clv_run(tmp_path_factory):
  """The CLV pipeline run twice with LocalDagRunner on the CDNOW 1/10 sample plus BAD_ROWS (ClvRuns)."""
  from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('clv_e2e')
  data = root / 'data' / 'transactions.csv'
  data.parent.mkdir()
  with open(SAMPLE) as f:
    data.write_text(f.read() + '\n'.join(BAD_ROWS) + '\n')
  # On this sample the DNN ranks better than BTYD (Gini) but loses on MAE: Gini makes it the champion, pushed
  args = ['run', 'clv', '--data', str(data), '--output', str(root / 'runs'), '--set', 'epochs=20',
          '--set', 'primary_metric=normalized_gini']
  assert main(args) == 0
  out = root / 'runs' / 'clv'
  first = json.loads((out / 'summary.json').read_text())
  executions_after_first = len(_executions(str(out / 'metadata.sqlite')))
  assert main(args) == 0
  second = json.loads((out / 'summary.json').read_text())
  return ClvRuns(out, first, second, executions_after_first, _executions(str(out / 'metadata.sqlite')))


@pytest.fixture(scope='session')
def sales_run(tmp_path_factory):
  """One sales_forecast run on the sample with 3 epochs (PipelineRun)."""
  from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('sales_e2e')
  args = ['run', 'sales_forecast', '--data', SALES_SAMPLE, '--output', str(root / 'runs'), '--set', 'epochs=3']
  assert main(args) == 0
  out = root / 'runs' / 'sales_forecast'
  return PipelineRun(out, json.loads((out / 'summary.json').read_text()))


@pytest.fixture(scope='session')
def recommender_run(tmp_path_factory):
  """One recommender run on the sample (with its bad rows), 3 epochs (PipelineRun)."""
  from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('recommender_e2e')
  args = ['run', 'recommender', '--data', RECOMMENDER_SAMPLE, '--output', str(root / 'runs'), '--set', 'epochs=3']
  assert main(args) == 0
  out = root / 'runs' / 'recommender'
  return PipelineRun(out, json.loads((out / 'summary.json').read_text()))


def _copy_run_dir(run_dir: pathlib.Path, source_use_case: str, destination: pathlib.Path) -> pathlib.Path:
  """destination/<run dir name>: a copy of the files of a batch_inference run directory as they are now (ML
  Metadata through sqlite's backup API, summary.json, report.md, rejected_rows.csv, prediction shards), beside a
  link to the source use case's run directory (where `--from` found the model). root/ is not copied: ML Metadata
  names the artifacts by their path under the original run directory."""
  copy = destination / run_dir.name
  copy.mkdir(parents=True)
  for path in sorted(run_dir.iterdir()):
    if path.name == 'metadata.sqlite':
      with contextlib.closing(sqlite3.connect(path)) as original, \
           contextlib.closing(sqlite3.connect(copy / path.name)) as backup:
        original.backup(backup)
    elif path.is_file():
      shutil.copy2(path, copy / path.name)
  if source_use_case:
    (destination / source_use_case).symlink_to(run_dir.parent / source_use_case, target_is_directory=True)
  return copy


@pytest.fixture(scope='session')
def batch_inference_run(clv_run, tmp_path_factory):
  """batch_inference --from clv (the model `clv_run` pushed) over SCORING_ROWS generated customers plus
  SCORING_BAD_LINES (BatchInferenceRun).

  The run writes into the CLV run's output folder, where `--from clv` finds the model; tests run batch_inference
  there again afterwards (test_batch_inference_pipeline_e2e.py), which replaces the run directory's files and
  adds a later run to its ML Metadata. So the run directory returned is a copy taken right after this run
  (see _copy_run_dir): the notebook test reads this run as the latest one whatever ran since.
  """
  from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top
  runs = clv_run.out.parent
  data = runs.parent / 'scoring' / 'customers.csv'
  generate.write_csv(str(data), SCORING_ROWS, seed=7)
  with open(data, 'a') as f:
    f.write('\n'.join(SCORING_BAD_LINES) + '\n')
  assert main(['run', 'batch_inference', '--from', 'clv', '--data', str(data), '--output', str(runs)]) == 0
  summary = json.loads((runs / 'batch_inference' / 'summary.json').read_text())
  out = _copy_run_dir(runs / 'batch_inference', summary['settings']['source_use_case'],
                      tmp_path_factory.mktemp('batch_inference_run'))
  with open(data) as f:
    inputs = list(csv.DictReader(f))
  return BatchInferenceRun(out, json.loads((out / 'summary.json').read_text()), inputs)


PIPELINE_RUN_FIXTURES = {'clv_run', 'sales_run', 'recommender_run', 'batch_inference_run'}


def pytest_collection_modifyitems(items):
  """Marks `notebook` the tests of test_notebook_*.py and `e2e` those of *_e2e.py, every test that uses a
  pipeline-run fixture and every multi_processing Beam run (worker processes start: 15-30 s each), so
  `-m 'not e2e and not notebook'` (make test-fast) leaves only the quick tests."""
  for item in items:
    name = os.path.basename(str(item.fspath))
    if name.startswith('test_notebook_'):
      item.add_marker(pytest.mark.notebook)
    elif (name.endswith('_e2e.py') or PIPELINE_RUN_FIXTURES & set(getattr(item, 'fixturenames', ()))
          or 'multi_processing' in item.name):
      item.add_marker(pytest.mark.e2e)


NOTEBOOK_SUMMARY_PREFIX = 'NOTEBOOK_SUMMARY '


def code_cells(notebook) -> List[Any]:
  """A notebook's code cells."""
  return [cell for cell in notebook.cells if cell.cell_type == 'code']


def execute_notebook(name: str, run_dir_env: Dict[str, str]) -> Tuple[Any, Dict[str, Any], float]:
  """Executes notebooks/<name> headless (nbclient, the venv's python3 kernel, Keras 2, hash seed 0) with
  `run_dir_env` (e.g. {'CLV_RUN_DIR': ...}) added to its environment: (the executed notebook, the dict its one
  NOTEBOOK_SUMMARY line holds, seconds the execution took). Raises CellExecutionError on the first failing cell."""
  notebook = nbformat.read(os.path.join(REPO, 'notebooks', name), as_version=4)
  client = nbclient.NotebookClient(notebook, kernel_name='python3', timeout=600, startup_timeout=180,
                                   resources={'metadata': {'path': os.path.join(REPO, 'notebooks')}})
  start = time.perf_counter()
  client.execute(env=dict(os.environ, **run_dir_env, TF_USE_LEGACY_KERAS='1', PYTHONHASHSEED='0'))
  seconds = time.perf_counter() - start
  lines = [line for cell in code_cells(notebook) for output in cell.outputs if output.output_type == 'stream'
           for line in output.text.splitlines() if line.startswith(NOTEBOOK_SUMMARY_PREFIX)]
  assert len(lines) == 1, lines
  return notebook, json.loads(lines[0][len(NOTEBOOK_SUMMARY_PREFIX):]), seconds


def assert_committed_without_outputs(name: str) -> None:
  """notebooks/<name> is a valid notebook committed with no outputs and no execution counts."""
  notebook = nbformat.read(os.path.join(REPO, 'notebooks', name), as_version=4)
  nbformat.validate(notebook)
  assert all(not cell.outputs and cell.execution_count is None for cell in code_cells(notebook))


def assert_every_cell_ran(notebook) -> None:
  """Every code cell of an executed notebook ran, and none output an error."""
  cells = code_cells(notebook)
  assert all(cell.execution_count is not None for cell in cells)
  assert not [output for cell in cells for output in cell.outputs if output.output_type == 'error']


def tagged_cell(notebook, tag: str):
  """The one cell of the notebook tagged `tag`."""
  cells = [cell for cell in notebook.cells if tag in cell.metadata.get('tags', [])]
  assert len(cells) == 1, tag
  return cells[0]


def cell_data(cell, mime: str) -> List[Any]:
  """The cell's display outputs of MIME type `mime`."""
  return [output.data[mime] for output in cell.outputs if 'data' in output and mime in output.data]
