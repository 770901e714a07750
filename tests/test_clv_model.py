"""preprocessing_fn run by TFT on a small frame; the DNN builds; the ZILN loss matches a NumPy reference."""
import math
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from modules import clv

NUMERIC = clv.LOG_FEATURES + clv.LINEAR_FEATURES


def _rows():
  return [{**{name: float(i + j) for j, name in enumerate(NUMERIC)}, clv.MONTH_FEATURE: (i % 12) + 1,
           clv.LABEL: float(i * 3), clv.KEY: f'c{i}'.encode()} for i in range(8)]


def test_preprocessing_fn_with_tft():
  feature_spec = {name: tf.io.FixedLenFeature([], tf.float32) for name in NUMERIC + [clv.LABEL]}
  feature_spec[clv.MONTH_FEATURE] = tf.io.FixedLenFeature([], tf.int64)
  feature_spec[clv.KEY] = tf.io.FixedLenFeature([], tf.string)
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
  rows = _rows()
  with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    (transformed, _), _ = ((rows, metadata) | tft_beam.AnalyzeAndTransformDataset(clv.preprocessing_fn))
  for name in ('spend_last_90', 'days_since_last'):
    values = np.array([r[name] for r in transformed]).reshape(-1)
    logged = np.log1p([r[name] for r in rows])
    np.testing.assert_allclose(values, (logged - logged.mean()) / logged.std(), rtol=1e-4)
  # inputs that grow with the customer's age are not model inputs (scoring older customers would extrapolate)
  assert not {'T', 'recency', 'frequency', 'total_spend'} & set(transformed[0])
  months = np.array([r[clv.MONTH_FEATURE] for r in transformed])
  assert months.shape == (8, 12)
  assert months[2].argmax() == 2 and months[2].sum() == 1
  np.testing.assert_allclose(np.array([r[clv.LABEL] for r in transformed]).reshape(-1),
                             [r[clv.LABEL] for r in rows])


def test_training_rows_are_put_in_key_order_whatever_the_input_order():
  keys = np.array([b'7', b'3', b'12', b'5'])
  features = {clv.KEY: keys, 'recency': np.array([[7.0], [3.0], [12.0], [5.0]])}
  labels = np.array([[70.0], [30.0], [120.0], [50.0]])
  sorted_features, sorted_labels = clv.in_key_order(features, labels)
  shuffled = np.array([2, 0, 3, 1])
  again_features, again_labels = clv.in_key_order({k: v[shuffled] for k, v in features.items()}, labels[shuffled])
  np.testing.assert_array_equal(sorted_features[clv.KEY], [b'12', b'3', b'5', b'7'])
  np.testing.assert_array_equal(sorted_labels.reshape(-1), [120.0, 30.0, 50.0, 70.0])
  np.testing.assert_array_equal(sorted_features['recency'].reshape(-1), sorted_labels.reshape(-1) / 10)
  for name in features:
    np.testing.assert_array_equal(again_features[name], sorted_features[name])
  np.testing.assert_array_equal(again_labels, sorted_labels)


def _numpy_ziln(label, logits):
  p = 1 / (1 + math.exp(-logits[0]))
  positive = 1.0 if label > 0 else 0.0
  bce = -(positive * math.log(p) + (1 - positive) * math.log(1 - p))
  sigma = max(math.log1p(math.exp(logits[2])), math.sqrt(1e-7))
  if not positive:
    return bce
  log_pdf = (-math.log(label * sigma * math.sqrt(2 * math.pi)) - (math.log(label) - logits[1]) ** 2 / (2 * sigma ** 2))
  return bce - log_pdf


def test_ziln_loss_matches_numpy_reference():
  labels = np.array([0.0, 1.0, 12.5, 300.0], dtype=np.float32)
  logits = np.array([[0.3, 0.0, 1.0], [-1.0, 0.5, -0.2], [2.0, 2.5, 0.7], [0.1, 5.0, 1.5]], dtype=np.float32)
  got = clv.ziln_loss(tf.constant(labels.reshape(-1, 1)), tf.constant(logits)).numpy()
  expected = [_numpy_ziln(float(l), [float(v) for v in row]) for l, row in zip(labels, logits)]
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  expected_value = clv.ziln_expected_value(tf.constant(logits)).numpy()
  p = 1 / (1 + np.exp(-logits[:, 0]))
  sigma = np.log1p(np.exp(logits[:, 2]))
  np.testing.assert_allclose(expected_value, p * np.exp(logits[:, 1] + sigma ** 2 / 2), rtol=1e-5)


def test_model_builds_and_starts_at_the_initial_bias():
  widths = {name: 1 for name in NUMERIC}
  widths[clv.MONTH_FEATURE] = 12
  labels = tf.constant([0.0, 10.0, 20.0, 30.0])
  for loss, outputs in (('mse', 1), ('ziln', 3)):
    bias = clv.initial_output_bias(labels, loss)
    model = clv.build_model(widths, [8, 4], 0.1, loss, bias)
    batch = {name: tf.zeros([5, width]) for name, width in widths.items()}
    assert model(batch).shape == (5, outputs)
    np.testing.assert_allclose(model.get_layer('output').bias.numpy(), bias, rtol=1e-6)
  assert clv.initial_output_bias(labels, 'mse') == [15.0]
  share_logit, mean_log, _ = clv.initial_output_bias(labels, 'ziln')
  assert abs(share_logit - math.log(0.75 / 0.25)) < 1e-5
  assert abs(mean_log - np.mean(np.log([10.0, 20.0, 30.0]))) < 1e-5
