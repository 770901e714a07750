"""Tests for pipelines.metrics: NumPy functions, combiners and real TFMA runs."""
import math
import os
import pickle

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tf_keras
from tensorflow_model_analysis.metrics import metric_specs
from tensorflow_model_analysis.metrics import metric_types

from pipelines import metrics

OUTPUTS = ('predicted_value', 'mean_baseline')
CUSTOM_METRICS = [
    tfma.MetricConfig(class_name='NormalizedGini', module='pipelines.metrics'),
    tfma.MetricConfig(class_name='DecileTable', module='pipelines.metrics'),
    tfma.MetricConfig(class_name='MeanAbsoluteError', module='tf_keras.metrics'),
]


# --- normalized_gini -------------------------------------------------------


def test_gini_perfect_ranking_is_one():
  labels = [0.0, 1.0, 1.0, 5.0, 2.0]
  assert metrics.normalized_gini(labels, [0.1, 0.2, 0.3, 0.9, 0.5]) == (
      pytest.approx(1.0))


def test_gini_reversed_ranking_is_minus_one():
  labels = [0.0, 1.0, 3.0, 5.0]
  assert metrics.normalized_gini(labels, [4.0, 3.0, 2.0, 1.0]) == (
      pytest.approx(-1.0))


def test_gini_constant_prediction_is_exactly_zero():
  assert metrics.normalized_gini([0.0, 1.0, 3.0, 5.0], [2.0] * 4) == 0.0


def test_gini_is_order_invariant():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 4, 300).astype(float)
  predictions = rng.integers(0, 6, 300).astype(float)  # Many ties.
  expected = metrics.normalized_gini(labels, predictions)
  for _ in range(5):
    perm = rng.permutation(300)
    assert metrics.normalized_gini(labels[perm], predictions[perm]) == expected


def test_gini_hand_computed_with_ties():
  # labels = [1, 0, 3, 0], predictions = [.2, .2, .9, .1]; total label 4.
  # Ranking by prediction: {.9: 3}, {.2: 1, 0} (tie group), {.1: 0}.
  # Lorenz points (0,0), (1/4,3/4), (3/4,1), (1,1); trapezoids:
  #   1/4*(0+3/4)/2 + 1/2*(3/4+1)/2 + 1/4*(1+1)/2 = 3/32 + 14/32 + 8/32 = 25/32
  #   gini(pred) = 25/32 - 16/32 = 9/32.
  # Ranking by label: 3, 1, {0, 0}: points (0,0), (1/4,3/4), (1/2,1), (1,1):
  #   3/32 + 7/32 + 16/32 = 26/32, gini(label) = 10/32.
  # normalized = (9/32) / (10/32) = 0.9.
  assert metrics.normalized_gini([1.0, 0.0, 3.0, 0.0],
                                 [0.2, 0.2, 0.9, 0.1]) == pytest.approx(0.9)


def test_gini_is_nan_without_label_signal():
  assert math.isnan(metrics.normalized_gini([0.0, 0.0], [1.0, 2.0]))
  assert math.isnan(metrics.normalized_gini([2.0, 2.0], [1.0, 2.0]))
  assert math.isnan(metrics.normalized_gini([], []))


# --- decile_table ----------------------------------------------------------


def test_decile_table_counts_and_order():
  rng = np.random.default_rng(2)
  predictions = rng.normal(size=100)
  labels = predictions + rng.normal(size=100)
  rows = metrics.decile_table(labels, predictions)
  assert [r['decile'] for r in rows] == list(range(1, 11))
  assert [r['count'] for r in rows] == [10] * 10
  means = [r['mean_prediction'] for r in rows]
  assert all(a >= b for a, b in zip(means, means[1:]))
  assert rows[0]['mean_prediction'] == pytest.approx(
      np.sort(predictions)[-10:].mean())
  assert rows[0]['mean_label'] == pytest.approx(
      labels[np.argsort(predictions)[-10:]].mean())


def test_decile_table_constant_predictions_share_the_mean_label():
  labels = np.arange(100, dtype=float)
  rows = metrics.decile_table(labels, np.ones(100))
  assert [r['mean_label'] for r in rows] == [pytest.approx(49.5)] * 10


def test_decile_table_is_order_invariant_with_ties():
  rng = np.random.default_rng(3)
  labels = rng.normal(size=95)
  predictions = rng.integers(0, 7, 95).astype(float)
  perm = rng.permutation(95)
  assert metrics.decile_table(labels, predictions) == metrics.decile_table(
      labels[perm], predictions[perm])


def test_decile_table_fewer_examples_than_deciles():
  rows = metrics.decile_table([1.0, 2.0, 3.0], [0.3, 0.2, 0.2])
  assert [r['count'] for r in rows] == [1, 1, 1] + [0] * 7
  assert rows[1]['mean_label'] == rows[2]['mean_label'] == 2.5
  assert all(math.isnan(r['mean_label']) for r in rows[3:])


# --- Metric objects and combiners -------------------------------------------


