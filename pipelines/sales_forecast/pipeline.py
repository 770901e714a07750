"""Sales forecast pipeline: invoice lines -> item-month examples -> a baseline-anchored network forecasting next
month's bottles, evaluated beside six baselines (naive, seasonal naive, moving average, exponential smoothing,
Croston, TSB), pushed and scored on the latest month only if it beats all of them on eval MAE.

CsvLinesExampleGen (or BigQueryExampleGen with the daily per-item sums done in SQL)
-> ExamplesBuilder(modules.sales_forecast.build_examples, max_rejected_fraction) -> StatisticsGen -> SchemaGen
-> ExampleValidator -> AnomaliesGate -> Transform -> Tuner (setting `tuning`) -> Trainer -> Evaluator (model +
baselines, vs latest blessed) -> ChampionGate -> Pusher -> BulkInferrer(score) -> PredictionsExport
-> forecasts.csv (report extras: the champion's forecasts, `predicted_by`).

CsvExampleGen fails a whole run on one line with a wrong field count, so a local or gs:// CSV file is read
as text lines here (CsvLinesExampleGen, through pipelines.csv_lines): each line becomes an example of its
columns as strings, or, when it does not parse into the header's fields, an example holding only the line,
which build_examples rejects with its reason (wrong_field_count) like every other bad row. Quoted fields with
line breaks are not supported (the Iowa data has none).
"""
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx import v1 as tfx
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor

from modules import sales_forecast as sf
from pipelines import bigquery, csv_lines, wiring
from pipelines import artifacts, beam_io
from pipelines import champion
from pipelines.components.champion_gate import champion_gate
from pipelines.components.examples_builder import ExamplesBuilder
from pipelines.components.predictions_export import PredictionsExport
from pipelines.example_gens import raw_example_gen
from pipelines.report import ReportExtras, evaluation_metrics
from pipelines.sales_forecast import methods
from pipelines.runners import code_version

MODULE = 'modules.sales_forecast'
REQUIRED_COLUMNS = sf.COLUMNS
SETTINGS: Dict[str, Any] = {
    'eval_months': 3,                 # the last N labelled months are the eval split
    'max_rejected_fraction': 0.05,    # the run fails when more input rows than this are rejected
    'seed': 42,
    'gru_units': 0,                   # GRU over the month's days (0: none: steadier across data sets)
    'hidden_units': '32',
    'dropout': 0.2,
    'l2': 1e-4,                       # sized for a few thousand item-months
    'loss': 'log',                    # 'log': MAE of log1p(bottles); 'scaled': MAE in bottles / (item level + 1)
    'learning_rate': 0.003,
    'batch_size': 64,
    'epochs': 30,
    'validation_months': 0,           # >0: hold out the last N train months to pick the epoch (the anchor alone
                                      # included); 0: train on every train month (measured better)
    'max_mae_increase': 0.05,         # blessing: MAE at most 5% above the latest blessed model's
    'tuning': 'on',                   # Tuner before the Trainer (modules.sales_forecast.tuner_fn)
    'tuning_trials': 3,               # keeps a tuned run under 1.5x an untuned one (measured 4: ~1.55x)
}
SETTING_CHOICES: Dict[str, tuple] = {'loss': ('log', 'scaled'), 'tuning': ('on', 'off')}
TRAINER_SETTINGS = ('seed', 'gru_units', 'hidden_units', 'dropout', 'l2', 'loss', 'learning_rate', 'batch_size',
                    'epochs', 'validation_months')
MODEL_NAME = 'rnn'
PRIMARY_METRIC = 'mean_absolute_error'  # the champion: the model must beat every baseline's eval MAE
# summary.json metrics name -> (TFMA model, output, metric prefix), as registry.UseCase.reported_models wants.
REPORTED_MODELS = {MODEL_NAME: ('candidate', sf.PREDICTION, ''),
                   **{name: ('candidate', output, '') for name, output in sf.BASELINES.items()}}
REPORTED_METRICS = (('example_count', 'examples'), ('mae', 'MAE'), ('rmse', 'RMSE'), ('wape', 'WAPE'), ('mase', 'MASE'),
                    ('mean_prediction', 'mean forecast'), ('mean_label', 'mean actual'))
FORECASTS_FILE = 'forecasts.csv'


