"""Sales forecast module file: item-month examples from invoice lines, preprocessing, the GRU and its evaluation.

Read top to bottom: build_examples (Beam, used by ExamplesBuilder) -> preprocessing_fn (Transform)
-> run_fn (Trainer) -> eval_config (Evaluator).

Input rows: the columns of the Iowa liquor sales table (COLUMNS), as strings (CSV lines read as text, or a
BigQuery query that already sums bottles per item and day) or as numbers. Per item, bottles are summed per
day; one example per item and month holds that month's daily sequence (day of month 1..31, masked outside
the month), item features, history totals and the three practitioner baselines; the label is the item's
total in the NEXT month. Months up to the evaluation window -> `train`, the last `eval_months` labelled
months -> `eval`, the latest month (no label yet) -> `score`.
"""
import calendar
import datetime
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from google.protobuf import wrappers_pb2
from tfx_bsl.public import tfxio

from pipelines.components.examples_builder import BuiltExamples
from pipelines.parsing import parse_finite_float

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
             'moving_average': 'moving_average_forecast'}
VOCABULARY_FEATURES = ['item_number', 'category_name', 'vendor_name']
SLICE_FEATURE = 'category_name'


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
  number = parse_finite_float(str(value).strip().replace('$', '').replace(',', '')
                              if isinstance(value, (str, bytes)) else value)
  if not np.isfinite(number):
    raise ValueError(f'not a finite number: {value!r}')
  return number


def _empty(value: Any) -> bool:
  return value is None or str(value).strip() == ''


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


def item_examples(item_number: str, sales: Iterable[Sale], last_month: int, eval_months: int
                  ) -> Iterable[Tuple[str, Dict[str, Any]]]:
  """(split, example) for each month of one item, from its first sale month to one month after its last
  (never after last_month, the latest month in the data).

  History totals count only months since the item's first sale (0 before); the label is the total of the
  next month; split: offset = last_month - month: 0 -> score (no label), 1..eval_months -> eval, else train.
  Item attributes are those of the item's latest sale up to the end of the month.
  """
  sales = sorted(sales, key=lambda s: (s.day, s.bottles, s.attributes))
  daily: Dict[datetime.date, float] = {}
  totals: Dict[int, float] = {}
  attributes_by_month: Dict[int, Tuple[Any, ...]] = {}
  for sale in sales:
    daily[sale.day] = daily.get(sale.day, 0.0) + sale.bottles
    totals[month_index(sale.day)] = totals.get(month_index(sale.day), 0.0) + sale.bottles
    attributes_by_month[month_index(sale.day)] = sale.attributes
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
    }
    offset = last_month - index
    if offset == 0:
      yield 'score', example
    else:
      yield 'eval' if offset <= eval_months else 'train', {**example, LABEL: totals.get(index + 1, 0.0)}


def _parse_or_reject(row: Dict[str, Any]):
  sale, reason = parse_sale(row)
  if reason:
    beam.metrics.Metrics.counter(COUNTER_NAMESPACE, f'rejected_{reason}').inc()
    yield beam.pvalue.TaggedOutput('rejected', {'reason': reason, 'record': row})
  else:
    yield sale.item_number, sale


def _to_split(element, last_month: int, eval_months: int):
  item_number, sales = element
  for split, example in item_examples(item_number, sales, last_month, eval_months):
    yield beam.pvalue.TaggedOutput(split, example)


def build_examples(rows: beam.PCollection, params: Dict[str, Any]) -> BuiltExamples:
  """Invoice lines -> item-month examples in train / eval / score (see item_examples).

  params: eval_months (labelled months in `eval`). Rows rejected by reason (REASONS), each counted with a
  Beam counter and kept with its reason.
  """
  parsed = rows | 'Parse' >> beam.FlatMap(_parse_or_reject).with_outputs('rejected', main='valid')
  last_month = beam.pvalue.AsSingleton(
      parsed.valid | 'Months' >> beam.Map(lambda kv: month_index(kv[1].day))
      | 'LastMonth' >> beam.CombineGlobally(lambda months: max(months, default=0)))
  items = (parsed.valid
           | 'GroupByItem' >> beam.GroupByKey()
           | 'ItemExamples' >> beam.FlatMap(_to_split, last_month, int(params['eval_months'])).with_outputs(
               'train', 'eval', 'score'))
  return BuiltExamples(splits={'train': items.train, 'eval': items.eval, 'score': items.score},
                       rejected=parsed.rejected)


