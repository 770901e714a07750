"""Attribution module file: journeys from impressions, the campaign vocabulary, the conversion model, its evaluation.

Read top to bottom: build_examples (Beam, used by ExamplesBuilder) -> preprocessing_fn (Transform)
-> run_fn (Trainer) -> eval_config (Evaluator).

Input rows: uid, timestamp (epoch seconds), campaign (any string), conversion (0/1: a conversion followed this
impression). Per uid, impressions in time order form journeys; a conversion closes one. A journey longer than
`journey_max_length` keeps its last touches (those nearest the conversion); the dropped ones are counted. Every
journey is padded to `journey_max_length` with a mask.
"""
import hashlib
import math
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import apache_beam as beam
import keras_tuner
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from pipelines import metrics, tuning
from pipelines.components.examples_builder import BuiltExamples
from pipelines.parsing import parse_finite_float

KEY = 'journey_id'
LABEL = 'converted'
CAMPAIGNS = 'campaigns'
MASK = 'mask'
POSITION = 'position'
HOURS = 'hours_before_end'
SPAN = 'span_hours'  # hours from the journey's start (the user's previous conversion, else first touch) to its end
EARLIER_JOURNEYS = 'conversion_id'  # the user's journeys before this one: each ended in a conversion
EARLIER_HOURS = 'user_hours_before_start'  # hours from the user's first touch to this journey's start
ALL_CAMPAIGNS = 'journey_campaigns'        # every touch of the journey, the truncated ones included (report only)
ALL_HOURS = 'journey_hours_before_end'
PAD_CAMPAIGN = ''
# Transform outputs
CAMPAIGN_INDEX = 'campaign_index'  # 0 = padding, 1..V = vocabulary order, V + 1 = campaign not in the vocabulary
LOG_HOURS = 'log_hours_before_end'
LOG_SPAN = 'log_span_hours'
# [B, 2] log1p of the earlier journeys and hours: the user's past, a proxy for a persistent engagement that drives
# both exposure and purchases; a journey's counterfactuals remove its own touches and keep it.
HISTORY = 'user_history'
HISTORY_SIZE = 2
VOCABULARY = 'campaign'
# Model outputs
PREDICTION = 'conversion_probability'
LR_PREDICTION = 'lr_probability'  # logistic regression on campaign counts + user history: the baseline
ATTENTION = 'attention_weights'
# The same journey's conversion probability with every touch removed: what it converts at without campaigns.
BASE_PREDICTION = 'base_probability'
ATTENTION_SIGNATURE = 'attention'
# Serialized journeys [J], rows [N] (the journey of each row) and keep [N, L] (1 = the touch at that position
# stays) -> conversion_probability [N] of each row's journey with only the kept touches: counterfactuals.
COUNTERFACTUAL_SIGNATURE = 'counterfactual'
SPLITS = (('train', 80), ('eval', 90), ('test', 100))  # cumulative percent of the journey-id hash
CONVERTING_SPLIT = 'converting'  # every converting journey (of all splits), for attention and the report

Touch = Tuple[int, str, int]  # (timestamp, campaign, conversion)


# ---------------------------------------------------------------------------------------------------
# build_examples: impressions -> padded journeys (train / eval / test, + converting) and rejected rows
# ---------------------------------------------------------------------------------------------------

def parse_impression(row: Dict[str, Any]) -> Tuple[Optional[Tuple[str, Touch]], Optional[str]]:
  """Returns ((uid, (timestamp, campaign, conversion)), None) or (None, reason). Accepts numbers or strings
  (BigQuery gives every column as a string): timestamp an integer number of seconds, conversion 0/1/true/false."""
  uid = row.get('uid')
  if uid is None or str(uid).strip() == '':
    return None, 'missing_uid'
  campaign = row.get('campaign')
  if campaign is None or str(campaign).strip() == '':
    return None, 'missing_campaign'
  try:
    timestamp = parse_finite_float(str(row.get('timestamp')).strip())
  except ValueError:
    return None, 'unparsable_timestamp'
  if not math.isfinite(timestamp) or timestamp != int(timestamp):
    return None, 'unparsable_timestamp'
  conversion = {'0': 0, '1': 1, '0.0': 0, '1.0': 1, 'false': 0, 'true': 1}.get(
      str(row.get('conversion')).strip().lower())
  if conversion is None:
    return None, 'unparsable_conversion'
  return (str(uid).strip(), (int(timestamp), str(campaign).strip(), conversion)), None


