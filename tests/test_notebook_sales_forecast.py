"""notebooks/sales_forecast.ipynb executed headless on the sales forecast e2e run; its numbers match summary.json."""
import json
import os

import nbclient
import nbformat
import pytest

from conftest import REPO

NOTEBOOK = os.path.join(REPO, 'notebooks', 'sales_forecast.ipynb')
SUMMARY_PREFIX = 'NOTEBOOK_SUMMARY '


def test_notebook_runs_and_agrees_with_the_summary(sales_run):
  out, summary = sales_run
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  assert not any(cell.get('outputs') for cell in notebook.cells if cell.cell_type == 'code')
  client = nbclient.NotebookClient(notebook, kernel_name='python3', timeout=600, startup_timeout=180,
                                   resources={'metadata': {'path': os.path.join(REPO, 'notebooks')}})
  client.execute(env=dict(os.environ, SALES_FORECAST_RUN_DIR=str(out), TF_USE_LEGACY_KERAS='1', PYTHONHASHSEED='0'))
  lines = [line for cell in notebook.cells if cell.cell_type == 'code' for output in cell.outputs
           if output.output_type == 'stream' for line in output.text.splitlines() if line.startswith(SUMMARY_PREFIX)]
  assert len(lines) == 1, lines
  shown = json.loads(lines[0][len(SUMMARY_PREFIX):])
  for model in ('rnn', 'naive', 'seasonal_naive', 'moving_average'):
    for metric in ('mae', 'rmse', 'wape'):
      assert shown['metrics'][model][metric] == pytest.approx(summary['metrics'][model][metric], rel=1e-9)
  assert shown['categories'] == len(summary['data']['mae_by_category'])
  assert shown['forecasts'] == summary['data']['rows_scored']
