"""CLV module file: customer examples from transactions, preprocessing, the DNN and its evaluation.

Read top to bottom: build_examples (Beam, used by ExamplesBuilder) -> preprocessing_fn (Transform)
-> tuner_fn (Tuner) -> run_fn (Trainer) -> eval_config (Evaluator).

Input rows: customer_id, date (YYYY-MM-DD, YYYYMMDD or ISO-8601), quantity, amount.
Per customer, features are computed over the calibration window [first purchase, threshold_date];
the label is the spend in (threshold_date, predict_end] only. The `score` split holds the same features
computed over the whole history up to predict_end, for predicting the following period (no label).
"""
import datetime
import hashlib
import json
from typing import Any, Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from google.protobuf import wrappers_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from pipelines.components.examples_builder import BuiltExamples
from pipelines.parsing import parse_finite_float

KEY = 'customer_id'
LABEL = 'label'
PREDICTION = 'predicted_value'
MEAN_BASELINE = 'mean_baseline'
BTYD_PREDICTION = 'btyd_clv'
BTYD_PREFIX = 'btyd'
# Model inputs, log1p then z-score (counts, money, rates and days have heavy right tails). Each means the same
# at any customer age (fixed look-back windows, per-purchase means, rates, days since the last purchase), so
# scoring customers older than the training ones does not extrapolate as frequency, T or total spend did
# (see benchmarks/clv_backtest_variants.py and docs/clv.md for the backtest that chose them).
LOG_FEATURES = ['mean_spend', 'mean_quantity', 'monetary_value', 'purchases_last_30', 'purchases_last_90',
                'purchases_last_180', 'purchases_last_365', 'spend_last_30', 'spend_last_90', 'spend_last_180',
                'spend_last_365', 'purchase_rate', 'spend_rate', 'days_since_last']
# z-score only: none at present (raw durations such as T and recency grow with age).
LINEAR_FEATURES: List[str] = []
MONTH_FEATURE = 'first_purchase_month'
# For slicing the evaluation only (not a model input): repeat purchase days in buckets.
FREQUENCY_BUCKET = 'frequency_bucket'
FREQUENCY_BUCKETS = ((0, '0'), (1, '1'), (3, '2-3'), (7, '4-7'))  # (upper bound, name); above: '8+'

Purchase = Tuple[datetime.date, float, float]  # (day, quantity, amount)
WINDOWS = (30, 90, 180, 365)  # look-back windows in days
MIN_RATE_DAYS = 30  # age floor of the rate features


# ---------------------------------------------------------------------------------------------------
# build_examples: raw transaction rows -> per-customer examples (train / eval / score) + rejected rows
# ---------------------------------------------------------------------------------------------------

def parse_date(value: Any) -> datetime.date:
  """Parses YYYY-MM-DD, YYYYMMDD (string or int) or an ISO-8601 timestamp; raises ValueError otherwise."""
  text = str(value).strip()
  if len(text) == 8 and text.isdigit():
    return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
  return datetime.datetime.fromisoformat(text.replace('Z', '+00:00')).date()


def parse_transaction(row: Dict[str, Any]) -> Tuple[Optional[Tuple[str, Purchase]], Optional[str]]:
  """Returns ((customer_id, (day, quantity, amount)), None) or (None, reason) for a bad row."""
  customer_id = row.get(KEY)
  if customer_id is None or str(customer_id).strip() == '':
    return None, 'missing_customer_id'
  try:
    day = parse_date(row.get('date'))
  except (TypeError, ValueError):
    return None, 'unparsable_date'
  try:
    quantity = parse_finite_float(row.get('quantity'))
    amount = parse_finite_float(row.get('amount'))
  except (TypeError, ValueError):
    return None, 'unparsable_number'
  if quantity != quantity or amount != amount:  # NaN
    return None, 'unparsable_number'
  if quantity < 0 or amount < 0:
    return None, 'negative_quantity_or_amount'
  return (str(customer_id).strip(), (day, quantity, amount)), None