def journeys(uid: str, touches: Iterable[Touch], max_length: int) -> Iterator[Tuple[Dict[str, Any], List[Touch]]]:
  """The journeys of one user: (example, touches dropped by truncation), in time order.

  A conversion closes a journey (`converted` 1); impressions after the last conversion form a journey with
  `converted` 0. Ties in time put a converting impression last. conversion_id numbers the user's journeys
  from 0; journey_id = '<uid>/<conversion_id>'; span_hours: hours from the previous conversion (the first
  journey: its first touch) to the journey's last touch; user_hours_before_start: hours from the user's first touch
  to the previous conversion (0 for the first journey): with conversion_id, the user's past. Only the last
  `max_length` touches are kept; `position` is each kept touch's index in the whole journey, `hours_before_end` its
  hours before the journey's last touch; journey_campaigns and journey_hours_before_end list every touch.
  """
  current: List[Touch] = []
  conversion_id = 0
  start = None  # the previous conversion's time: the start of the user's next journey
  ordered = sorted(touches, key=lambda t: (t[0], t[2], t[1]))
  for touch in ordered:
    current.append(touch)
    if touch[2]:
      yield _journey(uid, conversion_id, current, max_length, 1, start, ordered[0][0])
      current, conversion_id, start = [], conversion_id + 1, touch[0]
  if current:
    yield _journey(uid, conversion_id, current, max_length, 0, start, ordered[0][0])


def _journey(uid: str, conversion_id: int, touches: List[Touch], max_length: int,
             converted: int, start: Optional[int], first_touch: int) -> Tuple[Dict[str, Any], List[Touch]]:
  kept, dropped = touches[-max_length:], touches[:-max_length]
  padding = max_length - len(kept)
  end = kept[-1][0]
  example = {
      # Time at risk, a property of the journey that withholding touches does not change: long journeys that
      # have not converted yet are long because they have not converted (the model must not read that as touches).
      SPAN: (end - (touches[0][0] if start is None else start)) / 3600.0,
      EARLIER_HOURS: 0.0 if start is None else (start - first_touch) / 3600.0,
      KEY: f'{uid}/{conversion_id}', 'uid': uid, EARLIER_JOURNEYS: conversion_id, LABEL: converted,
      'journey_length': len(kept), 'touches': len(touches), 'end_timestamp': end,
      CAMPAIGNS: [t[1] for t in kept] + [PAD_CAMPAIGN] * padding,
      MASK: [1] * len(kept) + [0] * padding,
      POSITION: list(range(len(dropped), len(touches))) + [-1] * padding,
      HOURS: [(end - t[0]) / 3600.0 for t in kept] + [0.0] * padding,
      # Not model inputs: the campaign report follows which touches triggered which over the whole journey.
      ALL_CAMPAIGNS: [t[1] for t in touches], ALL_HOURS: [(end - t[0]) / 3600.0 for t in touches],
  }
  return example, dropped


def assign_split(journey_id: str) -> str:
  """'train', 'eval' or 'test' (80/10/10) by a stable hash of the journey id."""
  bucket = int(hashlib.md5(journey_id.encode('utf-8')).hexdigest(), 16) % 100
  return next(name for name, upper in SPLITS if bucket < upper)


