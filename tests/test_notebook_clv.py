"""notebooks/clv_tfma.ipynb executed headless (nbclient, the venv's python3 kernel) on the shared CLV run.

The notebook reads the run's ML Metadata and TFMA output; its last cell prints its key numbers as one JSON line
(NOTEBOOK_SUMMARY), which is checked here against summary.json, ML Metadata and the eval examples themselves.
"""
import collections
import glob
import os
import sys

import nbformat
import pytest
import tensorflow as tf
from jupyter_client.kernelspec import KernelSpecManager

from conftest import (assert_committed_without_outputs, assert_every_cell_ran, cell_data, code_cells,
                      execute_notebook, tagged_cell)
from pipelines.report import latest_run

FREQUENCY_BUCKETS = ['0', '1', '2-3', '4-7', '8+']


@pytest.fixture(scope='module')
def executed(clv_run, tmp_path_factory):
  """(executed notebook, its NOTEBOOK_SUMMARY dict, seconds the execution took, the run's MLMD nodes)."""
  out = clv_run.out
  notebook, shown, seconds = execute_notebook('clv_tfma.ipynb', {'CLV_RUN_DIR': str(out)})
  nbformat.write(notebook, str(tmp_path_factory.mktemp('notebook') / 'clv_tfma.executed.ipynb'))
  nodes = latest_run(str(out / 'metadata.sqlite'), 'clv')
  return notebook, shown, seconds, nodes


def test_committed_notebook_has_no_outputs():
  assert_committed_without_outputs('clv_tfma.ipynb')


def test_kernel_is_this_venv_python(executed):
  # The python3 kernelspec says `python`; jupyter_client then starts sys.executable (this interpreter).
  spec = KernelSpecManager().get_kernel_spec('python3')
  assert spec.argv[0] in ('python', 'python3', sys.executable), spec.argv
  _, summary, _, _ = executed
  assert summary['python'] == sys.executable


def test_every_cell_ran_without_error(executed, capsys):
  notebook, _, seconds, _ = executed
  assert_every_cell_ran(notebook)
  with capsys.disabled():
    print(f'\nnotebooks/clv_tfma.ipynb: {len(code_cells(notebook))} code cells executed in {seconds:.1f} s')


def test_overall_metrics_match_the_pipeline_summary(clv_run, executed):
  first, second = clv_run.first, clv_run.second
  notebook, summary, _, _ = executed
  assert '<table' in cell_data(tagged_cell(notebook, 'overall-metrics'), 'text/html')[0]
  assert summary['evaluation_uri'] == second['outputs']['evaluation']
  # The second run evaluates the first run's model beside the candidate iff the first run blessed it.
  assert summary['has_blessed_baseline'] is bool(first['blessed'])
  overall = summary['overall']
  assert set(overall) == {'dnn', 'btyd', 'baseline'}
  for model in overall:
    assert all(value is not None for value in overall[model].values()), model
    # The same artifact summary.json was written from; the first run's evaluation differs by summation order only.
    assert overall[model]['mean_absolute_error'] == second['metrics'][model]['mean_absolute_error']
    assert overall[model]['normalized_gini'] == second['metrics'][model]['normalized_gini']
  assert overall['dnn']['mean_absolute_error'] == pytest.approx(first['metrics']['dnn']['mean_absolute_error'],
                                                                rel=1e-6)
  assert overall['dnn']['example_count'] == first['data']['examples']['eval']


def _eval_feature_counts(nodes, feature):
  """Eval examples per value of `feature`, read from the examples the Evaluator scored (BtydFit's output)."""
  files = glob.glob(os.path.join(nodes['BtydFit'].outputs['predictions'][-1].uri, 'Split-eval', '*.gz'))
  assert files
  counts = collections.Counter()
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    values = tf.train.Example.FromString(record.numpy()).features.feature[feature]
    value = values.bytes_list.value[0].decode() if values.bytes_list.value else str(values.int64_list.value[0])
    counts[value] += 1
  return dict(counts)


def test_slice_tables_cover_every_value_in_the_evalcell_data(executed):
  notebook, summary, _, nodes = executed
  for tag in ('slices-frequency', 'slices-month'):
    assert '<table' in cell_data(tagged_cell(notebook, tag), 'text/html')[0], tag
  for column in ('frequency_bucket', 'first_purchase_month'):
    table = summary['slices'][column]
    assert {value: row['examples'] for value, row in table.items()} == _eval_feature_counts(nodes, column)
    assert sum(row['examples'] for row in table.values()) == summary['overall']['dnn']['example_count']
    assert all(mae is not None for row in table.values() for mae in row['mae'].values())
  buckets = list(summary['slices']['frequency_bucket'])
  assert buckets == [b for b in FREQUENCY_BUCKETS if b in buckets]  # in bucket order
  assert set(buckets) == set(FREQUENCY_BUCKETS)  # the sample's eval customers fall in every bucket


def test_lineage_walks_from_the_pushed_model_to_the_csv_examples(clv_run, executed):
  first, second = clv_run.first, clv_run.second
  notebook, summary, _, nodes = executed
  html = cell_data(tagged_cell(notebook, 'lineage'), 'text/html')[0]
  lineage = summary['lineage']
  chain = [('Trainer', 'Model'), ('Transform', 'Examples'), ('Transform', 'TransformGraph'), ('SchemaGen', 'Schema'),
           ('ExamplesBuilder', 'Examples'), ('CsvExampleGen', 'Examples')]
  expected = {'Trainer': nodes['Trainer'].outputs['model'][-1].uri,
              'ExamplesBuilder': nodes['ExamplesBuilder'].outputs['examples'][-1].uri,
              'CsvExampleGen': nodes['CsvExampleGen'].outputs['examples'][-1].uri}
  if first['pushed_model'] or second['pushed_model']:  # the walk starts at the latest pushed model
    chain.insert(0, ('Pusher', 'PushedModel'))
  if second['pushed_model']:
    expected['Pusher'] = nodes['Pusher'].outputs['pushed_model'][-1].uri
  # else nothing was pushed (no run blessed its model): the walk starts at the latest run's trained model.
  assert [(row['producing_node'], row['artifact_type']) for row in lineage] == chain
  for row in lineage:
    if row['producing_node'] in expected:
      assert row['uri'] == expected[row['producing_node']]
      assert row['uri'] in html


def test_figures_and_widget(executed):
  notebook, _, _, _ = executed
  images = [image for cell in code_cells(notebook) for image in cell_data(cell, 'image/png')]
  assert len(images) >= 2
  for tag in ('figure-mae-by-frequency', 'figure-deciles'):
    assert cell_data(tagged_cell(notebook, tag), 'image/png'), tag
  widget = cell_data(tagged_cell(notebook, 'tfma-widget'), 'application/vnd.jupyter.widget-view+json')
  assert widget and widget[0]['model_id']
