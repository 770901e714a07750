"""modules.attribution: the TFT campaign vocabulary, masked attention, oversampling."""
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from modules import attribution as module

L = 4


def test_preprocessing_fn_vocabulary_leaves_padding_out():
  feature_spec = {module.CAMPAIGNS: tf.io.FixedLenFeature([L], tf.string),
                  module.MASK: tf.io.FixedLenFeature([L], tf.int64),
                  module.HOURS: tf.io.FixedLenFeature([L], tf.float32),
                  module.SPAN: tf.io.FixedLenFeature([], tf.float32),
                  module.EARLIER_JOURNEYS: tf.io.FixedLenFeature([], tf.int64),
                  module.EARLIER_HOURS: tf.io.FixedLenFeature([], tf.float32),
                  module.KEY: tf.io.FixedLenFeature([], tf.string),
                  module.LABEL: tf.io.FixedLenFeature([], tf.int64)}
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
  rows = [{module.CAMPAIGNS: [b'b', b'a', b'b', b''], module.MASK: [1, 1, 1, 0], module.HOURS: [2.0, 1.0, 0.0, 0.0],
           module.SPAN: 5.0, module.EARLIER_JOURNEYS: 0, module.EARLIER_HOURS: 0.0, module.KEY: b'u1/0',
           module.LABEL: 1},
          {module.CAMPAIGNS: [b'b', b'', b'', b''], module.MASK: [1, 0, 0, 0], module.HOURS: [0.0] * 4,
           module.SPAN: 0.0, module.EARLIER_JOURNEYS: 2, module.EARLIER_HOURS: 30.0, module.KEY: b'u2/2',
           module.LABEL: 0}]
  with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    (transformed, _), transform_fn = ((rows, metadata) | tft_beam.AnalyzeAndTransformDataset(module.preprocessing_fn))
  # Vocabulary by frequency: b (3), a (1); indices shifted by 1 (0 is padding).
  assert [list(r[module.CAMPAIGN_INDEX]) for r in transformed] == [[1, 2, 1, 0], [1, 0, 0, 0]]
  np.testing.assert_allclose(transformed[0][module.LOG_HOURS], np.log1p([2.0, 1.0, 0.0, 0.0]), rtol=1e-6)
  assert [float(np.ravel(r[module.LOG_SPAN])[0]) for r in transformed] == pytest.approx([np.log1p(5.0), 0.0])
  assert [float(np.ravel(r[module.LABEL])[0]) for r in transformed] == [1.0, 0.0]
  # The user's past: log1p of the earlier journeys and of the hours from the first touch to this journey.
  np.testing.assert_allclose([np.ravel(r[module.HISTORY]) for r in transformed],
                             [[0.0, 0.0], [np.log1p(2.0), np.log1p(30.0)]], rtol=1e-6)
  del transform_fn


def _attention_model(vocabulary_size=5):
  tf.keras.utils.set_random_seed(0)
  return module.build_model(vocabulary_size, L, embedding_dim=4, rnn_units=6, attention_units=3)


def _history(rows, value=0.0):
  return np.full((rows, module.HISTORY_SIZE), value, np.float32)


def test_padded_positions_get_zero_attention_and_real_ones_sum_to_one():
  model = _attention_model()
  index = np.array([[2, 3, 4, 0], [5, 0, 0, 0], [2, 2, 2, 2]], np.int64)
  hours = np.log1p(np.array([[3.0, 2.0, 0.0, 0.0], [0.0] * 4, [9.0, 5.0, 1.0, 0.0]], np.float32))
  weights = model({module.CAMPAIGN_INDEX: index, module.LOG_HOURS: hours,
                   module.LOG_SPAN: np.ones((3, 1), np.float32), module.HISTORY: _history(3)})['attention'].numpy()
  assert weights.shape == (3, L)
  assert np.all(weights[index == 0] == 0.0)
  assert np.all(weights[index > 0] > 0.0)
  np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(weights[1], [1.0, 0.0, 0.0, 0.0])


def test_what_follows_the_padding_does_not_change_the_prediction():
  """Masking: a padded position's hours value (garbage) changes neither the prediction nor the attention."""
  model = _attention_model()
  index = np.array([[2, 3, 0, 0]] * 2, np.int64)
  hours = np.array([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 7.0, -3.0]], np.float32)
  outputs = model({module.CAMPAIGN_INDEX: index, module.LOG_HOURS: hours, module.LOG_SPAN: np.ones((2, 1), np.float32),
                   module.HISTORY: _history(2)})
  np.testing.assert_allclose(outputs['logit'][0], outputs['logit'][1], rtol=1e-6)
  np.testing.assert_allclose(outputs['attention'][0], outputs['attention'][1], rtol=1e-6)


def test_touches_only_add_to_the_odds_and_no_touches_leaves_the_span_term():
  """Every touch adds non-negative log-odds, so withholding touches never raises the prediction, and a journey
  without touches gets exactly the span term (the same for any hours at padded positions)."""
  model = _attention_model()
  span = np.full((3, 1), 2.0, np.float32)
  index = np.array([[2, 3, 4, 0], [2, 4, 0, 0], [0, 0, 0, 0]], np.int64)
  hours = np.array([[2.0, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0]], np.float32)
  logit = model({module.CAMPAIGN_INDEX: index, module.LOG_HOURS: hours, module.LOG_SPAN: span,
                 module.HISTORY: _history(3)})['logit'].numpy()
  base = model.get_layer('base_logit')(model.get_layer('span_hidden')(span)).numpy()
  np.testing.assert_allclose(logit[2], base[2], rtol=1e-6)
  assert logit[0, 0] >= base[0, 0] and logit[1, 0] >= base[1, 0]