class _UserJourneys(beam.DoFn):
  """(uid, touches) -> journeys in their split (and in `converting`), truncated touches as rejected rows."""

  def __init__(self, max_length: int):
    self._max_length = max_length

  def process(self, element):
    uid, touches = element
    for example, dropped in journeys(uid, touches, self._max_length):
      for timestamp, campaign, conversion in dropped:
        yield beam.pvalue.TaggedOutput('rejected', {
            'reason': 'truncated_beyond_journey_max_length',
            'record': {'uid': uid, 'timestamp': timestamp, 'campaign': campaign, 'conversion': conversion,
                       KEY: example[KEY]}})
      yield beam.pvalue.TaggedOutput(assign_split(example[KEY]), example)
      if example[LABEL]:
        yield beam.pvalue.TaggedOutput(CONVERTING_SPLIT, example)


def _parse_or_reject(row: Dict[str, Any]):
  parsed, reason = parse_impression(row)
  if reason:
    yield beam.pvalue.TaggedOutput('rejected', {'reason': reason, 'record': row})
  else:
    yield parsed


def build_examples(rows: beam.PCollection, params: Dict[str, Any]) -> BuiltExamples:
  """Impressions -> one example per journey, padded to params['journey_max_length'].

  Splits train/eval/test (80/10/10 by journey-id hash) and `converting` (every converting journey again).
  Rejects: missing_uid, missing_campaign, unparsable_timestamp, unparsable_conversion (rows) and
  truncated_beyond_journey_max_length (touches a long journey dropped, with its journey_id).
  """
  # Per row, not in batches: impression logs come in time order, so a batch holds about one touch per user and
  # grouping within it saved nothing (measured: benchmarks/RESULTS.md, 2026-12-04).
  parsed = rows | 'Parse' >> beam.FlatMap(_parse_or_reject).with_outputs('rejected', main='valid')
  split_names = [name for name, _ in SPLITS] + [CONVERTING_SPLIT]
  built = (parsed.valid
           | 'GroupByUser' >> beam.GroupByKey()
           | 'Journeys' >> beam.ParDo(_UserJourneys(int(params['journey_max_length']))).with_outputs(
               *split_names, 'rejected'))
  rejected = (parsed.rejected, built.rejected) | 'FlattenRejected' >> beam.Flatten()
  return BuiltExamples(splits={name: built[name] for name in split_names}, rejected=rejected)


# ---------------------------------------------------------------------------------------------------
# preprocessing_fn (Transform): the campaign vocabulary is an asset of the transform graph
# ---------------------------------------------------------------------------------------------------

def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """campaign_index (0 padding, 1..V vocabulary, V + 1 unknown campaign) from a TFT vocabulary of the real touches,
  log1p of the hours before the journey's end, log1p of the span, the user's history (log1p of the earlier journeys
  and of the hours before this one), the mask, the key and the label."""
  mask = tf.cast(inputs[MASK], tf.int64)
  # Sparse over the real touches only, so the padding value never enters the vocabulary.
  real = tf.sparse.from_dense(tf.where(mask > 0, inputs[CAMPAIGNS], PAD_CAMPAIGN))
  index = tft.compute_and_apply_vocabulary(real, num_oov_buckets=1, vocab_filename=VOCABULARY)
  dense_index = tf.sparse.to_dense(index, default_value=-1)
  outputs = {
      CAMPAIGN_INDEX: tf.where(mask > 0, dense_index + 1, 0),
      LOG_HOURS: tf.math.log1p(tf.maximum(tf.cast(inputs[HOURS], tf.float32), 0.0)) * tf.cast(mask, tf.float32),
      LOG_SPAN: tf.reshape(tf.math.log1p(tf.maximum(tf.cast(inputs[SPAN], tf.float32), 0.0)), [-1, 1]),
      HISTORY: tf.concat([tf.reshape(tf.math.log1p(tf.maximum(tf.cast(inputs[name], tf.float32), 0.0)), [-1, 1])
                          for name in (EARLIER_JOURNEYS, EARLIER_HOURS)], axis=1),
      MASK: mask,
      KEY: tf.reshape(inputs[KEY], [-1]),  # not a model input: orders the training data
  }
  if LABEL in inputs:
    outputs[LABEL] = tf.reshape(tf.cast(inputs[LABEL], tf.float32), [-1, 1])
  return outputs