@pytest.mark.parametrize('config,cls', [
    (CUSTOM_METRICS[0], metrics.NormalizedGini),
    (CUSTOM_METRICS[1], metrics.DecileTable),
])
def test_metric_config_round_trip(config, cls):
  instance = metric_specs.metric_instance(config)
  assert isinstance(instance, cls)
  clone = cls.from_config(instance.get_config())
  assert clone.get_config() == instance.get_config()
  named = metric_specs.metric_instance(
      tfma.MetricConfig(
          class_name=config.class_name,
          module=config.module,
          config='"name": "custom"'))
  assert named.name == 'custom'


def _run_combiner(metric, labels, predictions, output_name=''):
  computation, = metric.computations(
      output_names=[output_name], example_weighted=False)
  combiner = pickle.loads(pickle.dumps(computation.combiner))
  halves = []
  for part in (slice(0, len(labels) // 2), slice(len(labels) // 2, None)):
    acc = combiner.create_accumulator()
    for label, prediction in zip(labels[part], predictions[part]):
      inputs = {'labels': np.array([label]),
                'predictions': np.array([prediction]),
                'example_weights': np.array([1.0])}
      if output_name:
        inputs = {k: {output_name: v} for k, v in inputs.items()}
      acc = combiner.add_input(acc, metric_types.StandardMetricInputs(inputs))
    halves.append(acc)
  return computation.keys, combiner.extract_output(
      combiner.merge_accumulators(halves))


def test_gini_combiner_matches_numpy_on_named_output():
  rng = np.random.default_rng(4)
  labels, predictions = rng.random(50), rng.random(50)
  keys, result = _run_combiner(metrics.NormalizedGini(), labels, predictions,
                               output_name='predicted_value')
  assert keys == [metric_types.MetricKey(
      name='normalized_gini', output_name='predicted_value')]
  assert result[keys[0]] == metrics.normalized_gini(labels, predictions)


def test_decile_combiner_gives_nan_for_empty_deciles():
  keys, result = _run_combiner(metrics.DecileTable(), [1.0, 2.0, 3.0],
                               [0.3, 0.2, 0.1])
  assert [k.name for k in keys] == metrics.decile_metric_names()
  assert result[metric_types.MetricKey(name='decile_01_mean_label')] == 1.0
  assert result[metric_types.MetricKey(name='decile_03_mean_prediction')] == (
      0.1)
  assert math.isnan(
      result[metric_types.MetricKey(name='decile_04_mean_prediction')])


# --- Real TFMA runs -----------------------------------------------------------


def _write_examples(df: pd.DataFrame, path: str) -> None:
  with tf.io.TFRecordWriter(path) as writer:
    for row in df.itertuples(index=False):
      feature = {
          col: tf.train.Feature(float_list=tf.train.FloatList(value=[val]))
          for col, val in zip(df.columns, row)
      }
      writer.write(
          tf.train.Example(features=tf.train.Features(
              feature=feature)).SerializeToString())


def _values(result: tfma.EvalResult, output_name: str) -> dict:
  (slice_key, by_output), = result.slicing_metrics
  assert slice_key == ()
  return {k: v['doubleValue'] for k, v in by_output[output_name][''].items()}


def _assert_matches_numpy(values: dict, labels: np.ndarray,
                          predictions: np.ndarray) -> None:
  assert values['normalized_gini'] == pytest.approx(
      metrics.normalized_gini(labels, predictions), abs=1e-6)
  rows = metrics.decile_table(labels, predictions)
  for row in rows:
    prefix = f'decile_{row["decile"]:02d}'
    assert values[f'{prefix}_mean_prediction'] == pytest.approx(
        row['mean_prediction'], abs=1e-6)
    assert values[f'{prefix}_mean_label'] == pytest.approx(
        row['mean_label'], abs=1e-6)
  assert values['mean_absolute_error'] == pytest.approx(
      np.abs(labels - predictions).mean(), abs=1e-4)


@pytest.fixture(name='data')
def fixture_data(tmp_path) -> tuple:
  rng = np.random.default_rng(0)
  label = rng.gamma(1.0, 10.0, 200) * (rng.random(200) < 0.5)
  # float32 up front: tf.Example FloatList stores float32.
  df = pd.DataFrame({
      'label': label,
      'predicted_value': label * 0.5 + rng.normal(0.0, 5.0, 200),
      'mean_baseline': np.full(200, label.mean()),
  }).astype(np.float32)
  path = str(tmp_path / 'examples.tfrecord')
  _write_examples(df, path)
  return df, path


def test_tfma_model_agnostic_two_prediction_outputs(data, tmp_path):
  df, path = data
  eval_config = tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(
              label_keys={name: 'label' for name in OUTPUTS},
              prediction_keys={name: name for name in OUTPUTS})
      ],
      metrics_specs=[
          tfma.MetricsSpec(metrics=CUSTOM_METRICS, output_names=list(OUTPUTS))
      ],
      slicing_specs=[tfma.SlicingSpec()])
  output_path = str(tmp_path / 'eval')
  tfma.run_model_analysis(
      eval_config=eval_config, data_location=path, output_path=output_path)
  result = tfma.load_eval_result(output_path)

  labels = df['label'].to_numpy()
  for name in OUTPUTS:
    _assert_matches_numpy(_values(result, name), labels, df[name].to_numpy())
  baseline = _values(result, 'mean_baseline')
  assert baseline['normalized_gini'] == 0.0
  assert _values(result, 'predicted_value')['normalized_gini'] > 0.5