# ---------------------------------------------------------------------------------------------------
# Ingestion: CSV lines as text (local or gs://), or a BigQuery query summing bottles per item and day
# ---------------------------------------------------------------------------------------------------

def line_to_row(line: str, header: List[str]) -> Dict[str, str]:
  """The COLUMNS of one CSV line as strings, or {MALFORMED_LINE: line} when it does not parse into the header's
  fields."""
  return csv_lines.csv_line_to_row(line, header, sf.MALFORMED_LINE, keep=sf.COLUMNS)


@beam.ptransform_fn
def _CsvLinesToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # pylint: disable=invalid-name
                       split_pattern: str) -> beam.PCollection:
  return (pipeline
          | 'ReadCsv' >> csv_lines.ReadCsvRows(  # pylint: disable=no-value-for-parameter
              os.path.join(exec_properties['input_base'], split_pattern), line_to_row, required=sf.COLUMNS,
              encoding=csv_lines.decode_reader_config(exec_properties)['encoding'])
          | 'ToExamples' >> beam_io.RowsToSerializedExamples())  # pylint: disable=no-value-for-parameter


class CsvLinesExecutor(BaseExampleGenExecutor):
  """ExampleGen executor that reads CSV files line by line and never fails on a malformed line."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _CsvLinesToExample


def bigquery_query(table: bigquery.BigQueryTable, column_map: Mapping[str, str]) -> str:
  """Bottles summed per item and day in SQL (item attributes: their largest value that day), every column
  cast to STRING (BigQueryExampleGen rejects DATE and NUMERIC); identifiers validated and back-quoted."""
  unknown = sorted(set(column_map) - set(sf.COLUMNS))
  if unknown:
    raise bigquery.InvalidIdentifier(f'bq_column_map names unknown column(s) {", ".join(unknown)}; '
                                     f'the columns are {", ".join(sf.COLUMNS)}')
  source = {name: bigquery.column(column_map.get(name, name)) for name in sf.COLUMNS}
  attributes = ',\n  '.join(f'CAST(MAX({source[name]}) AS STRING) AS {bigquery.column(name)}'
                            for name in sf.TEXT_ATTRIBUTES + sf.NUMERIC_ATTRIBUTES)
  return (f'SELECT\n  CAST({source["date"]} AS STRING) AS `date`,\n'
          f'  CAST({source["item_number"]} AS STRING) AS `item_number`,\n  {attributes},\n'
          f'  CAST(SUM({source["bottles_sold"]}) AS STRING) AS `bottles_sold`\n'
          f'FROM {table.sql_name}\nGROUP BY 1, 2')


def sales_example_gen(data_uri: str, column_map: str, encoding: str = csv_lines.DEFAULT_ENCODING):
  """BigQueryExampleGen with bigquery_query for bq://..., else CsvLinesExampleGen over the file; split `raw`."""
  return raw_example_gen(data_uri, sf.COLUMNS, column_map, query_builder=bigquery_query,
                         file_executor=CsvLinesExecutor, encoding=encoding)


# ---------------------------------------------------------------------------------------------------
# Report extras: forecasts.csv, MAE/RMSE/WAPE per model, error by category, actual vs forecast plot
# ---------------------------------------------------------------------------------------------------

def month_text(yyyymm: int) -> str:
  """YYYY-MM from the examples' YYYYMM month numbers."""
  return f'{int(yyyymm) // 100:04d}-{int(yyyymm) % 100:02d}'


def headline_metrics(metrics: Dict[str, float]) -> Dict[str, float]:
  """mae, rmse and wape (sum |error| / sum actual = MAE / mean actual) from TFMA's metric names."""
  mae, mean_label = metrics['mean_absolute_error'], metrics['mean_label']
  return {'mae': mae, 'rmse': metrics['root_mean_squared_error'],
          'wape': mae / mean_label if mean_label else float('nan')}


def eval_forecasts(rows: List[Dict[str, Any]], model_forecasts: Sequence[float]) -> Dict[str, np.ndarray]:
  """method -> its forecasts of the eval examples (`rows`): the model's (served) and each baseline's (features)."""
  return {MODEL_NAME: np.asarray(model_forecasts, dtype=float),
          **{name: np.array([r[feature] for r in rows], dtype=float) for name, feature in sf.BASELINES.items()}}