# ---------------------------------------------------------------------------------------------------
# run_fn (Trainer): embedding -> masked GRU -> touch contributions (+ span, user history) -> sigmoid; the LR baseline
# ---------------------------------------------------------------------------------------------------

class TouchShares(keras.layers.Layer):
  """(per-touch contributions [B, L, 1], campaign_index [B, L]) -> (their sum over the real touches [B, 1], each
  real touch's share of it [B, L]: the attention; zero at padded positions and for a journey without touches)."""

  def call(self, inputs, mask=None):  # pylint: disable=arguments-differ
    raw, index = inputs
    contributions = tf.squeeze(raw, -1) * tf.cast(index > 0, raw.dtype)
    total = tf.reduce_sum(contributions, axis=-1, keepdims=True)
    return total, contributions / tf.maximum(total, 1e-12)

  def compute_mask(self, inputs, mask=None):
    return None


def build_model(vocabulary_size: int, max_length: int, embedding_dim: int, rnn_units: int,
                attention_units: int, history_size: int = HISTORY_SIZE) -> keras.Model:
  """Inputs campaign_index, log_hours_before_end [B, L], log_span_hours [B, 1] and user_history [B, history_size]
  -> {'logit': [B, 1], 'attention': [B, L]}.

  logit = f(span) + w . history + sum over the real touches of c_t: the user's past (earlier journeys, time since
  the first touch) explains the part of a journey's odds a persistent engagement adds, which would otherwise go to
  the campaigns that follow the user's own behaviour (measured: docs/attribution.md). c_t = softplus(MLP(GRU state
  at t)) >= 0: each touch adds non-negative log-odds given the touches before it (order, repetition, saturation)
  and its hours before the end (recency), and a journey without touches is exactly f(span) + w . history, the
  model's answer to "what without the campaigns" that counterfactual credit needs (a GRU's zero state has no such
  meaning). attention = c_t / sum c_t.
  """
  index = keras.Input(shape=(max_length,), dtype=tf.int64, name=CAMPAIGN_INDEX)
  hours = keras.Input(shape=(max_length,), dtype=tf.float32, name=LOG_HOURS)
  span = keras.Input(shape=(1,), dtype=tf.float32, name=LOG_SPAN)
  mask = keras.layers.Lambda(lambda x: tf.greater(x, 0), name='mask')(index)
  embedded = keras.layers.Embedding(vocabulary_size + 2, embedding_dim, name='campaign_embedding')(index)
  hours_column = keras.layers.Reshape((max_length, 1))(hours)
  states = keras.layers.GRU(rnn_units, return_sequences=True, name='gru')(
      keras.layers.Concatenate()([embedded, hours_column]), mask=mask)
  hidden = keras.layers.Dense(attention_units, activation='relu', name='touch_hidden')(states)
  # A touch starts near softplus(-2) = 0.13, not 0.69; at -4 the gradient (sigmoid(-4) = 0.018) was too small for
  # the touches to learn anything on the 2,500-user sample in 4 epochs (incremental conversions 0.7 of 632).
  raw = keras.layers.Dense(1, activation='softplus', bias_initializer=keras.initializers.Constant(-2.0),
                           name='touch_contribution')(hidden)
  total, weights = TouchShares(name='attention')([raw, index])
  base = keras.layers.Dense(1, name='base_logit')(keras.layers.Dense(8, activation='tanh', name='span_hidden')(span))
  history = keras.Input(shape=(history_size,), dtype=tf.float32, name=HISTORY)
  past = keras.layers.Dense(1, name='history_logit')(history)
  logit = keras.layers.Add(name='logit')([base, past, total])
  return keras.Model(inputs={CAMPAIGN_INDEX: index, LOG_HOURS: hours, LOG_SPAN: span, HISTORY: history},
                     outputs={'logit': logit, 'attention': weights})


