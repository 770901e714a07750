"""CLV pipeline: CDNOW-style transactions -> per-customer DNN of next-period spend, evaluated, pushed, scored.

CsvExampleGen (or BigQueryExampleGen) -> ExamplesBuilder(modules.clv.build_examples) -> StatisticsGen
-> SchemaGen -> ExampleValidator -> AnomaliesGate -> Transform -> Trainer -> Evaluator (vs latest blessed)
-> ChampionGate -> Pusher -> BulkInferrer(score) -> PredictionsExport (the champion's predictions), with BtydFit (lifetimes) beside the DNN: it adds its predictions to the eval and score
examples, so the Evaluator scores DNN, BTYD and the training mean on the same customers in one TFMA run, and
predictions.csv carries both models' predictions.
"""
import json
import os
from typing import Any, Callable, Dict, List

from tfx import v1 as tfx

from modules import clv as clv_module
from pipelines import beam_io
from pipelines.clv import skew as skew_lib
from pipelines.clv.btyd import PARAMS_FILE, TIME_UNITS, BtydFit, examples_summary, load_fitted, read_examples
from pipelines.components.examples_builder import ExamplesBuilder
from pipelines.clv.champion_predictions import ChampionPredictions
from pipelines.components.champion_gate import champion_gate
from pipelines.components.predictions_export import PredictionsExport
from pipelines.example_gens import raw_example_gen
from pipelines.report import ReportExtras
from pipelines.runners import code_version
from pipelines import wiring

MODULE = 'modules.clv'
REQUIRED_COLUMNS = ['customer_id', 'date', 'quantity', 'amount']
SETTINGS: Dict[str, Any] = {
    'threshold_date': '1997-09-30',   # end of the calibration window
    'predict_end': '1998-06-30',      # end of the holdout window (the label's period)
    'max_monetary': 4000.0,           # customers with a larger calibration spend are left out and counted
    'eval_percent': 20,               # share of customers in the eval split
    'seed': 42,
    'loss': 'mse',                    # 'mse' or 'ziln'
    'hidden_units': '64,32',
    'dropout': 0.2,
    'learning_rate': 0.002,
    'batch_size': 256,
    'epochs': 30,
    'max_mae_increase': 0.05,         # blessing: MAE at most 5% above the latest blessed model's
    'btyd_model': 'bgnbd',            # 'bgnbd', 'pnbd' or 'mbgnbd' (+ Gamma-Gamma for spend)
    'btyd_penalizer': 0.0,
    'btyd_time_unit': 'weeks',        # 'days' or 'weeks'
    'btyd_discount_rate': 0.0,        # annual; 0 makes BTYD's CLV comparable with the undiscounted label
    'primary_metric': 'mean_absolute_error',  # the champion gate: DNN vs BTYD vs training mean on the eval split
    'tuning': 'on',                   # TFX Tuner (modules.clv.tuner_fn) before the Trainer
    'tuning_trials': 3,
}
SETTING_CHOICES = {'loss': ('mse', 'ziln'), 'btyd_model': ('bgnbd', 'pnbd', 'mbgnbd'),
                   'btyd_time_unit': ('days', 'weeks'), 'tuning': ('on', 'off'),
                   'primary_metric': ('mean_absolute_error', 'root_mean_squared_error', 'normalized_gini')}
# summary name -> (TFMA model name, output name, metric-key prefix): the candidates of the champion gate
CANDIDATES = {'dnn': ('candidate', 'predicted_value', ''), 'btyd': ('candidate', 'predicted_value', 'btyd'),
              'baseline': ('candidate', 'mean_baseline', '')}
HIGHER_IS_BETTER = {'mean_absolute_error': False, 'root_mean_squared_error': False, 'normalized_gini': True}
TRAINER_SETTINGS = ('seed', 'loss', 'hidden_units', 'dropout', 'learning_rate', 'batch_size', 'epochs')
BTYD_COLUMNS = ['btyd_clv', 'btyd_expected_purchases', 'btyd_p_alive', 'btyd_expected_spend']