# ---------------------------------------------------------------------------------------------------
# preprocessing_fn (Transform): full-pass scaling and vocabularies
# ---------------------------------------------------------------------------------------------------

def _column(tensor: tf.Tensor) -> tf.Tensor:
  return tf.reshape(tf.cast(tensor, tf.float32), [-1, 1])


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """z-score of log1p bottles (daily sequence, history totals, baselines), min-max of log pack, volume and
  prices, vocabularies of item, category and vendor, one-hot month of the forecast; label -> log1p(label)."""
  outputs = {
      'daily_bottles': tft.scale_to_z_score(tf.math.log1p(tf.cast(inputs['daily_bottles'], tf.float32))),
      'sale_day': tf.cast(inputs['sale_day'], tf.float32),
      'day_in_month': tf.cast(inputs['day_in_month'], tf.int64),
      'day_of_week': tf.cast(inputs['day_of_week'], tf.int64),
      'has_last_year': _column(inputs['has_last_year']),
      'history_months': _column(inputs['history_months']) / 12.0,
      'forecast_month_of_year': tf.one_hot(tf.reshape(tf.cast(inputs['forecast_month_of_year'], tf.int64), [-1]) - 1,
                                           12),
      # Not model inputs: they order the training data (training_data).
      KEY: tf.reshape(inputs[KEY], [-1]),
      MONTH: tf.reshape(inputs[MONTH], [-1]),
  }
  for name in HISTORY + list(BASELINES.values()):
    outputs[name] = tft.scale_to_z_score(tf.math.log1p(_column(inputs[name])))
  for name in NUMERIC_ATTRIBUTES:
    outputs[name] = tft.scale_by_min_max(tf.math.log(_column(inputs[name])))
  for name in VOCABULARY_FEATURES:
    outputs[f'{name}_id'] = tft.compute_and_apply_vocabulary(
        tf.reshape(inputs[name], [-1]), num_oov_buckets=1, vocab_filename=name)
  if LABEL in inputs:
    outputs[LABEL] = tf.math.log1p(_column(inputs[LABEL]))
  return outputs


# ---------------------------------------------------------------------------------------------------
# run_fn (Trainer): masked GRU over the daily sequence + item and history features
# ---------------------------------------------------------------------------------------------------

DENSE_FEATURES = (HISTORY + list(BASELINES.values()) + NUMERIC_ATTRIBUTES
                  + ['has_last_year', 'history_months', 'forecast_month_of_year'])


def build_model(vocabulary_sizes: Dict[str, int], gru_units: int, hidden_units: List[int], dropout: float,
                output_bias: float) -> keras.Model:
  """GRU over days 1..31 (bottles, sale flag, day-of-week embedding; masked outside the month) concatenated
  with item/category/vendor embeddings and the dense features -> Dense layers -> log1p(next month's bottles)."""
  sequence_inputs = {name: keras.Input(shape=(DAYS,), name=name, dtype='int64' if name in ('day_in_month',
                                                                                              'day_of_week')
                                       else 'float32') for name in SEQUENCE}
  dense_inputs = {name: keras.Input(shape=(12 if name == 'forecast_month_of_year' else 1,), name=name)
                  for name in DENSE_FEATURES}
  id_inputs = {name: keras.Input(shape=(), name=f'{name}_id', dtype='int64') for name in VOCABULARY_FEATURES}
  day_of_week = keras.layers.Embedding(8, 3, name='day_of_week_embedding')(sequence_inputs['day_of_week'])
  steps = keras.layers.Concatenate(axis=-1)([
      keras.layers.Reshape((DAYS, 1))(sequence_inputs['daily_bottles']),
      keras.layers.Reshape((DAYS, 1))(sequence_inputs['sale_day']), day_of_week])
  mask = keras.layers.Lambda(lambda days: tf.cast(days, tf.bool), name='month_mask')(sequence_inputs['day_in_month'])
  encoded = keras.layers.GRU(gru_units, name='daily_gru')(steps, mask=mask)
  embeddings = [keras.layers.Embedding(size, 8 if name == KEY else 4, name=f'{name}_embedding')(id_inputs[name])
                for name, size in sorted(vocabulary_sizes.items())]
  x = keras.layers.Concatenate()([encoded] + embeddings + [dense_inputs[name] for name in DENSE_FEATURES])
  for units in hidden_units:
    x = keras.layers.Dense(units, activation='relu')(x)
    x = keras.layers.Dropout(dropout)(x)
  output = keras.layers.Dense(1, name='log1p_forecast', bias_initializer=keras.initializers.Constant(output_bias))(x)
  return keras.Model(inputs={**sequence_inputs, **dense_inputs, **{f'{n}_id': t for n, t in id_inputs.items()}},
                     outputs=output)