def campaign_counts(index: tf.Tensor, vocabulary_size: int) -> tf.Tensor:
  """[B, vocabulary_size + 1] touches per campaign (vocabulary order, unknown campaigns last; padding left out)."""
  return tf.reduce_sum(tf.one_hot(index, vocabulary_size + 2)[:, :, 1:], axis=1)


def build_logistic_regression(vocabulary_size: int, max_length: int, history_size: int = HISTORY_SIZE
                              ) -> keras.Model:
  """Logistic regression on campaign counts and the user's history (the model's inputs but the order and timing):
  {campaign_index [B, L], user_history [B, H]} -> logit [B, 1]."""
  index = keras.Input(shape=(max_length,), dtype=tf.int64, name=CAMPAIGN_INDEX)
  history = keras.Input(shape=(history_size,), dtype=tf.float32, name=HISTORY)
  counts = keras.layers.Lambda(lambda x: campaign_counts(x, vocabulary_size), name='counts')(index)
  return keras.Model({CAMPAIGN_INDEX: index, HISTORY: history},
                     keras.layers.Dense(1, name='lr_logit')(keras.layers.Concatenate()([counts, history])))


def oversampled(labels: np.ndarray, positive_ratio: float, seed: int) -> Tuple[np.ndarray, float]:
  """Row indices with the converting rows repeated until they are `positive_ratio` of the rows (never fewer
  than once each; 0 or a ratio already met: no change), and the factor the converting rows were repeated by."""
  positives = np.flatnonzero(labels > 0.5)
  negatives = np.flatnonzero(labels <= 0.5)
  wanted = int(round(positive_ratio * len(negatives) / (1.0 - positive_ratio))) if positive_ratio > 0 else 0
  if not len(positives) or wanted <= len(positives):
    return np.arange(len(labels)), 1.0
  copies, extra = divmod(wanted, len(positives))
  chosen = np.random.default_rng(seed).choice(positives, size=extra, replace=False)
  rows = np.sort(np.concatenate([negatives] + [positives] * copies + [chosen]))
  return rows, wanted / len(positives)


