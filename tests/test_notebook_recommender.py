"""notebooks/recommender.ipynb executed headless on the recommender e2e run; its numbers match summary.json."""
import os

import nbformat
import pytest

from conftest import REPO, code_cells, execute_notebook

NOTEBOOK = os.path.join(REPO, 'notebooks', 'recommender.ipynb')


def test_notebook_runs_and_agrees_with_the_summary(recommender_run):  # pylint: disable=redefined-outer-name
  out, summary = recommender_run.out, recommender_run.summary
  assert not any(cell.outputs for cell in code_cells(nbformat.read(NOTEBOOK, as_version=4)))
  _, shown, _ = execute_notebook('recommender.ipynb', {'RECOMMENDER_RUN_DIR': str(out)})
  for model in ('two_tower', 'popularity', 'random'):
    for metric in ('recall_at_10', 'recall_at_100'):
      assert shown['metrics'][model][metric] == pytest.approx(summary['metrics'][model][metric], rel=1e-9)
  for model in ('two_tower', 'popularity'):
    assert shown['auc'][model] == pytest.approx(summary['metrics'][model]['auc'], rel=1e-9)
  assert shown['users'] == summary['data']['recommended_users']
  assert shown['recommendation_rows'] == summary['data']['rows_scored']
