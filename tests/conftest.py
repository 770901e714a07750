"""Test set-up: Keras 2 for every process, the repository root on sys.path, and the pipeline runs that several
test modules share (session fixtures here run once; a fixture imported into a second module would run again)."""
import json
import os
import sys

import pytest

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SAMPLE = os.path.join(REPO, 'data', 'clv', 'transactions_sample.csv')
SALES_SAMPLE = os.path.join(REPO, 'data', 'sales_forecast', 'sales_sample.csv')
RECOMMENDER_SAMPLE = os.path.join(REPO, 'data', 'recommender', 'listens_sample.csv')
BAD_ROWS = ['77777,not-a-date,1,10.00', '77778,1997-02-01,1,-5.00', ',1997-02-01,1,5.00']


def _executions(metadata_path):
  from ml_metadata import metadata_store  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  return metadata_store.MetadataStore(config).get_executions()


@pytest.fixture(scope='session')
def clv_run(tmp_path_factory):
  """The CLV pipeline run twice with LocalDagRunner on the CDNOW 1/10 sample plus BAD_ROWS.

  Returns (output dir runs/clv, first summary, second summary, MLMD execution count after the first run,
  all MLMD executions after the second).
  """
  from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('clv_e2e')
  data = root / 'data' / 'transactions.csv'
  data.parent.mkdir()
  with open(SAMPLE) as f:
    data.write_text(f.read() + '\n'.join(BAD_ROWS) + '\n')
  args = ['run', 'clv', '--data', str(data), '--output', str(root / 'runs'), '--set', 'epochs=20']
  assert main(args) == 0
  out = root / 'runs' / 'clv'
  first = json.loads((out / 'summary.json').read_text())
  executions_after_first = len(_executions(str(out / 'metadata.sqlite')))
  assert main(args) == 0
  second = json.loads((out / 'summary.json').read_text())
  return out, first, second, executions_after_first, _executions(str(out / 'metadata.sqlite'))


@pytest.fixture(scope='session')
def sales_run(tmp_path_factory):
  """(output dir runs/sales_forecast, summary) of one sales_forecast run on the sample with 3 epochs."""
  from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('sales_e2e')
  args = ['run', 'sales_forecast', '--data', SALES_SAMPLE, '--output', str(root / 'runs'), '--set', 'epochs=3']
  assert main(args) == 0
  out = root / 'runs' / 'sales_forecast'
  return out, json.loads((out / 'summary.json').read_text())


@pytest.fixture(scope='session')
def recommender_run(tmp_path_factory):
  """(output dir runs/recommender, summary) of one recommender run on the sample (with its bad rows), 3 epochs."""
  from pipelines.__main__ import main  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('recommender_e2e')
  args = ['run', 'recommender', '--data', RECOMMENDER_SAMPLE, '--output', str(root / 'runs'), '--set', 'epochs=3']
  assert main(args) == 0
  out = root / 'runs' / 'recommender'
  return out, json.loads((out / 'summary.json').read_text())