def customer_features(purchases: Iterable[Purchase], as_of: datetime.date) -> Optional[Dict[str, Any]]:
  """Features of one customer over [first purchase, as_of]; None if no purchase by then.

  Purchases on the same day are merged into one purchase (as BTYD models do). Durations are in days.
  frequency: repeat purchase days; recency: first to last purchase day; T: first purchase day to as_of;
  monetary_value: mean spend of the repeat purchase days (0 without repeats), as lifetimes defines it.
  """
  by_day: Dict[datetime.date, List[float]] = {}
  for day, quantity, amount in purchases:
    if day <= as_of:
      totals = by_day.setdefault(day, [0.0, 0.0])
      totals[0] += quantity
      totals[1] += amount
  if not by_day:
    return None
  days = sorted(by_day)
  first, last = days[0], days[-1]
  frequency = len(days) - 1
  recency = (last - first).days
  spends = [by_day[d][1] for d in days]
  total_spend = sum(spends)
  return {
      'frequency': frequency,
      'recency': recency,
      'T': (as_of - first).days,
      'total_spend': total_spend,
      'mean_spend': total_spend / len(days),
      'monetary_value': sum(spends[1:]) / frequency if frequency else 0.0,
      'mean_quantity': sum(by_day[d][0] for d in days) / len(days),
      'mean_days_between_purchases': recency / frequency if frequency else 0.0,
      'purchases_last_30': sum(1 for d in days if (as_of - d).days < 30),
      'purchases_last_90': sum(1 for d in days if (as_of - d).days < 90),
      MONTH_FEATURE: first.month,
      FREQUENCY_BUCKET: frequency_bucket(frequency),
      **window_features(days, spends, as_of),
      'days_since_last': (as_of - last).days,
      # per 365 days of age, the age floored at MIN_RATE_DAYS so that a new customer's rate is not inflated
      'purchase_rate': len(days) * 365.0 / max((as_of - first).days, MIN_RATE_DAYS),
      'spend_rate': total_spend * 365.0 / max((as_of - first).days, MIN_RATE_DAYS),
  }


def window_features(days: List[datetime.date], spends: List[float], as_of: datetime.date) -> Dict[str, float]:
  """Purchase days and spend in the last w days before as_of (as_of included) for w in WINDOWS: the same
  meaning at any customer age, unlike counts and spend since the first purchase."""
  features: Dict[str, float] = {}
  for window in WINDOWS:
    recent = [spend for day, spend in zip(days, spends) if (as_of - day).days < window]
    if window > 90:  # purchases_last_30 / _90 exist already
      features[f'purchases_last_{window}'] = len(recent)
    features[f'spend_last_{window}'] = float(sum(recent))
  return features


def frequency_bucket(frequency: int) -> str:
  """'0', '1', '2-3', '4-7' or '8+' repeat purchase days."""
  return next((name for upper, name in FREQUENCY_BUCKETS if frequency <= upper), '8+')


def spend_between(purchases: Iterable[Purchase], start: datetime.date, end: datetime.date) -> float:
  """Total spend with start < day <= end."""
  return float(sum(amount for day, _, amount in purchases if start < day <= end))


def assign_split(customer_id: str, eval_percent: int, seed: int) -> str:
  """Stable split by a salted hash of the customer id: 'eval' for eval_percent% of customers."""
  bucket = int(hashlib.md5(f'{seed}:{customer_id}'.encode('utf-8')).hexdigest(), 16) % 100
  return 'eval' if bucket < eval_percent else 'train'