def test_an_ensemble_averages_its_members_and_keeps_the_no_touch_meaning():
  """The ensemble's logit is the mean of its members' (so a journey without touches is the mean span term),
  its attention the mean of theirs (still summing to 1 over the real touches); one member is itself."""
  members = [_attention_model(), module.build_model(5, L, embedding_dim=4, rnn_units=6, attention_units=3)]
  model = module.ensemble(members)
  inputs = {module.CAMPAIGN_INDEX: np.array([[2, 3, 4, 0], [0, 0, 0, 0]], np.int64),
            module.LOG_HOURS: np.array([[2.0, 1.0, 0.0, 0.0], [0.0] * 4], np.float32),
            module.LOG_SPAN: np.full((2, 1), 2.0, np.float32), module.HISTORY: _history(2)}
  outputs = [m(inputs) for m in members]
  combined = model(inputs)
  np.testing.assert_allclose(combined['logit'], (outputs[0]['logit'] + outputs[1]['logit']) / 2, rtol=1e-5)
  assert not np.allclose(outputs[0]['logit'], outputs[1]['logit'])  # two different members
  base = np.mean([m.get_layer('base_logit')(m.get_layer('span_hidden')(inputs[module.LOG_SPAN])).numpy()
                  for m in members], axis=0)
  np.testing.assert_allclose(combined['logit'][1], base[1], rtol=1e-5)
  np.testing.assert_allclose(combined['attention'].numpy()[0].sum(), 1.0, rtol=1e-5)
  assert module.ensemble(members[:1]) is members[0]


def test_the_users_history_moves_the_odds_but_not_what_the_touches_add():
  """The history shifts every journey's log-odds by w . history, with or without its touches, so a counterfactual
  that keeps it credits the touches the same: the user's past is explained by w, not by the campaigns."""
  model = _attention_model()
  index = np.array([[2, 3, 4, 0], [0, 0, 0, 0]], np.int64)
  hours = np.array([[2.0, 1.0, 0.0, 0.0], [0.0] * 4], np.float32)
  span = np.full((2, 1), 2.0, np.float32)

  def logit(history):
    return model({module.CAMPAIGN_INDEX: index, module.LOG_HOURS: hours, module.LOG_SPAN: span,
                  module.HISTORY: history})['logit'].numpy()[:, 0]

  model.get_layer('history_logit').set_weights([np.array([[0.5], [-0.25]], np.float32), np.zeros(1, np.float32)])
  past = np.array([[np.log1p(2.0), np.log1p(100.0)]] * 2, np.float32)
  shift = 0.5 * past[0, 0] - 0.25 * past[0, 1]
  np.testing.assert_allclose(logit(past) - logit(_history(2)), [shift, shift], rtol=1e-5)
  with_touches, without = logit(past)
  assert with_touches - without == pytest.approx(np.subtract(*logit(_history(2))), rel=1e-5)


def test_touch_log_odds_tell_a_collapsed_model():
  """A member whose touch terms died (softplus far below zero) adds ~0 log-odds and is caught; a live one is not."""
  model = _attention_model()
  features = {module.CAMPAIGN_INDEX: np.array([[2, 3, 0, 0], [4, 0, 0, 0]], np.int64),
              module.LOG_HOURS: np.zeros((2, L), np.float32), module.LOG_SPAN: np.ones((2, 1), np.float32),
              module.HISTORY: _history(2), 'unused': np.zeros(2)}
  assert module.touch_log_odds(model, features) > module.COLLAPSED_LOG_ODDS
  kernel, _ = model.get_layer('touch_contribution').get_weights()
  model.get_layer('touch_contribution').set_weights([kernel * 0.0, np.array([-30.0], np.float32)])
  assert 0.0 <= module.touch_log_odds(model, features) < module.COLLAPSED_LOG_ODDS


def test_campaign_counts_leave_padding_out():
  counts = module.campaign_counts(tf.constant([[2, 2, 1, 0], [3, 0, 0, 0]], tf.int64), vocabulary_size=2).numpy()
  np.testing.assert_array_equal(counts, [[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])  # first, second campaign, unknown


def test_oversampling_reaches_the_ratio_and_keeps_every_row():
  labels = np.array([1.0] * 10 + [0.0] * 90)
  rows, factor = module.oversampled(labels, 0.3, seed=1)
  assert labels[rows].mean() == pytest.approx(0.3, abs=0.005)
  assert set(rows) == set(range(100)) and np.sum(labels[rows] == 0) == 90
  assert factor == pytest.approx(np.sum(labels[rows]) / 10)
  assert np.array_equal(rows, module.oversampled(labels, 0.3, seed=1)[0])  # seeded
  assert module.oversampled(labels, 0.05, seed=1)[1] == 1.0  # ratio already met: unchanged
  assert module.oversampled(labels, 0.0, seed=1)[1] == 1.0