def error_by_origin(rows: List[Dict[str, Any]], forecasts: Dict[str, np.ndarray]) -> List[Dict[str, Any]]:
  """Rolling origin: each eval month is a forecast origin (its examples use only data up to it); one record per
  origin and method with the forecast month, examples, mae, rmse, wape and mase (pipelines.sales_forecast.methods)."""
  months = np.array([r[sf.MONTH] for r in rows])
  labels = np.array([r[sf.LABEL] for r in rows], dtype=float)
  scales = np.array([r[sf.MASE_SCALE] for r in rows], dtype=float)
  records = []
  for origin in sorted(set(months.tolist())):
    chosen = months == origin
    for method, values in forecasts.items():
      records.append({'origin': month_text(origin), 'forecast_month': month_text(
          rows[int(np.flatnonzero(chosen)[0])][sf.FORECAST_MONTH]), 'method': method, 'examples': int(chosen.sum()),
                      **methods.metrics(labels[chosen], values[chosen], scales[chosen])})
  return records


def _plot_by_origin(records: List[Dict[str, Any]], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  figure, axis = plt.subplots(figsize=(8, 4))
  for method in REPORTED_MODELS:
    mine = [r for r in records if r['method'] == method]
    axis.plot([r['forecast_month'] for r in mine], [r['mae'] for r in mine], marker='o', label=method,
              linewidth=2.5 if method == MODEL_NAME else 1.0)
  axis.set_xlabel('forecast month (origin: the month before)')
  axis.set_ylabel('MAE (bottles per item-month)')
  axis.set_title('Rolling-origin eval error')
  axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def mae_by_category(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
  """category -> {model: MAE} on the eval split, from the Evaluator's category slices."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  result = tfma.load_eval_result(evaluation_uri, model_name='candidate')
  if not result.slicing_metrics:
    result = tfma.load_eval_result(evaluation_uri)
  table: Dict[str, Dict[str, float]] = {}
  for slice_key, values in result.slicing_metrics:
    if len(slice_key) != 1 or slice_key[0][0] != sf.SLICE_FEATURE:
      continue
    category = slice_key[0][1].decode() if isinstance(slice_key[0][1], bytes) else str(slice_key[0][1])
    table[category] = {model: values[output]['']['mean_absolute_error']['doubleValue']
                       for model, (_, output, _) in REPORTED_MODELS.items()}
  return dict(sorted(table.items()))


def _plot_by_category(table: Dict[str, Dict[str, float]], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  categories = list(table)
  figure, axis = plt.subplots(figsize=(10, 5))
  width = 0.8 / len(REPORTED_MODELS)
  for i, model in enumerate(REPORTED_MODELS):
    axis.bar(np.arange(len(categories)) + i * width, [table[c][model] for c in categories], width, label=model)
  axis.set_xticks(np.arange(len(categories)) + 0.4 - width / 2)
  axis.set_xticklabels(categories, rotation=45, ha='right', fontsize=8)
  axis.set_ylabel('MAE (bottles per item-month)')
  axis.set_title('Eval error by category')
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def _plot_actual_vs_forecast(rows: Dict[str, List[Dict[str, Any]]], model_forecasts: np.ndarray,
                             forecasts: 'pd.DataFrame', path: str, n_items: int = 4) -> None:
  """Monthly actuals of the items with the most eval bottles, the model's eval forecasts, the seasonal-naive
  forecast and the champion's forecast of the next month (forecasts.csv)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top

  frame = pd.DataFrame([{**{k: r[k] for k in (sf.KEY, sf.FORECAST_MONTH, sf.LABEL, sf.BASELINES['seasonal_naive'])},
                         'split': split} for split in ('train', 'eval') for r in rows[split]])
  frame.loc[frame['split'] == 'eval', 'model'] = list(model_forecasts)
  frame[sf.FORECAST_MONTH] = pd.to_datetime(frame[sf.FORECAST_MONTH].astype(str), format='%Y%m')
  top = (frame[frame['split'] == 'eval'].groupby(sf.KEY)[sf.LABEL].sum().sort_values(ascending=False)
         .index[:n_items])
  future = forecasts.assign(month=pd.to_datetime(forecasts[sf.FORECAST_MONTH], format='%Y-%m'))
  figure, axes = plt.subplots(len(top), 1, figsize=(10, 2.6 * len(top)), sharex=True, squeeze=False)
  for axis, item in zip(axes[:, 0], top):
    item_rows = frame[frame[sf.KEY] == item].sort_values(sf.FORECAST_MONTH)
    evals = item_rows[item_rows['split'] == 'eval']
    axis.plot(item_rows[sf.FORECAST_MONTH], item_rows[sf.LABEL], color='black', label='actual')
    axis.plot(evals[sf.FORECAST_MONTH], evals['model'], 'o', color='tab:red', label='model (eval)')
    axis.plot(evals[sf.FORECAST_MONTH], evals[sf.BASELINES['seasonal_naive']], 'x', color='tab:blue',
              label='seasonal naive (eval)')
    mine = future[future[sf.KEY] == item]
    axis.plot(mine['month'], mine[sf.PREDICTION], 's', color='tab:orange', label='forecast (champion)')
    axis.set_title(f'item {item}', fontsize=9)
    axis.set_ylabel('bottles')
  axes[-1, 0].tick_params(axis='x', rotation=90, labelsize=7)
  axes[0, 0].legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def champion_forecasts(winner: str, score_rows: List[Dict[str, Any]], predictions_csv: str) -> 'pd.DataFrame':
  """forecasts.csv's rows: the model's forecasts of the latest month (predictions.csv, written only when it was
  blessed) when it is the champion, else the winning baseline's (the score examples' feature); `predicted_by`
  names the method."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  if winner == MODEL_NAME:
    frame = pd.read_csv(predictions_csv, dtype={sf.KEY: str})[[sf.KEY, sf.FORECAST_MONTH, sf.PREDICTION]]
  else:
    frame = pd.DataFrame({sf.KEY: [r[sf.KEY] for r in score_rows],
                          sf.FORECAST_MONTH: [r[sf.FORECAST_MONTH] for r in score_rows],
                          sf.PREDICTION: [float(r[sf.BASELINES[winner]]) for r in score_rows]},
                         columns=[sf.KEY, sf.FORECAST_MONTH, sf.PREDICTION])
  frame[sf.FORECAST_MONTH] = frame[sf.FORECAST_MONTH].map(month_text)
  return frame.assign(predicted_by=winner).sort_values(sf.KEY).reset_index(drop=True)


def report_extras(settings: Dict[str, Any], artifact: Callable[[str, str], Any], predictions_csv: str,
                  output_dir: str) -> ReportExtras:
  """forecasts.csv (item_number, forecast_month, forecast_bottles, predicted_by: the champion's forecasts),
  mae/rmse/wape (TFMA) and mase (NumPy) per method, error per rolling origin (CSV, plot), MAE by category (CSV,
  plot, summary `data.mae_by_category`) and an actual-vs-forecast plot."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from tfx.utils import path_utils  # pylint: disable=g-import-not-at-top
  del settings
  outputs = {name: os.path.join(output_dir, file) for name, file in (
      ('forecasts', FORECASTS_FILE), ('error_by_origin', 'error_by_origin.csv'),
      ('error_by_origin_plot', 'error_by_origin.png'), ('error_by_category', 'error_by_category.csv'),
      ('error_by_category_plot', 'error_by_category.png'), ('actual_vs_forecast_plot', 'actual_vs_forecast.png'))}
  examples_uri = artifact('ExamplesBuilder', 'examples').uri
  serialized = {split: list(artifacts.read_split(examples_uri, split)) for split in ('train', 'eval', 'score')}
  rows = {split: [beam_io.serialized_example_to_row(s) for s in records] for split, records in serialized.items()}
  serve = tf.saved_model.load(path_utils.serving_model_path(artifact('Trainer', 'model').uri)).signatures[
      'serving_default']
  model_eval = serve(examples=tf.constant(serialized['eval']))[sf.PREDICTION].numpy()
  forecasts = eval_forecasts(rows['eval'], model_eval)

  evaluation_uri = artifact('Evaluator', 'evaluation').uri
  metrics, _ = evaluation_metrics(evaluation_uri, REPORTED_MODELS)
  labels = np.array([r[sf.LABEL] for r in rows['eval']], dtype=float)
  scales = np.array([r[sf.MASE_SCALE] for r in rows['eval']], dtype=float)
  headline = {model: {**headline_metrics(values), 'mase': methods.metrics(labels, forecasts[model], scales)['mase']}
              for model, values in metrics.items()}
  chosen = champion.read(artifact('ChampionGate', 'blessing').uri)
  winner = chosen.winner if chosen else MODEL_NAME
  future = champion_forecasts(winner, rows['score'], predictions_csv)
  future.to_csv(outputs['forecasts'], index=False)

  by_origin = error_by_origin(rows['eval'], forecasts)
  pd.DataFrame(by_origin).to_csv(outputs['error_by_origin'], index=False)
  _plot_by_origin(by_origin, outputs['error_by_origin_plot'])
  by_category = mae_by_category(evaluation_uri)
  pd.DataFrame(by_category).T.rename_axis(sf.SLICE_FEATURE).to_csv(outputs['error_by_category'])
  _plot_by_category(by_category, outputs['error_by_category_plot'])
  _plot_actual_vs_forecast(rows, model_eval, future, outputs['actual_vs_forecast_plot'])
  best = min(sf.BASELINES, key=lambda name: headline[name]['mae'])
  with tf.io.gfile.GFile(os.path.join(artifact('Trainer', 'model_run').uri, sf.TRAINING_FILE)) as f:
    training = json.load(f)
  data = {'mae_by_category': by_category, 'best_baseline': best, 'forecasts_by': winner, 'training': training,
          'rnn_mae_over_best_baseline': headline[MODEL_NAME]['mae'] / headline[best]['mae']}
  return ReportExtras(outputs=outputs, metrics=headline, data=data)


# ---------------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------------

def create_pipeline(pipeline_name: str, pipeline_root: str, data_uri: str, serving_dir: str,
                    settings: Dict[str, Any], beam_pipeline_args: List[str],
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
  """The sales forecast pipeline over a CSV file (local or gs://) with REQUIRED_COLUMNS, or a BigQuery table
  `bq://project.dataset.table` with those columns (names mapped by the `bq_column_map` setting)."""
  version = code_version(MODULE, 'pipelines.sales_forecast.pipeline', 'pipelines.metrics')
  example_gen = sales_example_gen(data_uri, settings['bq_column_map'], settings['encoding'])
  builder = ExamplesBuilder(
      raw_examples=example_gen.outputs['examples'], build_fn=f'{MODULE}.build_examples',
      params={'eval_months': settings['eval_months']}, code_version=version,
      max_rejected_fraction=settings['max_rejected_fraction'])

  # `score` has no label by design; the serving signature's parser checks it at scoring.
  validation = wiring.data_validation(builder.outputs['examples'], schema_exclude_splits=['eval', 'score'],
                                      validation_exclude_splits=['score'])

  transform = wiring.transform(MODULE, builder.outputs['examples'], validation, version)

  tuner = (wiring.tuner(MODULE, transform, validation.schema,
                        {**{k: settings[k] for k in TRAINER_SETTINGS}, 'tuning_trials': settings['tuning_trials']},
                        version) if settings['tuning'] == 'on' else None)
  trainer = wiring.trainer(MODULE, transform, validation.schema,
                           {k: settings[k] for k in TRAINER_SETTINGS}, version, tuned=tuner)

  latest_blessed = wiring.latest_blessed_model()

  evaluator = tfx.components.Evaluator(
      examples=builder.outputs['examples'], model=trainer.outputs['model'],
      baseline_model=latest_blessed.outputs['model'],
      eval_config=sf.eval_config(settings['max_mae_increase']), example_splits=['eval'])

  # The model is blessed (pushed, and scores the latest month) only if its eval MAE beats every baseline's.
  gate = champion_gate(trainer.outputs['model'], evaluator, PRIMARY_METRIC, False, MODEL_NAME, REPORTED_MODELS)

  push = wiring.pusher(trainer.outputs['model'], gate.outputs['blessing'], serving_dir)

  bulk_inferrer = wiring.bulk_inferrer(builder.outputs['examples'], trainer.outputs['model'],
                                       gate.outputs['blessing'], 'score', 'serving_default')

  export = PredictionsExport(inference_result=bulk_inferrer.outputs['inference_result'], key_feature=sf.KEY,
                             output_names=[sf.PREDICTION] + list(sf.BASELINES.values()),
                             carry_features=[sf.FORECAST_MONTH])

  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name, pipeline_root=pipeline_root,
      components=[example_gen, builder, *validation, transform, *([tuner] if tuner else []), trainer,
                  latest_blessed, evaluator, gate, push, bulk_inferrer, export],
      enable_cache=True, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)
