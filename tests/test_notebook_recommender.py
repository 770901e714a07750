"""notebooks/recommender.ipynb executed headless on the recommender e2e run; its numbers match summary.json."""
import json
import os

import nbclient
import nbformat
import pytest

from conftest import REPO

NOTEBOOK = os.path.join(REPO, 'notebooks', 'recommender.ipynb')
SUMMARY_PREFIX = 'NOTEBOOK_SUMMARY '


def test_notebook_runs_and_agrees_with_the_summary(recommender_run):  # pylint: disable=redefined-outer-name
  out, summary = recommender_run
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  assert not any(cell.get('outputs') for cell in notebook.cells if cell.cell_type == 'code')
  client = nbclient.NotebookClient(notebook, kernel_name='python3', timeout=600, startup_timeout=180,
                                   resources={'metadata': {'path': os.path.join(REPO, 'notebooks')}})
  client.execute(env=dict(os.environ, RECOMMENDER_RUN_DIR=str(out), TF_USE_LEGACY_KERAS='1', PYTHONHASHSEED='0'))
  lines = [line for cell in notebook.cells if cell.cell_type == 'code' for output in cell.outputs
           if output.output_type == 'stream' for line in output.text.splitlines() if line.startswith(SUMMARY_PREFIX)]
  assert len(lines) == 1, lines
  shown = json.loads(lines[0][len(SUMMARY_PREFIX):])
  for model in ('two_tower', 'popularity', 'random'):
    for metric in ('recall_at_10', 'recall_at_100'):
      assert shown['metrics'][model][metric] == pytest.approx(summary['metrics'][model][metric], rel=1e-9)
  for model in ('two_tower', 'popularity'):
    assert shown['auc'][model] == pytest.approx(summary['metrics'][model]['auc'], rel=1e-9)
  assert shown['users'] == summary['data']['recommended_users']
  assert shown['recommendation_rows'] == summary['data']['rows_scored']
