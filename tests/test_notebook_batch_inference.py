"""notebooks/batch_inference.ipynb executed headless (nbclient) on the session's batch_inference run (--from clv,
generated customers plus bad lines); its NOTEBOOK_SUMMARY line agrees with summary.json, with the prediction shards
of the run directory (read here with csv) and with the CLV run's ML Metadata."""
import csv
import glob
import math
import os
from typing import Any, Dict, List, Tuple

import nbformat
import pytest

from conftest import (assert_committed_without_outputs, assert_every_cell_ran, cell_data, code_cells,
                      execute_notebook, tagged_cell)
from pipelines.batch_inference.pipeline import latest_pushed_model


def _shard_rows(run_dir) -> List[Dict[str, str]]:
  """Every row of the run directory's prediction shards, as the csv module reads them (all text)."""
  rows = []
  for shard in sorted(glob.glob(os.path.join(str(run_dir), 'predictions-*-of-*.csv'))):
    with open(shard, newline='') as f:
      rows += list(csv.DictReader(f))
  return rows


@pytest.fixture(scope='module')
def executed(batch_inference_run, tmp_path_factory) -> Tuple[Any, Dict[str, Any], float]:
  """(executed notebook, its NOTEBOOK_SUMMARY dict, seconds the execution took)."""
  notebook, shown, seconds = execute_notebook('batch_inference.ipynb',
                                              {'BATCH_INFERENCE_RUN_DIR': str(batch_inference_run.out)})
  nbformat.write(notebook, str(tmp_path_factory.mktemp('notebook') / 'batch_inference.executed.ipynb'))
  return notebook, shown, seconds


def test_committed_notebook_has_no_outputs():
  assert_committed_without_outputs('batch_inference.ipynb')


def test_every_cell_ran_without_error(executed, capsys):
  notebook, _, seconds = executed
  assert_every_cell_ran(notebook)
  with capsys.disabled():
    print(f'\nnotebooks/batch_inference.ipynb: {len(code_cells(notebook))} code cells executed in {seconds:.1f} s')


def test_rows_balance_agrees_with_the_summary(batch_inference_run, executed):
  summary = batch_inference_run.summary
  notebook, shown, _ = executed
  data = summary['data']
  assert (shown['rows_in'], shown['rows_out'], shown['rejected'], shown['balanced']) == (
      data['rows_in'], data['rows_out'], data['rejected'], data['balanced'])
  assert shown['rejected'] and shown['balanced']  # the bad lines were rejected, and nothing was lost
  assert shown['rejected_rows_read'] == sum(data['rejected'].values())
  for tag in ('rows-balance', 'rejected-rows'):
    assert '<table' in cell_data(tagged_cell(notebook, tag), 'text/html')[0], tag
  assert all(reason in cell_data(tagged_cell(notebook, 'rejected-rows'), 'text/html')[0] for reason in data['rejected'])


def test_predictions_agree_with_the_shards_in_the_run_dir(batch_inference_run, executed):
  out, summary = batch_inference_run.out, batch_inference_run.summary
  notebook, shown, _ = executed
  rows = _shard_rows(out)
  key = summary['settings']['key_column']
  values = [float(row['predicted_value']) for row in rows]
  assert rows and shown['key_column'] == key
  assert shown['prediction_rows'] == len(rows) == summary['data']['rows_out']
  assert shown['distinct_keys'] == len({row[key] for row in rows})
  assert shown['first_output'] == 'predicted_value'
  assert shown['first_output_mean'] == pytest.approx(math.fsum(values) / len(values), rel=1e-9)
  ranked = sorted(rows, key=lambda row: -float(row['predicted_value']))
  assert shown['top_keys'][0] == ranked[0][key] and len(shown['top_keys']) == 10  # keys as text: '0000042'
  assert cell_data(tagged_cell(notebook, 'figure-histogram'), 'image/png')
  for tag in ('predictions-describe', 'top-keys'):
    assert '<table' in cell_data(tagged_cell(notebook, tag), 'text/html')[0], tag


def test_model_is_traced_to_the_clv_push(clv_run, batch_inference_run, executed):
  summary = batch_inference_run.summary
  _, shown, _ = executed
  pushed = latest_pushed_model(str(clv_run.out / 'metadata.sqlite'))
  assert (shown['model_uri'], shown['source_use_case']) == (summary['settings']['model'], 'clv')
  assert shown['pushed_to'] == pushed['pushed_to'] and shown['scorer'] == 'BatchScorer'


def test_component_seconds_agree_with_the_summary(batch_inference_run, executed):
  summary = batch_inference_run.summary
  _, shown, _ = executed
  assert shown['seconds'] == {node: c['seconds'] for node, c in summary['components'].items()}
  rows_per_second = summary['data']['rows_out'] / summary['components']['BatchScorer']['seconds']
  assert shown['scoring_rows_per_second'] == pytest.approx(rows_per_second)
