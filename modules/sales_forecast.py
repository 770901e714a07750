"""Sales forecast module file: item-month examples from invoice lines, preprocessing, the model and its evaluation.

Read top to bottom: build_examples (Beam, used by ExamplesBuilder) -> preprocessing_fn (Transform)
-> tuner_fn (Tuner) -> run_fn (Trainer) -> eval_config (Evaluator).

Input rows: the columns of the Iowa liquor sales table (COLUMNS), as strings (CSV lines read as text, or a
BigQuery query that already sums bottles per item and day) or as numbers. Per item, bottles are summed per
day; one example per item and month holds that month's daily sequence (day of month 1..31, masked outside
the month), item features, history totals, six baseline forecasts and the MASE scale; the label is the item's
total in the NEXT month. Months up to the evaluation window -> `train`, the last `eval_months` labelled
months -> `eval`, the latest month (no label yet) -> `score`.
"""
import calendar
import datetime
import json
import os
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

import apache_beam as beam
import keras_tuner
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from google.protobuf import wrappers_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from pipelines import tuning
from pipelines.components.examples_builder import BuiltExamples
from pipelines.parsing import parse_finite_float
from pipelines.sales_forecast import methods

COLUMNS = ['date', 'store_number', 'item_number', 'item_description', 'category_name', 'vendor_name', 'pack',
           'bottle_volume_ml', 'state_bottle_cost', 'state_bottle_retail', 'bottles_sold']
# Rows missing one of these are rejected; empty text attributes become UNKNOWN (store_number is not used).
REQUIRED = ['date', 'item_number', 'pack', 'bottle_volume_ml', 'state_bottle_cost', 'state_bottle_retail',
            'bottles_sold']
TEXT_ATTRIBUTES = ['item_description', 'category_name', 'vendor_name']
NUMERIC_ATTRIBUTES = ['pack', 'bottle_volume_ml', 'state_bottle_cost', 'state_bottle_retail']
UNKNOWN = '(unknown)'
# Set by the text-line ExampleGen for a line whose field count differs from the header's.
MALFORMED_LINE = 'malformed_line'
REASONS = ('wrong_field_count', 'empty_required_field', 'unparsable_date', 'unparsable_number',
           'negative_bottles_sold', 'non_positive_pack')
COUNTER_NAMESPACE = 'sales_forecast'

KEY = 'item_number'
# Months are integers YYYYMM: a string would get a vocabulary in the schema, and every new month would be an
# anomaly in the eval split.
MONTH = 'month'                       # YYYYMM of the daily sequence
FORECAST_MONTH = 'forecast_month'     # YYYYMM of the label's month (the month after)
LABEL = 'label'
PREDICTION = 'forecast_bottles'
DAYS = 31
SEQUENCE = ['daily_bottles', 'sale_day', 'day_in_month', 'day_of_week']
HISTORY = ['month_total', 'prev_month_1_total', 'prev_month_2_total', 'prev_month_3_total', 'last_year_total']
# Baseline forecasts of the label: name in summary.json -> feature holding it.
BASELINES = {'naive': 'naive_forecast', 'seasonal_naive': 'seasonal_naive_forecast',
             'moving_average': 'moving_average_forecast', 'exponential_smoothing': 'exponential_smoothing_forecast',
             'croston': 'croston_forecast', 'tsb': 'tsb_forecast'}
# Per example: mean absolute in-sample seasonal-naive error of the item up to its month (the MASE denominator).
MASE_SCALE = 'mase_scale'
SES_ALPHAS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)  # exponential smoothing: alpha chosen per item and origin
CROSTON_ALPHA = 0.1                           # the usual smoothing constant of intermittent-demand methods
TSB_ALPHA, TSB_BETA = 0.1, 0.2                # size and occurrence smoothing of TSB
SLICE_FEATURE = 'category_name'
TUNING_VALIDATION_MONTHS = 3  # the last train months each Tuner trial is scored on
TRAINING_FILE = 'training.json'  # in the Trainer's model_run: values trained with, anchor, kept epoch