def transformed_split(file_pattern: List[str], data_accessor, tf_transform_output: tft.TFTransformOutput
                      ) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """A transformed split in memory, in journey-id order, without the key: (features, labels).

  Key order makes training independent of the order Beam wrote the files in."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=4096, label_key=LABEL, shuffle=False, num_epochs=1),
      tf_transform_output.transformed_metadata.schema)
  batches = list(dataset.as_numpy_iterator())
  features = {name: np.concatenate([batch[name] for batch, _ in batches]) for name in batches[0][0]}
  labels = np.concatenate([label for _, label in batches]).reshape(-1)
  order = np.argsort(features.pop(KEY), kind='stable')
  return {name: values[order] for name, values in features.items()}, labels[order]


def keep_only(index: tf.Tensor, log_hours: tf.Tensor, keep: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """The journeys [B, L] with only the real touches where keep > 0, moved to the front in their order and padded
  after (as build_examples lays journeys out), hours before the end unchanged."""
  kept = tf.logical_and(keep > 0, index > 0)
  order = tf.argsort(tf.cast(tf.logical_not(kept), tf.int32), axis=1, stable=True)
  return (tf.gather(tf.where(kept, index, tf.zeros_like(index)), order, batch_dims=1),
          tf.gather(tf.where(kept, log_hours, tf.zeros_like(log_hours)), order, batch_dims=1))


def _serving_signatures(model: keras.Model, lr_model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                        logit_correction: float) -> Dict[str, Any]:
  """serving_default: serialized raw tf.Examples -> conversion_probability and lr_probability;
  attention: -> conversion_probability, attention_weights [B, L] (zero at padded positions) and base_probability
  (the journey with every touch removed: f(span) + w . history, see build_model);
  counterfactual: (examples [J], rows [N], keep [N, L]) -> conversion_probability [N] of journey rows[i] with
  only the touches keep[i] marks.
  logit_correction undoes the oversampling's shift of the odds (prior correction), so probabilities are
  calibrated to the real conversion rate."""
  model.tft_layer = tf_transform_output.transform_features_layer()
  model.lr_model = lr_model
  raw_feature_spec = tf_transform_output.raw_feature_spec()
  raw_feature_spec.pop(LABEL)
  examples = tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')

  def transform(serialized_examples):
    return model.tft_layer(tf.io.parse_example(serialized_examples, raw_feature_spec))

  def probability_of(index, log_hours, transformed):
    """The journeys' touches (index, log_hours) with their span and user history from `transformed`."""
    outputs = model({CAMPAIGN_INDEX: index, LOG_HOURS: log_hours, LOG_SPAN: transformed[LOG_SPAN],
                     HISTORY: transformed[HISTORY]})
    return tf.sigmoid(tf.reshape(outputs['logit'], [-1]) + logit_correction), outputs['attention']

  @tf.function(input_signature=[examples])
  def serve(serialized_examples):
    transformed = transform(serialized_examples)
    probability, _ = probability_of(transformed[CAMPAIGN_INDEX], transformed[LOG_HOURS], transformed)
    lr_probability = tf.sigmoid(tf.reshape(model.lr_model(
        {CAMPAIGN_INDEX: transformed[CAMPAIGN_INDEX], HISTORY: transformed[HISTORY]}), [-1]))
    return {PREDICTION: probability, LR_PREDICTION: lr_probability}

  @tf.function(input_signature=[examples])
  def attention(serialized_examples):
    transformed = transform(serialized_examples)
    probability, weights = probability_of(transformed[CAMPAIGN_INDEX], transformed[LOG_HOURS], transformed)
    base, _ = probability_of(tf.zeros_like(transformed[CAMPAIGN_INDEX]), tf.zeros_like(transformed[LOG_HOURS]),
                             transformed)
    return {PREDICTION: probability, ATTENTION: weights, BASE_PREDICTION: base}

  @tf.function(input_signature=[examples, tf.TensorSpec(shape=[None], dtype=tf.int64, name='rows'),
                                tf.TensorSpec(shape=[None, None], dtype=tf.float32, name='keep')])
  def counterfactual(serialized_examples, rows, keep):
    transformed = transform(serialized_examples)  # each journey parsed and transformed once, then repeated
    index, log_hours = keep_only(tf.gather(transformed[CAMPAIGN_INDEX], rows),
                                 tf.gather(transformed[LOG_HOURS], rows), keep)
    # Only the journey's touches change; its span and the user's history are kept.
    probability, _ = probability_of(index, log_hours, {name: tf.gather(transformed[name], rows)
                                                       for name in (LOG_SPAN, HISTORY)})
    return {PREDICTION: probability}

  return {'serving_default': serve, ATTENTION_SIGNATURE: attention, COUNTERFACTUAL_SIGNATURE: counterfactual}


SEARCH_SPACE = {'embedding_dim': [8, 16, 32], 'rnn_units': [16, 32, 64], 'learning_rate': [0.002, 0.005, 0.01]}
TUNED_SETTINGS = tuple(SEARCH_SPACE)


def ensemble(members: List[keras.Model]) -> keras.Model:
  """The members' average: logit = mean of their logits (still f(span) + sum of non-negative touch terms, so a
  journey without touches keeps its meaning), attention = mean of their attention weights. One member: itself."""
  if len(members) == 1:
    return members[0]
  inputs = {name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)
            for name, tensor in members[0].input.items()}
  outputs = [member(inputs) for member in members]
  return keras.Model(inputs=inputs, outputs={
      'logit': keras.layers.Average(name='logit')([o['logit'] for o in outputs]),
      'attention': keras.layers.Average(name='attention')([o['attention'] for o in outputs])})


