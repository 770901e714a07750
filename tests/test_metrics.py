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
# The third predictor of the CLV evaluation: a BTYD model's CLV, stored as a
# feature of the evaluated examples.
BTYD_METRIC = tfma.MetricConfig(
    class_name='FeaturePredictionMetrics',
    module='pipelines.metrics',
    config='{"feature": "btyd_clv", "prefix": "btyd"}')


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
    (BTYD_METRIC, metrics.FeaturePredictionMetrics),
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


def test_feature_prediction_metrics_config():
  instance = metric_specs.metric_instance(BTYD_METRIC)
  assert instance.get_config() == {
      'feature': 'btyd_clv', 'prefix': 'btyd',
      'name': 'feature_prediction_metrics'}
  assert metrics.FeaturePredictionMetrics().get_config() == (
      instance.get_config())
  other = metrics.FeaturePredictionMetrics.from_config(
      {'feature': 'pareto_clv', 'prefix': 'pnbd', 'name': 'pnbd_metrics'})
  computation, = other.computations(
      model_names=['candidate'], output_names=['predicted_value'])
  assert [k.name for k in computation.keys] == (
      metrics.feature_prediction_metric_names('pnbd'))
  assert {k.model_name for k in computation.keys} == {'candidate'}
  assert {k.output_name for k in computation.keys} == {'predicted_value'}
  preprocessor, = computation.preprocessors
  assert preprocessor.include_filter['features'] == {'pareto_clv': {}}
  with pytest.raises(ValueError, match='prefix'):
    metrics.FeaturePredictionMetrics(prefix='')
  with pytest.raises(ValueError, match='feature'):
    metrics.FeaturePredictionMetrics(feature='')


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


def test_feature_prediction_metric_names():
  names = metrics.feature_prediction_metric_names('btyd')
  assert len(names) == len(set(names)) == 26
  assert names[:6] == [
      'btyd_example_count', 'btyd_mean_absolute_error',
      'btyd_root_mean_squared_error', 'btyd_mean_prediction',
      'btyd_mean_label', 'btyd_normalized_gini']
  assert names[6] == 'btyd_decile_01_mean_prediction'
  assert names[-1] == 'btyd_decile_10_mean_label'


def test_regression_summary_is_order_invariant_and_handles_empty():
  rng = np.random.default_rng(6)
  labels = rng.gamma(1.0, 10.0, 101)
  predictions = rng.integers(0, 5, 101).astype(float)
  expected = metrics.regression_summary(labels, predictions)
  assert expected['example_count'] == 101
  assert expected['root_mean_squared_error'] == pytest.approx(
      np.sqrt(np.mean((labels - predictions)**2)))
  perm = rng.permutation(101)
  assert metrics.regression_summary(labels[perm], predictions[perm]) == (
      expected)
  empty = metrics.regression_summary([], [])
  assert empty['example_count'] == 0
  assert all(math.isnan(empty[k]) for k in metrics.REGRESSION_STATS[1:])


def _expected_btyd(labels: np.ndarray, btyd: np.ndarray) -> dict:
  """The 26 btyd_* values, computed with NumPy directly."""
  labels = np.asarray(labels, dtype=np.float64)
  btyd = np.asarray(btyd, dtype=np.float64)
  expected = {
      'btyd_example_count': float(len(labels)),
      'btyd_mean_absolute_error': np.abs(btyd - labels).mean(),
      'btyd_root_mean_squared_error': np.sqrt(np.square(btyd - labels).mean()),
      'btyd_mean_prediction': btyd.mean(),
      'btyd_mean_label': labels.mean(),
      'btyd_normalized_gini': metrics.normalized_gini(labels, btyd),
  }
  for row in metrics.decile_table(labels, btyd):
    for stat in ('mean_prediction', 'mean_label'):
      expected[f'btyd_decile_{row["decile"]:02d}_{stat}'] = row[stat]
  assert sorted(expected) == sorted(
      metrics.feature_prediction_metric_names('btyd'))
  return expected