# ---------------------------------------------------------------------------------------------------
# build_examples: invoice lines -> daily bottles per item -> item-month examples + rejected rows
# ---------------------------------------------------------------------------------------------------

class Sale(NamedTuple):
  """One valid invoice line (or one pre-aggregated item-day)."""
  item_number: str
  day: datetime.date
  bottles: float
  attributes: Tuple[Any, ...]  # TEXT_ATTRIBUTES then NUMERIC_ATTRIBUTES


def parse_date(value: Any) -> datetime.date:
  """YYYY-MM-DD (optionally followed by a time, as BigQuery's CAST gives), or MM/DD/YYYY; ValueError otherwise."""
  text = str(value).strip()
  if '/' in text:
    return datetime.datetime.strptime(text, '%m/%d/%Y').date()
  return datetime.date.fromisoformat(text[:10])


def parse_number(value: Any) -> float:
  """A finite number from an int, float or string ('$12.50' and '1,234' accepted); ValueError otherwise."""
  if isinstance(value, str):
    try:
      return parse_finite_float(value)  # the common case: a string float() reads has no '$' or ','
    except ValueError:
      pass
  return parse_finite_float(str(value).strip().replace('$', '').replace(',', '')
                            if isinstance(value, (str, bytes)) else value)


def _empty(value: Any) -> bool:
  return value is None or (value if isinstance(value, str) else str(value)).strip() == ''


def parse_sale(row: Dict[str, Any]) -> Tuple[Optional[Sale], Optional[str]]:
  """(Sale, None) for a valid row, or (None, reason) with reason one of REASONS."""
  if MALFORMED_LINE in row:
    return None, 'wrong_field_count'
  if any(_empty(row.get(name)) for name in REQUIRED):
    return None, 'empty_required_field'
  try:
    day = parse_date(row['date'])
  except (TypeError, ValueError):
    return None, 'unparsable_date'
  try:
    bottles = parse_number(row['bottles_sold'])
    numbers = tuple(parse_number(row[name]) for name in NUMERIC_ATTRIBUTES)
  except (TypeError, ValueError):
    return None, 'unparsable_number'
  if bottles < 0:
    return None, 'negative_bottles_sold'
  if numbers[0] <= 0:
    return None, 'non_positive_pack'
  texts = tuple(UNKNOWN if _empty(row.get(name)) else str(row[name]).strip() for name in TEXT_ATTRIBUTES)
  return Sale(str(row[KEY]).strip(), day, bottles, texts + numbers), None


def month_index(day: datetime.date) -> int:
  """Months since year 0: consecutive months differ by 1."""
  return day.year * 12 + day.month - 1