def fit_conversion_model(features: Dict[str, np.ndarray], labels: np.ndarray, eval_features: Dict[str, np.ndarray],
                         eval_labels: np.ndarray, vocabulary_size: int, config: Dict[str, Any], epochs: int
                         ) -> Tuple[keras.Model, float]:
  """The conversion model trained on `features` (converting journeys oversampled to `positive_ratio`) with the
  hyperparameters in `config`, and the oversampling factor (its logit offset): the average of config['ensemble']
  members trained with the seeds seed, seed + 1, ..., each for at most `epochs` (early stopping on the eval loss,
  config['patience']). Averaging cuts the seed-to-seed spread of the counterfactual credit."""
  members = []
  size = int(config['ensemble'])
  for member in range(size):
    seed = int(config['seed']) + member
    model, factor = _fit_member(features, labels, eval_features, eval_labels, vocabulary_size,
                                {**config, 'seed': seed}, epochs)
    if touch_log_odds(model, eval_features) < COLLAPSED_LOG_ODDS:
      # Its touch terms died early (softplus's gradient vanishes there): a span-only member would dilute the others.
      logging.warning('Member %d (seed %d) learned no touch effect; retrained with seed %d', member, seed, seed + size)
      model, factor = _fit_member(features, labels, eval_features, eval_labels, vocabulary_size,
                                  {**config, 'seed': seed + size}, epochs)
    members.append(model)
  return ensemble(members), factor


COLLAPSED_LOG_ODDS = 0.01  # mean touch log-odds below this: the member learned the span and history only


