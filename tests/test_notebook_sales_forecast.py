"""notebooks/sales_forecast.ipynb executed headless on the sales forecast e2e run; its numbers match summary.json."""
import os

import nbformat
import pytest

from conftest import REPO, code_cells, execute_notebook

NOTEBOOK = os.path.join(REPO, 'notebooks', 'sales_forecast.ipynb')


def test_notebook_runs_and_agrees_with_the_summary(sales_run):
  out, summary = sales_run.out, sales_run.summary
  assert not any(cell.outputs for cell in code_cells(nbformat.read(NOTEBOOK, as_version=4)))
  _, shown, _ = execute_notebook('sales_forecast.ipynb', {'SALES_FORECAST_RUN_DIR': str(out)})
  for model in ('rnn', 'naive', 'seasonal_naive', 'moving_average'):
    for metric in ('mae', 'rmse', 'wape'):
      assert shown['metrics'][model][metric] == pytest.approx(summary['metrics'][model][metric], rel=1e-9)
  assert shown['categories'] == len(summary['data']['mae_by_category'])
  assert shown['forecasts'] == summary['data']['examples']['score']  # the champion's, model or baseline