def _feature_inputs(label, prediction, btyd, model_name, output_name):
  inputs = {'labels': np.array([label], dtype=np.float32),
            'predictions': np.array([prediction], dtype=np.float32)}
  if output_name:
    inputs = {k: {output_name: v} for k, v in inputs.items()}
  if model_name:
    inputs = {k: {model_name: v} for k, v in inputs.items()}
  features = {} if btyd is None else {
      'btyd_clv': np.array([btyd], dtype=np.float32)}
  return metric_types.StandardMetricInputs(features=features, **inputs)


@pytest.mark.parametrize('model_name,output_name', [
    ('', ''), ('candidate', 'predicted_value')])
def test_feature_prediction_combiner_reads_feature_and_label(
    model_name, output_name):
  rng = np.random.default_rng(7)
  labels = rng.gamma(1.0, 10.0, 60).astype(np.float32)
  btyd = rng.integers(0, 8, 60).astype(np.float32)  # Ties.
  model_predictions = -labels  # Must not be used.
  metric = metric_specs.metric_instance(BTYD_METRIC)
  computation, = metric.computations(
      model_names=[model_name], output_names=[output_name])
  combiner = pickle.loads(pickle.dumps(computation.combiner))
  results = []
  for order in (np.arange(60), rng.permutation(60)):
    accumulators = []
    for part in np.array_split(order, 3):
      acc = combiner.create_accumulator()
      for i in part:
        acc = combiner.add_input(acc, _feature_inputs(
            labels[i], model_predictions[i], btyd[i], model_name,
            output_name))
      accumulators.append(acc)
    results.append(combiner.extract_output(
        combiner.merge_accumulators(accumulators)))
  assert results[0] == results[1]  # Bit-identical for any input order.
  expected = _expected_btyd(labels, btyd)
  for key, value in results[0].items():
    assert (key.model_name, key.output_name) == (model_name, output_name)
    assert value == pytest.approx(expected[key.name], abs=1e-9), key.name


def test_feature_prediction_combiner_rejects_missing_feature():
  computation, = metrics.FeaturePredictionMetrics().computations(
      output_names=['predicted_value'])
  combiner = computation.combiner
  acc = combiner.create_accumulator()
  with pytest.raises(ValueError, match="feature 'btyd_clv'"):
    combiner.add_input(acc, _feature_inputs(1.0, 1.0, None, '',
                                            'predicted_value'))
  inputs = _feature_inputs(1.0, 1.0, 2.0, '', 'predicted_value')
  inputs['features']['btyd_clv'] = np.array([], dtype=np.float32)
  with pytest.raises(ValueError, match="feature 'btyd_clv'"):
    combiner.add_input(acc, inputs)


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


def _assert_btyd_matches_numpy(values: dict, labels: np.ndarray,
                               btyd: np.ndarray) -> None:
  expected = _expected_btyd(labels, btyd)
  assert sorted(k for k in values if k.startswith('btyd_')) == sorted(expected)
  for name, value in expected.items():
    assert values[name] == pytest.approx(value, abs=1e-6), name


@pytest.fixture(name='data')
def fixture_data(tmp_path) -> tuple:
  rng = np.random.default_rng(0)
  label = rng.gamma(1.0, 10.0, 200) * (rng.random(200) < 0.5)
  # float32 up front: tf.Example FloatList stores float32.
  df = pd.DataFrame({
      'label': label,
      'predicted_value': label * 0.5 + rng.normal(0.0, 5.0, 200),
      'mean_baseline': np.full(200, label.mean()),
      # A BTYD model's CLV, a feature of the examples; rounded for ties.
      'btyd_clv': np.round(label * 0.4 + rng.gamma(2.0, 3.0, 200)),
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
          tfma.MetricsSpec(metrics=CUSTOM_METRICS, output_names=list(OUTPUTS)),
          # No model is named here: the keys go to the unnamed model.
          tfma.MetricsSpec(
              metrics=[BTYD_METRIC], output_names=['predicted_value']),
      ],
      slicing_specs=[tfma.SlicingSpec()])
  output_path = str(tmp_path / 'eval')
  tfma.run_model_analysis(
      eval_config=eval_config, data_location=path, output_path=output_path)
  result = tfma.load_eval_result(output_path)

  labels = df['label'].to_numpy()
  for name in OUTPUTS:
    _assert_matches_numpy(_values(result, name), labels, df[name].to_numpy())
  _assert_btyd_matches_numpy(
      _values(result, 'predicted_value'), labels, df['btyd_clv'].to_numpy())
  assert not any(k.startswith('btyd_') for k in _values(result, 'mean_baseline'))
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