class _CustomerExamples(beam.DoFn):
  """(customer_id, purchases) -> a train/eval example, a score example, and counted skips."""

  def __init__(self, params: Dict[str, Any]):
    self._params = params

  def process(self, element):
    customer_id, purchases = element
    purchases = list(purchases)
    threshold = parse_date(self._params['threshold_date'])
    predict_end = parse_date(self._params['predict_end'])
    late = [p for p in purchases if p[0] > predict_end]
    for day, quantity, amount in late:
      yield beam.pvalue.TaggedOutput('rejected', {
          'reason': 'after_predict_end',
          'record': {KEY: customer_id, 'date': day.isoformat(), 'quantity': quantity, 'amount': amount}})
    purchases = [p for p in purchases if p[0] <= predict_end]
    if not purchases:
      return
    yield beam.pvalue.TaggedOutput('score', {KEY: customer_id, **customer_features(purchases, predict_end)})
    calibration = customer_features(purchases, threshold)
    if calibration is None:
      yield beam.pvalue.TaggedOutput('rejected', {
          'reason': 'no_purchase_before_threshold', 'record': {KEY: customer_id}})
      return
    if calibration['total_spend'] > self._params['max_monetary']:
      yield beam.pvalue.TaggedOutput('rejected', {
          'reason': 'calibration_spend_above_max_monetary',
          'record': {KEY: customer_id, 'total_spend': calibration['total_spend']}})
      return
    split = assign_split(customer_id, self._params['eval_percent'], self._params['seed'])
    yield beam.pvalue.TaggedOutput(split, {
        KEY: customer_id, **calibration, LABEL: spend_between(purchases, threshold, predict_end)})


def _parse_or_reject(row: Dict[str, Any]):
  parsed, reason = parse_transaction(row)
  if reason:
    yield beam.pvalue.TaggedOutput('rejected', {'reason': reason, 'record': row})
  else:
    yield parsed


def build_examples(rows: beam.PCollection, params: Dict[str, Any]) -> BuiltExamples:
  """Transactions -> per-customer examples.

  params: threshold_date, predict_end (dates), max_monetary (customers whose calibration spend exceeds it
  are left out of train/eval and counted), eval_percent, seed (salt of the split hash).
  Row-level rejects: missing_customer_id, unparsable_date, unparsable_number, negative_quantity_or_amount,
  after_predict_end. Customer-level: no_purchase_before_threshold, calibration_spend_above_max_monetary.
  """
  parsed = rows | 'Parse' >> beam.FlatMap(_parse_or_reject).with_outputs('rejected', main='valid')
  customers = (parsed.valid
               | 'GroupByCustomer' >> beam.GroupByKey()
               | 'CustomerExamples' >> beam.ParDo(_CustomerExamples(params)).with_outputs(
                   'train', 'eval', 'score', 'rejected'))
  rejected = (parsed.rejected, customers.rejected) | 'FlattenRejected' >> beam.Flatten()
  return BuiltExamples(splits={'train': customers.train, 'eval': customers.eval, 'score': customers.score},
                       rejected=rejected)


# ---------------------------------------------------------------------------------------------------
# preprocessing_fn (Transform)
# ---------------------------------------------------------------------------------------------------

def _column(tensor: tf.Tensor) -> tf.Tensor:
  return tf.reshape(tf.cast(tensor, tf.float32), [-1, 1])


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """log1p + z-score for counts and money, z-score for durations, one-hot month of first purchase."""
  outputs = {name: tft.scale_to_z_score(tf.math.log1p(_column(inputs[name]))) for name in LOG_FEATURES}
  outputs.update({name: tft.scale_to_z_score(_column(inputs[name])) for name in LINEAR_FEATURES})
  month = tf.reshape(tf.cast(inputs[MONTH_FEATURE], tf.int64), [-1])
  outputs[MONTH_FEATURE] = tf.one_hot(month - 1, 12)
  outputs[KEY] = tf.reshape(inputs[KEY], [-1])  # not a model input: orders the training data (training_data)
  if LABEL in inputs:
    outputs[LABEL] = _column(inputs[LABEL])
  return outputs


# ---------------------------------------------------------------------------------------------------
# run_fn (Trainer): DNN with batch norm and dropout, MSE or zero-inflated lognormal loss
# ---------------------------------------------------------------------------------------------------