def holdout_days(settings: Dict[str, Any]) -> int:
  """Length of the label's period (threshold_date, predict_end] in days: the BTYD prediction horizon."""
  return (clv_module.parse_date(settings['predict_end']) - clv_module.parse_date(settings['threshold_date'])).days


SKEW_FILE = 'score_skew.json'
SKEW_MARKDOWN = 'score_skew.md'


def skew_check(train_examples, score_examples) -> Dict[str, Any]:
  """The score split's model inputs against the training split's range (see pipelines.clv.skew)."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  frames = [pd.DataFrame([beam_io.example_to_row(e) for e in examples])
            for examples in (train_examples, score_examples)]
  return skew_lib.score_skew(*frames, clv_module.LOG_FEATURES + clv_module.LINEAR_FEATURES)


def report_extras(settings: Dict[str, Any], artifact: Callable[[str, str], Any], predictions_csv: str,
                 output_dir: str) -> ReportExtras:
  """BTYD outputs for the report: its params.json (fitted parameters, standard errors, log-likelihood), a
  P(alive) histogram over the scored customers and the expected purchases in the horizon over frequency x
  recency of the fitted purchase model, up to the largest frequency and T of the customers it was fitted on.
  `artifact(node_id, output_key)` gives the run's MLMD artifacts."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from lifetimes import plotting  # pylint: disable=g-import-not-at-top

  model_uri = artifact('BtydFit', 'model').uri
  fitted = load_fitted(model_uri)
  built = artifact('ExamplesBuilder', 'examples')
  examples = tfx.types.standard_artifacts.Examples()
  examples.uri = built.uri
  examples.split_names = built.properties['split_names'].string_value
  train_examples = read_examples(examples, 'train')
  fit_summary = examples_summary(train_examples, fitted.time_unit)
  plots = {'btyd_params': os.path.join(model_uri, PARAMS_FILE)}
  skew = skew_check(train_examples, read_examples(examples, 'score'))
  plots['score_skew'] = os.path.join(output_dir, SKEW_FILE)
  with open(plots['score_skew'], 'w') as f:
    json.dump(skew, f, indent=2)
  plots['score_skew_report'] = os.path.join(output_dir, SKEW_MARKDOWN)
  with open(plots['score_skew_report'], 'w') as f:
    f.write(skew_lib.markdown(skew))
  p_alive = pd.read_csv(predictions_csv)['btyd_p_alive']
  figure, axis = plt.subplots(figsize=(7, 4))
  axis.hist(p_alive, bins=20, range=(0, 1), color='tab:blue')
  axis.set_xlabel('P(alive) at the end of the data')
  axis.set_ylabel('customers')
  axis.set_title(f'{fitted.model}: P(alive) of {len(p_alive)} scored customers')
  figure.tight_layout()
  plots['p_alive_histogram'] = os.path.join(output_dir, 'btyd_p_alive.png')
  figure.savefig(plots['p_alive_histogram'], dpi=100)
  plt.close(figure)

  horizon = holdout_days(settings) / TIME_UNITS[fitted.time_unit]
  plt.figure(figsize=(7, 5))
  plotting.plot_frequency_recency_matrix(
      fitted.purchase_fitter, T=horizon, max_frequency=int(fit_summary['frequency'].max()),
      max_recency=int(fit_summary['T'].max()),
      title=f'{fitted.model}: expected purchases in the next {horizon:.0f} {fitted.time_unit}')
  plots['expected_purchases_matrix'] = os.path.join(output_dir, 'btyd_frequency_recency.png')
  plt.gcf().savefig(plots['expected_purchases_matrix'], dpi=100)
  plt.close('all')
  return ReportExtras(outputs=plots, data={'score_skew': skew})