def month_number(index: int) -> int:
  """YYYYMM of a month_index."""
  return (index // 12) * 100 + index % 12 + 1


def month_sequence(daily: Dict[datetime.date, float], index: int) -> Dict[str, List]:
  """The SEQUENCE features of one month, by day of month 1..31: bottles (0 without sales), sale_day (1 where
  bottles were sold), day_in_month (1 for days of this month: the RNN's mask) and day_of_week (0 = Monday,
  7 outside the month)."""
  year, month = index // 12, index % 12 + 1
  length = calendar.monthrange(year, month)[1]
  bottles, sale_day, in_month, weekday = [0.0] * DAYS, [0] * DAYS, [0] * DAYS, [7] * DAYS
  for position in range(length):
    day = datetime.date(year, month, position + 1)
    bottles[position] = float(daily.get(day, 0.0))
    sale_day[position] = int(bottles[position] > 0)
    in_month[position] = 1
    weekday[position] = day.weekday()
  return {'daily_bottles': bottles, 'sale_day': sale_day, 'day_in_month': in_month, 'day_of_week': weekday}


# An item's valid sales by day (date ordinal: an int, which Beam encodes without pickling): every sale's bottles
# (summed in ascending order, so that the totals do not depend on the order rows arrive in) and the day's largest
# (bottles, attributes), whose attributes stand for the day.
ItemDays = Dict[int, Tuple[List[float], Tuple[float, Tuple[Any, ...]]]]


def add_sale(days: ItemDays, sale: Sale) -> None:
  """Adds one sale to its item's days."""
  ordinal = sale.day.toordinal()
  entry = days.get(ordinal)
  latest = (sale.bottles, sale.attributes)
  if entry is None:
    days[ordinal] = ([sale.bottles], latest)
  else:
    entry[0].append(sale.bottles)
    if latest > entry[1]:
      days[ordinal] = (entry[0], latest)


def merge_days(into: ItemDays, days: ItemDays) -> ItemDays:
  """Adds `days` (left unchanged) to `into`; returns `into`. Merging in any order gives the same days."""
  for day, (bottles, latest) in days.items():
    entry = into.get(day)
    into[day] = (list(bottles), latest) if entry is None else (entry[0] + bottles, max(entry[1], latest))
  return into


def item_examples(item_number: str, sales: Iterable[Sale], last_month: int, eval_months: int
                  ) -> Iterable[Tuple[str, Dict[str, Any]]]:
  """(split, example) for each month of one item from its sales (see days_examples)."""
  days: ItemDays = {}
  for sale in sales:
    add_sale(days, sale)
  return days_examples(item_number, days, last_month, eval_months)


def days_examples(item_number: str, days: ItemDays, last_month: int, eval_months: int
                  ) -> Iterable[Tuple[str, Dict[str, Any]]]:
  """(split, example) for each month of one item, from its first sale month to one month after its last
  (never after last_month, the latest month in the data).

  History totals count only months since the item's first sale (0 before); the label is the total of the
  next month; split: offset = last_month - month: 0 -> score (no label), 1..eval_months -> eval, else train.
  Item attributes are those of the item's latest sale up to the end of the month (latest by day, then bottles).
  """
  daily: Dict[datetime.date, float] = {}
  totals: Dict[int, float] = {}
  attributes_by_month: Dict[int, Tuple[Any, ...]] = {}
  for ordinal in sorted(days):
    bottles, (_, attributes) = days[ordinal]
    day = datetime.date.fromordinal(ordinal)
    month = month_index(day)
    for value in sorted(bottles):
      daily[day] = daily.get(day, 0.0) + value
      totals[month] = totals.get(month, 0.0) + value
    attributes_by_month[month] = attributes
  first, last = min(totals), max(totals)
  attributes = attributes_by_month[first]
  for index in range(first, min(last + 1, last_month) + 1):
    attributes = attributes_by_month.get(index, attributes)
    history = [totals.get(index - k, 0.0) for k in range(4)]
    has_last_year = index - 11 >= first
    recent = [totals.get(index - k, 0.0) for k in range(3) if index - k >= first]
    example = {
        KEY: item_number, MONTH: month_number(index), FORECAST_MONTH: month_number(index + 1),
        **month_sequence(daily, index),
        **dict(zip(TEXT_ATTRIBUTES + NUMERIC_ATTRIBUTES, attributes)),
        **dict(zip(HISTORY, history + [totals.get(index - 11, 0.0)])),
        'has_last_year': int(has_last_year), 'history_months': min(index - first, 12),
        'forecast_month_of_year': (index + 1) % 12 + 1,
        BASELINES['naive']: history[0],
        BASELINES['seasonal_naive']: totals.get(index - 11, 0.0) if has_last_year else history[0],
        BASELINES['moving_average']: sum(recent) / len(recent),
        **statistical_forecasts([totals.get(m, 0.0) for m in range(first, index + 1)]),
    }
    offset = last_month - index
    if offset == 0:
      yield 'score', example
    else:
      yield 'eval' if offset <= eval_months else 'train', {**example, LABEL: totals.get(index + 1, 0.0)}


def statistical_forecasts(history: List[float]) -> Dict[str, float]:
  """Exponential smoothing, Croston and TSB forecasts and the MASE scale, from the item's monthly totals since its
  first month up to the origin (see pipelines.sales_forecast.methods)."""
  return {BASELINES['exponential_smoothing']: methods.fitted_exponential_smoothing(history, SES_ALPHAS),
          BASELINES['croston']: methods.croston(history, CROSTON_ALPHA),
          BASELINES['tsb']: methods.tsb(history, TSB_ALPHA, TSB_BETA),
          MASE_SCALE: methods.mase_scale(history)}


class _ParseBatch(beam.DoFn):
  """A batch of rows -> (item, its days in this batch) per item, and each rejected row with its reason (tagged
  `rejected`, counted with a Beam counter per reason)."""

  def process(self, rows: List[Dict[str, Any]]):
    by_item: Dict[str, ItemDays] = {}
    rejected: Dict[str, int] = {}
    for row in rows:
      sale, reason = parse_sale(row)
      if reason:
        rejected[reason] = rejected.get(reason, 0) + 1
        yield beam.pvalue.TaggedOutput('rejected', {'reason': reason, 'record': row})
      else:
        add_sale(by_item.setdefault(sale.item_number, {}), sale)
    for reason, count in rejected.items():
      beam.metrics.Metrics.counter(COUNTER_NAMESPACE, f'rejected_{reason}').inc(count)
    yield from by_item.items()


class _MergeDays(beam.CombineFn):
  """Every batch's days of one item, merged (merge_days)."""

  def create_accumulator(self) -> ItemDays:
    return {}

  def add_input(self, accumulator: ItemDays, days: ItemDays) -> ItemDays:
    return merge_days(accumulator, days)

  def merge_accumulators(self, accumulators: Iterable[ItemDays]) -> ItemDays:
    merged: ItemDays = {}
    for accumulator in accumulators:
      merge_days(merged, accumulator)
    return merged

  def extract_output(self, accumulator: ItemDays) -> ItemDays:
    return accumulator


def _to_split(element: Tuple[str, ItemDays], last_month: int, eval_months: int):
  item_number, days = element
  for split, example in days_examples(item_number, days, last_month, eval_months):
    yield beam.pvalue.TaggedOutput(split, example)


def build_examples(rows: beam.PCollection, params: Dict[str, Any]) -> BuiltExamples:
  """Invoice lines -> item-month examples in train / eval / score (see days_examples).

  params: eval_months (labelled months in `eval`). Rows are parsed in batches, each batch summed per item and day
  before the group-by (the item's days hold one value per sale, not its row). Rows rejected by reason (REASONS),
  each counted with a Beam counter and kept with its reason.
  """
  parsed = (rows
            | 'Batch' >> beam.BatchElements(min_batch_size=100, max_batch_size=5000)
            | 'Parse' >> beam.ParDo(_ParseBatch()).with_outputs('rejected', main='valid'))
  items = parsed.valid | 'DaysByItem' >> beam.CombinePerKey(_MergeDays())
  last_month = beam.pvalue.AsSingleton(
      items | 'Months' >> beam.Map(lambda kv: month_index(datetime.date.fromordinal(max(kv[1]))))
      | 'LastMonth' >> beam.CombineGlobally(lambda months: max(months, default=0)))
  splits = items | 'ItemExamples' >> beam.FlatMap(_to_split, last_month, int(params['eval_months'])).with_outputs(
      'train', 'eval', 'score')
  return BuiltExamples(splits={'train': splits.train, 'eval': splits.eval, 'score': splits.score},
                       rejected=parsed.rejected)


# ---------------------------------------------------------------------------------------------------
# preprocessing_fn (Transform): per-item scale normalisation (no full pass needed) and the category vocabulary
# ---------------------------------------------------------------------------------------------------

def _column(tensor: tf.Tensor) -> tf.Tensor:
  return tf.reshape(tf.cast(tensor, tf.float32), [-1, 1])


def log_feature(baseline: str) -> str:
  """The transformed feature holding log1p of a baseline's forecast (the model's anchor is one of them)."""
  return f'log_{baseline}'


def scaled_features(inputs: Dict[str, Any]) -> Dict[str, tf.Tensor]:
  """The model's numeric inputs, every one scaled by the item itself, with plain TF ops (no analyzer), so that
  Transform and the benchmark compute the same: `level` = log1p(3-month moving average), the item's size;
  `relative` = log1p(history totals and baselines) - level; daily bottles relative to the level's daily mean;
  log1p of each baseline (the anchor candidates); context (month of the forecast, history length, price, pack)."""
  level = tf.math.log1p(_column(inputs[BASELINES['moving_average']]))
  logs = {name: tf.math.log1p(_column(inputs[feature])) for name, feature in BASELINES.items()}
  relative = tf.concat([tf.math.log1p(_column(inputs[name])) - level for name in HISTORY]
                       + [logs[name] - level for name in BASELINES], axis=1)
  daily = tf.cast(inputs['daily_bottles'], tf.float32)
  mean_daily = (tf.math.expm1(level) + 1.0) / 30.0
  month_of_year = tf.one_hot(tf.reshape(tf.cast(inputs['forecast_month_of_year'], tf.int64), [-1]) - 1, 12)
  context = tf.concat([month_of_year, _column(inputs['has_last_year']), _column(inputs['history_months']) / 12.0,
                       level / 8.0, tf.math.log(_column(inputs['state_bottle_retail']) + 1.0) / 5.0,
                       tf.math.log(_column(inputs['pack'])) / 5.0], axis=1)
  return {'level': level, 'relative': relative, 'context': context,
          'daily_relative': tf.math.log1p(daily / mean_daily),
          'sale_day': tf.cast(inputs['sale_day'], tf.float32),
          'day_in_month': tf.cast(inputs['day_in_month'], tf.int64),
          'day_of_week': tf.cast(inputs['day_of_week'], tf.int64),
          **{log_feature(name): value for name, value in logs.items()}}


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """scaled_features, the category vocabulary, item and month (to order the training data, not model inputs)
  and label -> log1p(label)."""
  outputs = scaled_features(inputs)
  outputs['category_name_id'] = tft.compute_and_apply_vocabulary(
      tf.reshape(inputs[SLICE_FEATURE], [-1]), num_oov_buckets=1, vocab_filename=SLICE_FEATURE)
  outputs[KEY] = tf.reshape(inputs[KEY], [-1])
  outputs[MONTH] = tf.reshape(inputs[MONTH], [-1])
  if LABEL in inputs:
    outputs[LABEL] = tf.math.log1p(_column(inputs[LABEL]))
  return outputs


# ---------------------------------------------------------------------------------------------------
# run_fn (Trainer): a correction of the best baseline in log space, from a masked GRU and the scaled features
# ---------------------------------------------------------------------------------------------------

SEQUENCE_INPUTS = ['daily_relative', 'sale_day', 'day_in_month', 'day_of_week']
MODEL_INPUTS = SEQUENCE_INPUTS + ['relative', 'context', 'category_name_id']


def build_model(anchor: str, n_categories: int, config: Dict[str, Any], n_relative: int, n_context: int
                ) -> keras.Model:
  """log1p(forecast) = log1p(anchor baseline's forecast) + correction. The correction comes from a GRU over the
  month's days (masked outside the month), the relative history, the context and a category embedding, through
  one hidden layer into a zero-initialised output: an untrained model forecasts exactly the anchor."""
  sequence = {name: keras.Input(shape=(DAYS,), name=name, dtype='int64' if name in ('day_in_month', 'day_of_week')
                                else 'float32') for name in SEQUENCE_INPUTS}
  relative = keras.Input(shape=(n_relative,), name='relative')
  context = keras.Input(shape=(n_context,), name='context')
  category = keras.Input(shape=(), name='category_name_id', dtype='int64')
  anchor_input = keras.Input(shape=(1,), name=log_feature(anchor))
  regularizer = keras.regularizers.l2(float(config['l2']))
  steps = keras.layers.Concatenate(axis=-1)([
      keras.layers.Reshape((DAYS, 1))(sequence['daily_relative']),
      keras.layers.Reshape((DAYS, 1))(sequence['sale_day']),
      keras.layers.Embedding(8, 2, name='day_of_week_embedding')(sequence['day_of_week'])])
  mask = keras.layers.Lambda(lambda days: tf.cast(days, tf.bool), name='month_mask')(sequence['day_in_month'])
  parts = [relative, context, keras.layers.Flatten()(keras.layers.Embedding(
      n_categories, 3, embeddings_regularizer=regularizer, name='category_embedding')(category))]
  if int(config['gru_units']):
    parts.append(keras.layers.GRU(int(config['gru_units']), kernel_regularizer=regularizer, name='daily_gru')(
        steps, mask=mask))
  x = keras.layers.Concatenate()(parts)
  for units in [int(u) for u in str(config['hidden_units']).split(',') if u]:
    x = keras.layers.Dense(units, activation='relu', kernel_regularizer=regularizer)(x)
    x = keras.layers.Dropout(float(config['dropout']))(x)
  correction = keras.layers.Dense(1, kernel_initializer='zeros', name='log_correction')(x)
  output = keras.layers.Add(name='log1p_forecast')([anchor_input, correction])
  return keras.Model(inputs={**sequence, 'relative': relative, 'context': context, 'category_name_id': category,
                             log_feature(anchor): anchor_input}, outputs=output)


def choose_anchor(features: Dict[str, np.ndarray], log_labels: np.ndarray) -> str:
  """The baseline with the smallest MAE in bottles on the given (training) item-months."""
  labels = np.expm1(log_labels.reshape(-1))
  errors = {name: float(np.mean(np.abs(np.expm1(features[log_feature(name)].reshape(-1)) - labels)))
            for name in BASELINES}
  return min(errors, key=errors.get)


def _loss(kind: str):
  """'log': MAE of log1p(bottles), scale-free (a 10% miss costs a small item what it costs a large one) and
  minimised by the conditional median, which also minimises MAE in bottles; 'scaled': MAE in bottles divided by
  the item's level + 1 (a MASE-like weight)."""
  if kind == 'log':
    return keras.losses.MeanAbsoluteError()

  def scaled(y_true, y_pred):
    return tf.reduce_mean(tf.abs(tf.math.expm1(y_pred) - tf.math.expm1(y_true)) / (tf.math.expm1(y_true) + 1.0))
  return scaled


def fit(features: Dict[str, np.ndarray], log_labels: np.ndarray, months: np.ndarray, n_categories: int,
        config: Dict[str, Any]) -> Tuple[keras.Model, Dict[str, Any]]:
  """Chooses the anchor on the training item-months, trains the correction with the last `validation_months`
  months held out and keeps the weights of the epoch with the lowest validation loss, the untrained (anchor-only)
  weights included; (model, {'anchor', 'best_epoch' (0 = the anchor alone), 'validation_loss', 'validation_mae'
  (in bottles; on the training months when none is held out)})."""
  seed = int(config['seed'])
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  anchor = choose_anchor(features, log_labels)
  distinct, n_held = np.unique(months), int(config['validation_months'])
  # Held out only while months remain to train on; else every epoch is trained and the last one kept.
  held = months >= distinct[-n_held] if 0 < n_held < len(distinct) else np.zeros(len(months), bool)
  inputs = SEQUENCE_INPUTS + ['relative', 'context', 'category_name_id', log_feature(anchor)]

  def dataset(rows):
    return tf.data.Dataset.from_tensor_slices(({k: features[k][rows] for k in inputs}, log_labels[rows]))

  model = build_model(anchor, n_categories, config, features['relative'].shape[1], features['context'].shape[1])
  # The held-out loss without the L2 penalty (a metric), so that the anchor-only weights compete on error alone.
  model.compile(optimizer=keras.optimizers.Adam(float(config['learning_rate'])), loss=_loss(config['loss']),
                metrics=[_loss(config['loss'])])
  train = dataset(~held).shuffle(int((~held).sum()), seed=seed).batch(int(config['batch_size']))
  validation = dataset(held).batch(4096) if held.any() else None
  best = {'epoch': 0, 'loss': model.evaluate(validation, verbose=0)[1] if validation else np.inf,
          'weights': model.get_weights()}
  for epoch in range(1, int(config['epochs']) + 1):
    model.fit(train, epochs=1, verbose=0)
    loss = model.evaluate(validation, verbose=0)[1] if validation else -epoch
    if loss < best['loss']:
      best = {'epoch': epoch, 'loss': loss, 'weights': model.get_weights()}
  model.set_weights(best['weights'])
  scored = held if held.any() else ~held  # nothing held out: the training months (a finite score for the Tuner)
  validation_mae = float(np.mean(np.abs(
      forecast_from_output(model.predict(dataset(scored).batch(4096), verbose=0)).numpy()
      - np.expm1(log_labels[scored].reshape(-1)))))
  logging.info('anchor %s, kept epoch %d, validation MAE %.2f', anchor, best['epoch'], validation_mae)
  return model, {'anchor': anchor, 'best_epoch': best['epoch'], 'validation_mae': validation_mae,
                 'validation_loss': float(best['loss']) if held.any() else None}


def training_data(file_pattern: List[str], data_accessor, tf_transform_output: tft.TFTransformOutput
                  ) -> Tuple[Dict[str, np.ndarray], np.ndarray, np.ndarray]:
  """The transformed train split in memory, sorted by item and month: (features, log1p labels, months).

  The order makes training independent of the order Beam wrote the files in."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=4096, label_key=LABEL, shuffle=False, num_epochs=1),
      tf_transform_output.transformed_metadata.schema)
  batches = list(dataset.as_numpy_iterator())
  features = {name: np.concatenate([batch[name] for batch, _ in batches]) for name in batches[0][0]}
  labels = np.concatenate([label for _, label in batches])
  order = np.lexsort((features[MONTH], features.pop(KEY)))
  months = features.pop(MONTH)[order]
  return {name: values[order] for name, values in features.items()}, labels[order], months


def forecast_from_output(model_output: tf.Tensor) -> tf.Tensor:
  """Bottles from the model's log1p output, shape [batch], never negative."""
  return tf.math.expm1(tf.nn.relu(tf.reshape(model_output, [-1])))


def _serving_fn(model: keras.Model, tf_transform_output: tft.TFTransformOutput):
  """serving_default: serialized raw tf.Examples -> forecast_bottles (through the same Transform graph) and the
  baselines' forecasts (read from the examples), so TFMA scores them all as outputs of one model."""
  model.tft_layer = tf_transform_output.transform_features_layer()
  raw_feature_spec = tf_transform_output.raw_feature_spec()
  raw_feature_spec.pop(LABEL)

  @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')])
  def serve(serialized_examples):
    features = tf.io.parse_example(serialized_examples, raw_feature_spec)
    transformed = model.tft_layer(features)
    outputs = {PREDICTION: forecast_from_output(model({k: transformed[k] for k in model.input_names}))}
    outputs.update({name: tf.reshape(tf.cast(features[name], tf.float32), [-1]) for name in BASELINES.values()})
    return outputs

  return serve


def search_space() -> keras_tuner.HyperParameters:
  """The Tuner's space: the correction network's width and regularisation and the learning rate."""
  hp = keras_tuner.HyperParameters()
  hp.Choice('hidden_units', ['16', '32', '64'])
  hp.Choice('l2', [1e-5, 1e-4, 1e-3])
  hp.Choice('dropout', [0.1, 0.2, 0.3])
  hp.Choice('learning_rate', [0.001, 0.003, 0.01])
  return hp


def tuner_fn(fn_args) -> tfx.components.TunerFnResult:
  """A seeded random search (pipelines.tuning) of `tuning_trials` trials; each fits the model on the train split
  with half the epochs and scores its MAE in bottles on the last TUNING_VALIDATION_MONTHS train months, so that
  the eval split stays untouched for the champion gate."""
  config = dict(fn_args.custom_config)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  features, labels, months = training_data(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
  n_categories = tf_transform_output.vocabulary_size_by_name(SLICE_FEATURE) + 1

  def build_and_score(hp: keras_tuner.HyperParameters) -> float:
    trial = {**config, **hp.values, 'epochs': max(1, int(config['epochs']) // 2),
             'validation_months': TUNING_VALIDATION_MONTHS}
    return fit(features, labels, months, n_categories, trial)[1]['validation_mae']

  tuner = tuning.make_tuner(build_and_score, search_space(), 'validation_mae', 'min',
                            int(config['tuning_trials']), int(config['seed']), fn_args.working_dir,
                            settings=config)
  return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={})


def run_fn(fn_args) -> None:
  """Trains the baseline-anchored model (fit) on the train split, with the Tuner's best values when it ran, and
  saves a Keras-2 SavedModel whose serving signature also returns every baseline's forecast."""
  config = tuning.tuned_values(fn_args, fn_args.custom_config)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  features, labels, months = training_data(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
  logging.info('Training on %d item-months', len(labels))
  model, chosen = fit(features, labels, months, tf_transform_output.vocabulary_size_by_name(SLICE_FEATURE) + 1,
                      config)
  # The values trained with (the Tuner's best ones included), the anchor and the kept epoch, for the report.
  tf.io.gfile.makedirs(fn_args.model_run_dir)
  with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, TRAINING_FILE), 'w') as f:
    json.dump({'hyperparameters': {k: v for k, v in config.items() if k != 'code_version'}, **chosen}, f,
              sort_keys=True)
  model.save(fn_args.serving_model_dir, save_format='tf',
             signatures={'serving_default': _serving_fn(model, tf_transform_output)})


# ---------------------------------------------------------------------------------------------------
# eval_config (Evaluator): the model and every baseline on the same eval item-months
# ---------------------------------------------------------------------------------------------------

def _metrics() -> List[tfma.MetricConfig]:
  return [tfma.MetricConfig(class_name=name) for name in
          ('ExampleCount', 'MeanAbsoluteError', 'RootMeanSquaredError', 'MeanLabel', 'MeanPrediction')]


def eval_config(max_mae_increase: float) -> tfma.EvalConfig:
  """MAE, RMSE, mean label/prediction of the model (output forecast_bottles) and of every baseline's forecast (the
  serving signature's other outputs), on the same examples, overall and by category.

  Blessing: at least one eval example and an MAE at most `max_mae_increase` (relative) above the latest blessed
  model's on the same examples. TFMA cannot gate one output against another: the pipeline's ChampionGate
  (pipelines.champion) then blesses the model only if its MAE is below every baseline's.
  """
  overall = [tfma.SlicingSpec()]
  gates = {
      'MeanAbsoluteError': tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.LOWER_IS_BETTER, relative={'value': max_mae_increase})),
      # A value threshold, so that a first model (no blessed one to compare with) can be blessed at all.
      'ExampleCount': tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={'value': 1})),
  }
  gated = _metrics()
  for metric in gated:
    if metric.class_name in gates:
      metric.per_slice_thresholds.add(slicing_specs=overall, threshold=gates[metric.class_name])
  label_keys = {output: LABEL for output in [PREDICTION] + list(BASELINES.values())}
  return tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(name='candidate', signature_name='serving_default', label_keys=label_keys),
          tfma.ModelSpec(name='baseline', signature_name='serving_default', label_keys=label_keys, is_baseline=True),
      ],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[SLICE_FEATURE])],
      options=tfma.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
      metrics_specs=[
          tfma.MetricsSpec(metrics=gated, output_names=[PREDICTION]),
          tfma.MetricsSpec(metrics=_metrics(), output_names=list(BASELINES.values()), model_names=['candidate']),
      ])