def model_inputs(model: keras.Model, features: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """The model's inputs out of the transformed features."""
  return {name: features[name] for name in model.input}


def touch_log_odds(model: keras.Model, features: Dict[str, np.ndarray]) -> float:
  """Mean over the journeys of the model's log-odds with every touch minus with none."""
  inputs = model_inputs(model, features)
  empty = {**inputs, CAMPAIGN_INDEX: np.zeros_like(inputs[CAMPAIGN_INDEX]), LOG_HOURS: np.zeros_like(inputs[LOG_HOURS])}
  return float(np.mean(model(inputs, training=False)['logit'] - model(empty, training=False)['logit']))


def _fit_member(features: Dict[str, np.ndarray], labels: np.ndarray, eval_features: Dict[str, np.ndarray],
                eval_labels: np.ndarray, vocabulary_size: int, config: Dict[str, Any], epochs: int
                ) -> Tuple[keras.Model, float]:
  seed = int(config['seed'])
  keras.utils.set_random_seed(seed)
  inputs = [CAMPAIGN_INDEX, LOG_HOURS, LOG_SPAN, HISTORY]
  rows, factor = oversampled(labels, float(config['positive_ratio']), seed)
  logging.info('Training on %d journeys (%d converting, repeated x%.2f to %d of %d rows), %d campaigns',
               len(labels), int(labels.sum()), factor, int(labels[rows].sum()), len(rows), vocabulary_size)
  train = (tf.data.Dataset.from_tensor_slices(({k: features[k][rows] for k in inputs}, labels[rows]))
           .shuffle(len(rows), seed=seed, reshuffle_each_iteration=True).batch(int(config['batch_size'])))
  validation = tf.data.Dataset.from_tensor_slices(({k: eval_features[k] for k in inputs}, eval_labels)).batch(4096)
  model = build_model(vocabulary_size, int(config['journey_max_length']), int(config['embedding_dim']),
                      int(config['rnn_units']), int(config['attention_units']), features[HISTORY].shape[1])
  trainable = keras.Model(model.inputs, model.get_layer('logit').output)
  trainable.compile(optimizer=keras.optimizers.Adam(float(config['learning_rate'])),
                    loss=keras.losses.BinaryCrossentropy(from_logits=True))
  # Up to `epochs`, stopped when the eval journeys' loss has not improved for `patience` epochs, with the best
  # weights kept: a fixed few epochs left some seeds on the plateau where only f(span) is learned.
  stop = keras.callbacks.EarlyStopping(monitor='val_loss', patience=int(config['patience']), restore_best_weights=True)
  trainable.fit(train, epochs=epochs, validation_data=validation, verbose=2, callbacks=[stop])
  return model, factor


def tuner_fn(fn_args) -> tfx.components.TunerFnResult:
  """Seeded search over SEARCH_SPACE (pipelines.tuning): each trial trains the conversion model for half the
  epochs and is scored by its AUC on the eval journeys (the champion is decided on `test`)."""
  config = dict(fn_args.custom_config)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  vocabulary_size = tf_transform_output.vocabulary_size_by_name(VOCABULARY)
  features, labels = transformed_split(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
  eval_features, eval_labels = transformed_split(fn_args.eval_files, fn_args.data_accessor, tf_transform_output)
  epochs = max(1, int(config['epochs']) // 2)

  def build_and_score(hp: keras_tuner.HyperParameters) -> float:
    model, _ = fit_conversion_model(features, labels, eval_features, eval_labels, vocabulary_size,
                                    {**config, **hp.values, 'ensemble': 1}, epochs)  # one member per trial
    scores = model.predict(model_inputs(model, eval_features), batch_size=4096, verbose=0)['logit']
    auc = keras.metrics.AUC(num_thresholds=1000)
    auc.update_state(eval_labels, tf.sigmoid(scores.reshape(-1)))
    value = float(auc.result().numpy())
    return value if math.isfinite(value) else 0.0

  space = keras_tuner.HyperParameters()
  for name, values in SEARCH_SPACE.items():
    space.Choice(name, values)
  return tfx.components.TunerFnResult(
      tuner=tuning.make_tuner(build_and_score, space, 'eval_auc', 'max', int(config['tuning_trials']),
                              int(config['seed']), fn_args.working_dir, settings=config),
      fit_kwargs={})


def run_fn(fn_args) -> None:
  """Trains the conversion model (converting journeys oversampled to `positive_ratio` of the training input only;
  the Tuner's best values over the settings when it ran) and the logistic regression on campaign counts and user
  history (plain training data), and saves both in one Keras-2 SavedModel with the signatures serving_default,
  attention and counterfactual."""
  config = tuning.tuned_values(fn_args, fn_args.custom_config)
  seed = int(config['seed'])
  tf.config.experimental.enable_op_determinism()
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  vocabulary_size = tf_transform_output.vocabulary_size_by_name(VOCABULARY)
  features, labels = transformed_split(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
  eval_features, eval_labels = transformed_split(fn_args.eval_files, fn_args.data_accessor, tf_transform_output)
  model, factor = fit_conversion_model(features, labels, eval_features, eval_labels, vocabulary_size, config,
                                       int(config['epochs']))

  lr_model = build_logistic_regression(vocabulary_size, int(config['journey_max_length']))
  lr_model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.BinaryCrossentropy(from_logits=True))
  lr_train = (tf.data.Dataset.from_tensor_slices(({name: features[name] for name in (CAMPAIGN_INDEX, HISTORY)}, labels))
              .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(int(config['batch_size'])))
  lr_model.fit(lr_train, epochs=int(config['lr_epochs']), verbose=2)
  model.save(fn_args.serving_model_dir, save_format='tf',
             signatures=_serving_signatures(model, lr_model, tf_transform_output, -math.log(factor)))


# ---------------------------------------------------------------------------------------------------
# eval_config (Evaluator): the RNN and the counts LR on the same test journeys
# ---------------------------------------------------------------------------------------------------

def eval_config(min_auc: float, max_auc_decrease: float) -> tfma.EvalConfig:
  """AUC, PR-AUC, log loss (binary cross-entropy), calibration (mean prediction / mean label) of the RNN and
  of the logistic regression on campaign counts and user history, on the same test journeys.

  Blessing (on conversion_probability): AUC at least `min_auc`, and at most `max_auc_decrease` (absolute)
  below the latest blessed model's on the same journeys.
  """
  return metrics.classifier_eval_config(PREDICTION, LR_PREDICTION, LABEL, min_auc, max_auc_decrease,
                                        [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=['journey_length'])])