def test_tfma_two_model_specs(data, tmp_path):
  df, path = data
  eval_config = tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(
              name='dnn', label_key='label', prediction_key='predicted_value'),
          tfma.ModelSpec(
              name='baseline', label_key='label',
              prediction_key='mean_baseline'),
      ],
      metrics_specs=[
          tfma.MetricsSpec(
              metrics=CUSTOM_METRICS, model_names=['dnn', 'baseline'])
      ],
      slicing_specs=[tfma.SlicingSpec()])
  output_path = str(tmp_path / 'eval')
  tfma.run_model_analysis(
      eval_config=eval_config, data_location=path, output_path=output_path)

  labels = df['label'].to_numpy()
  for model_name, column in (('dnn', 'predicted_value'),
                             ('baseline', 'mean_baseline')):
    result = tfma.load_eval_result(output_path, model_name=model_name)
    _assert_matches_numpy(_values(result, ''), labels, df[column].to_numpy())
  baseline = tfma.load_eval_result(output_path, model_name='baseline')
  assert _values(baseline, '')['normalized_gini'] == 0.0


def _save_keras_model(path: str, scale: float, constant: float) -> None:
  """Saves a two-output model: scale * predicted_value and a constant."""
  inputs = tf_keras.Input(shape=(1,), name='predicted_value')
  outputs = {
      'predicted_value':
          tf_keras.layers.Dense(
              1, kernel_initializer=tf_keras.initializers.Constant(scale),
              use_bias=False)(inputs),
      'mean_baseline':
          tf_keras.layers.Dense(
              1, kernel_initializer='zeros',
              bias_initializer=tf_keras.initializers.Constant(constant))(
                  inputs),
  }
  tf_keras.Model(inputs, outputs).save(path, save_format='tf')


def test_tfma_keras_multi_output_candidate_vs_baseline(data, tmp_path):
  df, path = data
  _save_keras_model(str(tmp_path / 'candidate'), scale=1.0, constant=3.0)
  _save_keras_model(str(tmp_path / 'baseline'), scale=-1.0, constant=2.0)
  gated = [
      tfma.MetricConfig(
          class_name='NormalizedGini',
          module='pipelines.metrics',
          threshold=tfma.MetricThreshold(
              value_threshold=tfma.GenericValueThreshold(
                  lower_bound={'value': 0.0}),
              change_threshold=tfma.GenericChangeThreshold(
                  direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                  absolute={'value': 0.0}))),
      CUSTOM_METRICS[1],
      CUSTOM_METRICS[2],
  ]
  label_keys = {name: 'label' for name in OUTPUTS}
  eval_config = tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(name='candidate', label_keys=label_keys),
          tfma.ModelSpec(
              name='baseline', label_keys=label_keys, is_baseline=True),
      ],
      metrics_specs=[
          tfma.MetricsSpec(metrics=gated, output_names=['predicted_value']),
          tfma.MetricsSpec(
              metrics=CUSTOM_METRICS,
              output_names=['mean_baseline'],
              model_names=['candidate']),
      ],
      slicing_specs=[tfma.SlicingSpec()])
  output_path = str(tmp_path / 'eval')
  tfma.run_model_analysis(
      eval_shared_model=[
          tfma.default_eval_shared_model(
              eval_saved_model_path=str(tmp_path / name),
              model_name=name,
              eval_config=eval_config) for name in ('candidate', 'baseline')
      ],
      eval_config=eval_config,
      data_location=path,
      output_path=output_path)

  labels = df['label'].to_numpy()
  predictions = df['predicted_value'].to_numpy()
  candidate = tfma.load_eval_result(output_path, model_name='candidate')
  values = _values(candidate, 'predicted_value')
  _assert_matches_numpy(values, labels, predictions)
  _assert_matches_numpy(
      _values(candidate, 'mean_baseline'), labels, np.full(len(df), 3.0))
  assert _values(candidate, 'mean_baseline')['normalized_gini'] == 0.0
  gini = metrics.normalized_gini(labels, predictions)
  assert values['normalized_gini_diff'] == pytest.approx(
      gini - metrics.normalized_gini(labels, -predictions), abs=1e-6)
  assert values['decile_01_mean_label_diff'] == pytest.approx(
      metrics.decile_table(labels, predictions)[0]['mean_label'] -
      metrics.decile_table(labels, -predictions)[0]['mean_label'], abs=1e-6)
  baseline = tfma.load_eval_result(output_path, model_name='baseline')
  assert _values(baseline, 'predicted_value')['normalized_gini'] == (
      pytest.approx(-gini, abs=1e-6))
  assert tfma.load_validation_result(output_path).validation_ok
