"""notebooks/attribution.ipynb executed headless (nbclient, the venv's python3 kernel) on the shared attribution run.

The notebook's last cell prints its key numbers as one JSON line (NOTEBOOK_SUMMARY), checked here against the
run's summary.json (the second run's, without ground truth, is what the run directory holds at the end; the
notebook is executed on a copy of the first run's summary so the ground-truth columns are exercised)."""
import json
import shutil
import sys

import pytest

from conftest import assert_committed_without_outputs, code_cells, execute_notebook
from test_attribution_pipeline_e2e import shared_run


@pytest.fixture(scope='module')
def executed(tmp_path_factory):
  """(executed notebook, its NOTEBOOK_SUMMARY, the summary.json it read)."""
  runs = shared_run(tmp_path_factory)
  out, first = runs.out, runs.first
  run_dir = tmp_path_factory.mktemp('attribution_notebook_run')
  (run_dir / 'summary.json').write_text(json.dumps(first))  # the run with ground truth
  shutil.copy(out / 'attention_by_position.csv', run_dir / 'attention_by_position.csv')
  notebook, shown, _ = execute_notebook('attribution.ipynb', {'ATTRIBUTION_RUN_DIR': str(run_dir)})
  return notebook, shown, first


def test_committed_notebook_has_no_outputs():
  assert_committed_without_outputs('attribution.ipynb')


def test_every_cell_ran_with_this_python(executed):
  notebook, summary, _ = executed
  assert summary['python'] == sys.executable
  assert not [o for cell in code_cells(notebook) for o in cell.outputs if o.output_type == 'error']
  images = [o for cell in code_cells(notebook) for o in cell.outputs if 'image/png' in o.get('data', {})]
  assert len(images) == 2


def test_numbers_match_the_pipeline_summary(executed):
  _, summary, first = executed
  assert summary['evaluation_uri'] == first['outputs']['evaluation']
  for name in ('model', 'logistic_regression'):
    for key in ('auc', 'auc_precision_recall', 'binary_crossentropy', 'calibration', 'example_count'):
      assert summary['model_metrics'][name][key] == pytest.approx(first['metrics'][name][key]), (name, key)
  assert summary['has_ground_truth']
  for method, entry in first['metrics']['attribution'].items():
    assert summary['comparison'][method] == pytest.approx({'spearman': entry['spearman'],
                                                           'abs_error': entry['abs_error']}), method
  assert len(summary['campaigns']) == 15 and summary['positions'] > 10