def test_tfma_missing_prediction_feature_fails_naming_it(data, tmp_path):
  df, _ = data
  df = df.head(20)
  (tmp_path / 'missing').mkdir()
  _write_examples(df, str(tmp_path / 'missing' / 'with.tfrecord'))
  # Plus one example without btyd_clv.
  _write_examples(df.drop(columns=['btyd_clv']).head(1),
                  str(tmp_path / 'missing' / 'without.tfrecord'))
  eval_config = tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(label_key='label', prediction_key='predicted_value')
      ],
      metrics_specs=[tfma.MetricsSpec(metrics=[BTYD_METRIC])],
      slicing_specs=[tfma.SlicingSpec()])
  with pytest.raises(Exception) as raised:
    tfma.run_model_analysis(
        eval_config=eval_config,
        data_location=str(tmp_path / 'missing' / '*.tfrecord'),
        output_path=str(tmp_path / 'eval'))
  # TFMA wraps the metric's error in a RuntimeError ('add_input failed on
  # <combiner>') raised `from` it; the top message names the combiner.
  assert "feature='btyd_clv'" in str(raised.value)
  chain, error = [], raised.value
  while error is not None:
    chain.append(error)
    error = error.__cause__ or error.__context__
  assert any(
      isinstance(e, ValueError) and
      "no value for feature 'btyd_clv'" in str(e) for e in chain), chain


def _save_keras_model(path: str, scale: float, constant: float) -> None:
  """Saves a two-output model: scale * predicted_value and a constant.

  Like the CLV Trainer's model, its serving_default signature takes
  serialized tf.Examples and returns {'predicted_value', 'mean_baseline'}.
  """
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
  model = tf_keras.Model(inputs, outputs)

  @tf.function(input_signature=[
      tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def serve(serialized_examples):
    features = tf.io.parse_example(
        serialized_examples,
        {'predicted_value': tf.io.FixedLenFeature([1], tf.float32)})
    return model(features['predicted_value'])

  model.save(path, save_format='tf', signatures={'serving_default': serve})


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
          tfma.ModelSpec(
              name='candidate', signature_name='serving_default',
              label_keys=label_keys),
          tfma.ModelSpec(
              name='baseline', signature_name='serving_default',
              label_keys=label_keys, is_baseline=True),
      ],
      metrics_specs=[
          tfma.MetricsSpec(metrics=gated, output_names=['predicted_value']),
          tfma.MetricsSpec(
              metrics=CUSTOM_METRICS,
              output_names=['mean_baseline'],
              model_names=['candidate']),
          # The BTYD predictor, scored in the same evaluation.
          tfma.MetricsSpec(
              metrics=[BTYD_METRIC],
              output_names=['predicted_value'],
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

  # BTYD: under model 'candidate', output 'predicted_value' only; no diffs.
  _assert_btyd_matches_numpy(values, labels, df['btyd_clv'].to_numpy())
  assert not any(k.startswith('btyd_') and k.endswith('_diff') for k in values)
  assert not any(k.startswith('btyd_')
                 for k in _values(candidate, 'mean_baseline'))
  assert not any(k.startswith('btyd_')
                 for k in _values(baseline, 'predicted_value'))