def ziln_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Zero-inflated lognormal loss (Wang, Liu & Miao 2019), per example.

  logits[:, 0]: logit of P(label > 0); logits[:, 1:3]: mu and (pre-softplus) sigma of log(label).
  loss = BCE(label > 0, p) - [label > 0] * log LogNormal(label; mu, sigma).
  """
  labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
  positive = tf.cast(labels > 0, tf.float32)
  p_logit, mu, sigma = _ziln_parameters(logits)
  classification = tf.nn.sigmoid_cross_entropy_with_logits(labels=positive, logits=p_logit)
  safe_labels = positive * labels + (1.0 - positive)
  log_safe = tf.math.log(safe_labels)
  log_prob = (-log_safe - tf.math.log(sigma) - 0.5 * tf.math.log(2.0 * 3.141592653589793)
              - tf.square(log_safe - mu) / (2.0 * tf.square(sigma)))
  return classification - positive * log_prob


def _ziln_parameters(logits: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  sigma = tf.maximum(tf.math.softplus(logits[:, 2]), tf.math.sqrt(keras.backend.epsilon()))
  return logits[:, 0], logits[:, 1], sigma


def ziln_expected_value(logits: tf.Tensor) -> tf.Tensor:
  """E[label] = P(label > 0) * exp(mu + sigma^2 / 2), shape [batch]."""
  p_logit, mu, sigma = _ziln_parameters(logits)
  return tf.sigmoid(p_logit) * tf.exp(mu + 0.5 * tf.square(sigma))


def build_model(feature_widths: Dict[str, int], hidden_units: List[int], dropout: float, loss: str,
                output_bias: List[float]) -> keras.Model:
  """Dense -> BatchNorm -> ReLU -> Dropout per hidden layer; 1 output (mse) or 3 ZILN logits (ziln).

  output_bias starts the model at a sensible prediction (see `initial_output_bias`).
  """
  inputs = {name: keras.Input(shape=(width,), name=name) for name, width in sorted(feature_widths.items())}
  x = keras.layers.Concatenate()(list(inputs.values()))
  for units in hidden_units:
    x = keras.layers.Dense(units, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation('relu')(x)
    x = keras.layers.Dropout(dropout)(x)
  outputs = keras.layers.Dense(len(output_bias), name='output',
                               bias_initializer=keras.initializers.Constant(output_bias))(x)
  return keras.Model(inputs=inputs, outputs=outputs)


def initial_output_bias(labels: tf.Tensor, loss: str) -> List[float]:
  """mse: [mean label]; ziln: [logit of P(label > 0), mean log positive label, softplus^-1(std log)]."""
  labels = tf.reshape(tf.cast(labels, tf.float32), [-1])
  if loss != 'ziln':
    return [float(tf.reduce_mean(labels))]
  positive = tf.boolean_mask(labels, labels > 0)
  share = min(max(float(tf.size(positive)) / max(int(tf.size(labels)), 1), 1e-3), 1 - 1e-3)
  logs = tf.math.log(positive) if tf.size(positive) > 0 else tf.zeros([1])
  std = max(float(tf.math.reduce_std(logs)), 0.1)
  return [float(tf.math.log(share / (1 - share))), float(tf.reduce_mean(logs)), float(tf.math.log(tf.math.expm1(std)))]


def predicted_value(model_output: tf.Tensor, loss: str) -> tf.Tensor:
  """The expected spend from the model's raw output, shape [batch], never negative."""
  if loss == 'ziln':
    return ziln_expected_value(model_output)
  return tf.nn.relu(tf.reshape(model_output, [-1]))


def in_key_order(features: Dict[str, np.ndarray], labels: np.ndarray
                 ) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """Rows sorted by customer id, so training does not depend on the order Beam wrote the files in."""
  order = np.argsort(features[KEY], kind='stable')
  return {name: values[order] for name, values in features.items()}, labels[order]