def training_data(file_pattern: List[str], data_accessor, tf_transform_output: tft.TFTransformOutput
                  ) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """The transformed train split in memory, sorted by item and month, without them: (features, labels).

  The order makes training independent of the order Beam wrote the files in."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=4096, label_key=LABEL, shuffle=False, num_epochs=1),
      tf_transform_output.transformed_metadata.schema)
  batches = list(dataset.as_numpy_iterator())
  features = {name: np.concatenate([batch[name] for batch, _ in batches]) for name in batches[0][0]}
  labels = np.concatenate([label for _, label in batches])
  order = np.lexsort((features.pop(MONTH), features.pop(KEY)))
  return {name: values[order] for name, values in features.items()}, labels[order]


def forecast_from_output(model_output: tf.Tensor) -> tf.Tensor:
  """Bottles from the model's log1p output, shape [batch], never negative."""
  return tf.math.expm1(tf.nn.relu(tf.reshape(model_output, [-1])))


def _serving_fn(model: keras.Model, tf_transform_output: tft.TFTransformOutput):
  """serving_default: serialized raw tf.Examples -> forecast_bottles (through the same Transform graph) and the
  three baseline forecasts (read from the examples), so TFMA scores all four as outputs of one model."""
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


def run_fn(fn_args) -> None:
  """Trains the GRU with mean absolute error on log1p(bottles) and saves a Keras-2 SavedModel.

  Loss: MAE in log1p space. It is scale-free (a 10% miss costs a small item what it costs a large one, so
  large items do not swamp small ones) and its minimiser, the conditional median, is also the forecast
  that minimises MAE in bottles, because the median commutes with the monotone log1p.
  """
  config = fn_args.custom_config
  seed = int(config['seed'])
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  features, labels = training_data(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
  logging.info('Training on %d item-months; median log1p label %.3f', len(labels), float(np.median(labels)))
  vocabulary_sizes = {name: tf_transform_output.vocabulary_size_by_name(name) + 1 for name in VOCABULARY_FEATURES}
  train = (tf.data.Dataset.from_tensor_slices((features, labels))
           .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
           .batch(int(config['batch_size'])))
  model = build_model(vocabulary_sizes, int(config['gru_units']),
                      [int(u) for u in str(config['hidden_units']).split(',') if u], float(config['dropout']),
                      float(np.median(labels)))
  model.compile(optimizer=keras.optimizers.Adam(float(config['learning_rate'])), loss='mae')
  model.fit(train, epochs=int(config['epochs']), verbose=2)
  model.save(fn_args.serving_model_dir, save_format='tf',
             signatures={'serving_default': _serving_fn(model, tf_transform_output)})


# ---------------------------------------------------------------------------------------------------
# eval_config (Evaluator): the GRU and the three baselines on the same eval item-months
# ---------------------------------------------------------------------------------------------------

def _metrics() -> List[tfma.MetricConfig]:
  return [tfma.MetricConfig(class_name=name) for name in
          ('ExampleCount', 'MeanAbsoluteError', 'RootMeanSquaredError', 'MeanLabel', 'MeanPrediction')]


def eval_config(max_mae_increase: float) -> tfma.EvalConfig:
  """MAE, RMSE, mean label/prediction of the GRU (output forecast_bottles) and of the naive, seasonal-naive and
  moving-average forecasts (the serving signature's other outputs), on the same examples, overall and by category.

  Blessing: at least one eval example and an MAE at most `max_mae_increase` (relative) above the latest blessed
  model's on the same examples. TFMA cannot gate one output against another, so whether the GRU beats the
  baselines is reported (summary `data.rnn_mae_over_best_baseline`), not gated.
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