def create_pipeline(pipeline_name: str, pipeline_root: str, data_uri: str, serving_dir: str,
                    settings: Dict[str, Any], beam_pipeline_args: List[str],
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
  """The CLV pipeline over a CSV file (local or gs://) or a BigQuery table `bq://project.dataset.table`
  with the columns REQUIRED_COLUMNS."""
  version = code_version(MODULE, 'pipelines.metrics')
  example_gen = raw_example_gen(data_uri, REQUIRED_COLUMNS, settings['bq_column_map'], encoding=settings['encoding'])

  builder = ExamplesBuilder(
      raw_examples=example_gen.outputs['examples'], build_fn=f'{MODULE}.build_examples',
      params={k: settings[k] for k in ('threshold_date', 'predict_end', 'max_monetary', 'eval_percent', 'seed')},
      code_version=version)

  # `score` has no label by design; it is checked against the schema by Transform's parser at scoring.
  validation = wiring.data_validation(builder.outputs['examples'], schema_exclude_splits=['eval', 'score'],
                                      validation_exclude_splits=['score'])

  transform = wiring.transform(MODULE, builder.outputs['examples'], validation, version)

  hyperparameters = {k: settings[k] for k in TRAINER_SETTINGS}
  tuner = (wiring.tuner(MODULE, transform, validation.schema, {**hyperparameters, 'trials': settings['tuning_trials']},
                        version) if settings['tuning'] == 'on' else None)
  trainer = wiring.trainer(MODULE, transform, validation.schema, hyperparameters, version, tuned=tuner)

  btyd = BtydFit(examples=builder.outputs['examples'], model_type=settings['btyd_model'],
                 penalizer_coef=settings['btyd_penalizer'], time_unit=settings['btyd_time_unit'],
                 horizon_days=float(holdout_days(settings)), annual_discount_rate=settings['btyd_discount_rate'],
                 fit_split='train')

  latest_blessed = wiring.latest_blessed_model()

  evaluator = tfx.components.Evaluator(
      examples=btyd.outputs['predictions'], model=trainer.outputs['model'],
      baseline_model=latest_blessed.outputs['model'],
      eval_config=clv_module.eval_config(settings['max_mae_increase']),
      example_splits=['eval'])

  # The DNN is blessed only if it also beats BTYD and the training mean on `primary_metric`.
  gate = champion_gate(trainer.outputs['model'], evaluator, settings['primary_metric'],
                       HIGHER_IS_BETTER[settings['primary_metric']], 'dnn', CANDIDATES)

  push = wiring.pusher(trainer.outputs['model'], gate.outputs['blessing'], serving_dir)

  bulk_inferrer = wiring.bulk_inferrer(btyd.outputs['predictions'], trainer.outputs['model'],
                                       gate.outputs['blessing'], 'score', 'serving_default')

  dnn_export = PredictionsExport(inference_result=bulk_inferrer.outputs['inference_result'],
                                 key_feature=clv_module.KEY, output_names=[clv_module.PREDICTION],
                                 carry_features=BTYD_COLUMNS).with_id('DnnPredictionsExport')
  # Named PredictionsExport: its predictions are the run's predictions.csv (the champion's).
  export = ChampionPredictions(
      dnn_predictions=dnn_export.outputs['predictions'], examples=btyd.outputs['predictions'],
      evaluation=evaluator.outputs['evaluation'], blessing=gate.outputs['blessing'], key_feature=clv_module.KEY,
      prediction_name=clv_module.PREDICTION, btyd_prediction=clv_module.BTYD_PREDICTION,
      carry_features=','.join(BTYD_COLUMNS),
      code_version=code_version('pipelines.clv.champion_predictions')).with_id('PredictionsExport')

  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name, pipeline_root=pipeline_root,
      components=[example_gen, builder, *validation, transform, *([tuner] if tuner else []), trainer, btyd,
                  latest_blessed, evaluator, gate, push, bulk_inferrer, dnn_export, export],
      enable_cache=True, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)