def training_data(file_pattern: List[str], data_accessor, tf_transform_output: tft.TFTransformOutput
                  ) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """The transformed train split in memory, in key order, without the key: (features, labels).

  Key order makes training independent of the order Beam wrote the files in. Holds the split in memory
  (fine for per-customer data up to tens of millions of rows of a dozen floats)."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=4096, label_key=LABEL, shuffle=False, num_epochs=1),
      tf_transform_output.transformed_metadata.schema)
  batches = list(dataset.as_numpy_iterator())
  features = {name: np.concatenate([batch[name] for batch, _ in batches]) for name in batches[0][0]}
  features, labels = in_key_order(features, np.concatenate([label for _, label in batches]))
  features.pop(KEY)
  return features, labels


def _serving_fn(model: keras.Model, tf_transform_output: tft.TFTransformOutput, loss: str,
                train_mean: float):
  """serving_default: serialized raw tf.Examples -> predicted_value and the training-mean baseline."""
  model.tft_layer = tf_transform_output.transform_features_layer()
  raw_feature_spec = tf_transform_output.raw_feature_spec()
  raw_feature_spec.pop(LABEL)

  @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def serve(serialized_examples):
    features = tf.io.parse_example(serialized_examples, raw_feature_spec)
    transformed = model.tft_layer(features)
    prediction = predicted_value(model({k: transformed[k] for k in model.input_names}), loss)
    return {PREDICTION: prediction, MEAN_BASELINE: tf.fill(tf.shape(prediction), train_mean)}

  return serve


def _feature_widths(tf_transform_output: tft.TFTransformOutput) -> Dict[str, int]:
  return {name: spec.shape[-1] if spec.shape else 1
          for name, spec in tf_transform_output.transformed_feature_spec().items() if name not in (LABEL, KEY)}


def fit_model(features: Dict[str, np.ndarray], labels: np.ndarray, feature_widths: Dict[str, int],
              config: Dict[str, Any], epochs: int) -> keras.Model:
  """Builds and fits the DNN with `config` (seed, loss, hidden_units, dropout, learning_rate, batch_size)."""
  seed = int(config['seed'])
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  train = (tf.data.Dataset.from_tensor_slices((features, labels))
           .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)  # same seed, same batches
           .batch(int(config['batch_size'])))
  model = build_model(feature_widths, [int(u) for u in str(config['hidden_units']).split(',') if u],
                      float(config['dropout']), config['loss'], initial_output_bias(labels, config['loss']))
  model.compile(optimizer=keras.optimizers.Adam(float(config['learning_rate'])),
                loss=ziln_loss if config['loss'] == 'ziln' else 'mse')
  model.fit(train, epochs=epochs, verbose=2)
  return model


# The Tuner's search space: small, since each trial trains a model (values as the settings spell them).
SEARCH_SPACE = {'hidden_units': ['32', '64,32', '128,64'], 'dropout': [0.0, 0.2, 0.4],
                'learning_rate': [0.001, 0.002, 0.005]}


def tuner_fn(fn_args):
  """TFX Tuner: a seeded random search over SEARCH_SPACE of custom_config['trials'] trials, each training
  for epochs / (2 * trials) epochs (at least 1) on the train split and scored by the MAE of its expected
  spend on the eval split (the champion gate's default metric)."""
  import keras_tuner  # pylint: disable=g-import-not-at-top
  from pipelines import tuning  # pylint: disable=g-import-not-at-top
  config = dict(fn_args.custom_config)
  trials = int(config['trials'])
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  widths = _feature_widths(tf_transform_output)
  features, labels = training_data(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
  eval_features, eval_labels = training_data(fn_args.eval_files, fn_args.data_accessor, tf_transform_output)
  epochs = max(1, int(config['epochs']) // (2 * trials))

  def build_and_score(hp) -> float:
    model = fit_model(features, labels, widths, {**config, **hp.values}, epochs)
    predicted = predicted_value(model.predict(eval_features, batch_size=4096, verbose=0), config['loss']).numpy()
    return float(np.mean(np.abs(predicted - eval_labels.reshape(-1))))

  space = keras_tuner.HyperParameters()
  for name, values in SEARCH_SPACE.items():
    space.Choice(name, values)
  return tfx.components.TunerFnResult(
      tuner=tuning.make_tuner(build_and_score, space, 'eval_mean_absolute_error', 'min', trials,
                              int(config['seed']), fn_args.working_dir, settings=config),
      fit_kwargs={})


def run_fn(fn_args) -> None:
  """Trains the DNN on the transformed train split (with the Tuner's best values when it ran) and saves a
  Keras-2 SavedModel with serving_default."""
  from pipelines import tuning  # pylint: disable=g-import-not-at-top
  config = tuning.tuned_values(fn_args, fn_args.custom_config)
  logging.info('Training with %s', {k: config[k] for k in ('hidden_units', 'dropout', 'learning_rate')})
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  features, labels = training_data(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
  train_mean = float(labels.mean())
  logging.info('Training label mean (the mean baseline): %.4f over %d customers', train_mean, len(labels))
  model = fit_model(features, labels, _feature_widths(tf_transform_output), config, int(config['epochs']))
  model.save(fn_args.serving_model_dir, save_format='tf',
             signatures={'serving_default': _serving_fn(model, tf_transform_output, config['loss'], train_mean)})


# ---------------------------------------------------------------------------------------------------
# eval_config (Evaluator): the DNN and the training-mean baseline on the same eval customers
# ---------------------------------------------------------------------------------------------------

def _regression_metrics() -> List[tfma.MetricConfig]:
  return [
      tfma.MetricConfig(class_name='ExampleCount'),
      tfma.MetricConfig(class_name='MeanAbsoluteError'),
      tfma.MetricConfig(class_name='RootMeanSquaredError'),
      tfma.MetricConfig(class_name='MeanLabel'),
      tfma.MetricConfig(class_name='MeanPrediction'),
      tfma.MetricConfig(class_name='NormalizedGini', module='pipelines.metrics'),
      tfma.MetricConfig(class_name='DecileTable', module='pipelines.metrics'),
  ]


def eval_config(max_mae_increase: float) -> tfma.EvalConfig:
  """MAE, RMSE, mean label/prediction, normalized Gini and deciles for the DNN, the training-mean baseline
  and the BTYD prediction column (metrics prefixed `btyd_`), all on the same eval customers.

  Blessing (on predicted_value): normalized Gini above 0 (ranks better than chance) and MAE at most
  `max_mae_increase` (relative) above the latest blessed model's on the same eval customers.
  """
  label_keys = {PREDICTION: LABEL, MEAN_BASELINE: LABEL}
  overall = [tfma.SlicingSpec()]  # gate on all eval customers; small slices may have all-zero labels
  gates = {
      'MeanAbsoluteError': tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.LOWER_IS_BETTER, relative={'value': max_mae_increase})),
      'NormalizedGini': tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
          lower_bound={'value': 0.0})),
  }
  gated = _regression_metrics()
  for metric in gated:
    if metric.class_name in gates:
      metric.per_slice_thresholds.add(slicing_specs=overall, threshold=gates[metric.class_name])
  return tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(name='candidate', signature_name='serving_default', label_keys=label_keys),
          tfma.ModelSpec(name='baseline', signature_name='serving_default', label_keys=label_keys,
                         is_baseline=True),
      ],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[FREQUENCY_BUCKET]),
                     tfma.SlicingSpec(feature_keys=[MONTH_FEATURE])],
      # The model's compiled loss is not a metric here (and TFMA cannot map it to one output).
      options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
      metrics_specs=[
          tfma.MetricsSpec(metrics=gated, output_names=[PREDICTION]),
          tfma.MetricsSpec(metrics=_regression_metrics(), output_names=[MEAN_BASELINE], model_names=['candidate']),
          # The BTYD model's prediction is a feature of the evaluated examples (added by BtydFit).
          tfma.MetricsSpec(metrics=[tfma.MetricConfig(
              class_name='FeaturePredictionMetrics', module='pipelines.metrics',
              config=json.dumps({'feature': BTYD_PREDICTION, 'prefix': BTYD_PREFIX}))],
              output_names=[PREDICTION], model_names=['candidate']),
      ])
