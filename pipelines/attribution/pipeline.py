"""Attribution pipeline: impressions -> journeys -> a conversion model (GRU, per-touch contributions), evaluated
next to a logistic regression on campaign counts, and a campaign report of the model's counterfactual credit
(removal effect, Shapley) and attention next to the classic baselines and the ground truth.

CsvExampleGen (or BigQueryExampleGen) -> ExamplesBuilder(modules.attribution.build_examples) -> StatisticsGen
-> SchemaGen -> ExampleValidator -> AnomaliesGate -> Transform (campaign vocabulary) -> Trainer -> Evaluator
(test split, vs latest blessed) -> Pusher; BulkInferrer(`attention` signature, converting journeys)
-> PredictionsExport (predictions.csv: conversion probability per converting journey) and CampaignReport
(campaign_report.csv, every method's attribution, Spearman / error against ground truth).
"""
import json
import os
import shutil
from typing import Any, Callable, Dict, List

from tfx import v1 as tfx

from modules import attribution as module
from pipelines.attribution.campaign_report import (ATTRIBUTION_JSON, POSITION_CSV, POSITION_PLOT, REPORT_CSV,
                                                  REPORT_PLOT, CampaignReport)
from pipelines.components.champion_gate import champion_gate
from pipelines.components.examples_builder import ExamplesBuilder
from pipelines.components.predictions_export import PredictionsExport
from pipelines.example_gens import raw_example_gen
from pipelines.report import ReportExtras
from pipelines.runners import code_version
from pipelines import wiring

MODULE = 'modules.attribution'
REQUIRED_COLUMNS = ['uid', 'timestamp', 'campaign', 'conversion']
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'data', 'attribution')
DEFAULT_DATA = os.path.join(DATA_DIR, 'impressions.csv')
# The bundled data files and the ground truth the simulator wrote beside each (used when ground_truth=auto).
BUNDLED_TRUTH = {DEFAULT_DATA: os.path.join(DATA_DIR, 'ground_truth.csv'),
                 os.path.join(DATA_DIR, 'impressions_sample.csv'): os.path.join(DATA_DIR, 'ground_truth_sample.csv')}
SETTINGS: Dict[str, Any] = {
    'journey_max_length': 10,         # longer journeys keep their last touches (the dropped ones are counted)
    'seed': 42,
    'positive_ratio': 0.3,            # converting journeys oversampled to this share of the training input
    'embedding_dim': 16,
    'rnn_units': 32,
    'attention_units': 16,
    'learning_rate': 0.005,
    'batch_size': 256,
    'epochs': 40,                     # at most; stops when the eval loss has not improved for `patience` epochs
    'patience': 4,
    'ensemble': 3,                    # members (seeds seed, seed + 1, ...) whose logits the model averages
    'lr_epochs': 20,                  # logistic regression on campaign counts (the baseline)
    'min_auc': 0.6,                   # blessing: test AUC at least this
    'primary_metric': 'auc',          # champion: the model must beat logistic regression on this (test split)
    # 'on': TFX Tuner (modules.attribution.SEARCH_SPACE) before the Trainer. Off here: it picks by eval AUC, and a
    # better AUC is not better credit (docs/attribution.md, Champion and tuning).
    'tuning': 'off',
    'tuning_trials': 3,               # the first trial is the settings themselves
    'max_auc_decrease': 0.01,         # ... and at most this below the latest blessed model's
    'time_decay_half_life_hours': 168.0,
    'shapley_max_exact': 6,           # exact Shapley for journeys with at most this many campaigns, else sampled
    'shapley_permutations': 16,       # ... orders sampled (seeded by the journey id)
    'ground_truth': 'auto',           # CSV campaign,true_incremental_conversions; auto: the bundled data's; '' none
}
SETTING_CHOICES: Dict[str, tuple] = {'primary_metric': ('auc', 'auc_precision_recall'), 'tuning': ('on', 'off')}
REPORTED_MODELS = {'model': ('candidate', module.PREDICTION, ''),
                   'logistic_regression': ('candidate', module.LR_PREDICTION, '')}
REPORTED_METRICS = (('example_count', 'journeys'), ('auc', 'AUC'), ('auc_precision_recall', 'PR-AUC'),
                    ('binary_crossentropy', 'log loss'), ('calibration', 'calibration (mean prediction / label)'),
                    ('mean_prediction', 'mean prediction'), ('mean_label', 'conversion rate'))


def ground_truth_path(data_uri: str, setting: str) -> str:
  """The ground-truth CSV for this run: the setting, or with 'auto' the bundled one for bundled data, else ''."""
  if setting != 'auto':
    return setting
  return BUNDLED_TRUTH.get(os.path.abspath(data_uri), '') if '://' not in data_uri else ''


def attribution_markdown(methods: Dict[str, Dict[str, Any]]) -> str:
  """A table of conversions attributed per campaign by each method, with Spearman and error where measured."""
  names = list(methods)
  campaigns = sorted({c for entry in methods.values() for c in entry['attributed_conversions']})
  lines = ['# Attributed conversions per campaign', '', '| campaign | ' + ' | '.join(names) + ' |',
           '|---|' + '---|' * len(names)]
  for campaign in campaigns:
    lines.append(f'| {campaign} | ' + ' | '.join(
        f'{methods[m]["attributed_conversions"].get(campaign, 0.0):.1f}' for m in names) + ' |')
  for key, title in (('spearman', 'Spearman vs truth'), ('abs_error', 'total abs. error vs truth')):
    if all(key in entry for entry in methods.values()):
      lines.append(f'| **{title}** | ' + ' | '.join(f'{methods[m][key]:.3f}' for m in names) + ' |')
  return '\n'.join(lines) + '\n'


def report_extras(settings: Dict[str, Any], artifact: Callable[[str, str], Any], predictions_csv: str,
                  output_dir: str) -> ReportExtras:
  """campaign_report.csv, the attribution plots and tables into `output_dir`; `metrics.attribution` with every
  method's per-campaign attributed conversions (and spearman / abs_error against ground truth when given)."""
  del settings, predictions_csv
  report = artifact('CampaignReport', 'report')
  outputs = {}
  for name, file_name in (('campaign_report', REPORT_CSV), ('campaign_report_plot', REPORT_PLOT),
                          ('attention_by_position', POSITION_CSV), ('attention_by_position_plot', POSITION_PLOT)):
    outputs[name] = os.path.join(output_dir, file_name)
    shutil.copyfile(os.path.join(report.uri, file_name), outputs[name])
  with open(os.path.join(report.uri, ATTRIBUTION_JSON)) as f:
    content = json.load(f)
  outputs['attribution_table'] = os.path.join(output_dir, 'attribution.md')
  with open(outputs['attribution_table'], 'w') as f:
    f.write(attribution_markdown(content['methods']))
  data = {key: content[key] for key in ('journeys', 'converting_journeys', 'incremental_conversions',
                                       'model_incremental_conversions', 'counterfactual_seconds',
                                       'triggering_seconds', 'triggered_share', 'attributed_by')
          if key in content}
  return ReportExtras(outputs=outputs, metrics={'attribution': content['methods']}, data=data)


def create_pipeline(pipeline_name: str, pipeline_root: str, data_uri: str, serving_dir: str,
                    settings: Dict[str, Any], beam_pipeline_args: List[str],
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
  """The attribution pipeline over an impressions CSV (local or gs://) or a BigQuery table
  `bq://project.dataset.table` with the columns REQUIRED_COLUMNS."""
  version = code_version(MODULE)
  example_gen = raw_example_gen(data_uri, REQUIRED_COLUMNS, settings['bq_column_map'], encoding=settings['encoding'])
  builder = ExamplesBuilder(
      raw_examples=example_gen.outputs['examples'], build_fn=f'{MODULE}.build_examples',
      params={'journey_max_length': settings['journey_max_length']}, code_version=version)

  validation = wiring.data_validation(builder.outputs['examples'],
                                      schema_exclude_splits=['eval', 'test', module.CONVERTING_SPLIT])

  transform = wiring.transform(MODULE, builder.outputs['examples'], validation, version)

  hyperparameters = {k: settings[k] for k in (
      'journey_max_length', 'seed', 'positive_ratio', 'embedding_dim', 'rnn_units', 'attention_units',
      'learning_rate', 'batch_size', 'epochs', 'patience', 'ensemble', 'lr_epochs')}
  tuner = (wiring.tuner(MODULE, transform, validation.schema,
                        {**hyperparameters, 'tuning_trials': settings['tuning_trials']}, version)
           if settings['tuning'] == 'on' else None)
  trainer = wiring.trainer(MODULE, transform, validation.schema, hyperparameters, version, tuned=tuner)

  latest_blessed = wiring.latest_blessed_model()

  evaluator = tfx.components.Evaluator(
      examples=builder.outputs['examples'], model=trainer.outputs['model'],
      baseline_model=latest_blessed.outputs['model'],
      eval_config=module.eval_config(settings['min_auc'], settings['max_auc_decrease']),
      example_splits=['test'])

  # The model is blessed only if it also beats logistic regression on campaign counts on `primary_metric`;
  # otherwise nothing is scored and the campaign report's headline is the Markov removal effect.
  gate = champion_gate(trainer.outputs['model'], evaluator, settings['primary_metric'], True, 'model',
                       REPORTED_MODELS)

  push = wiring.pusher(trainer.outputs['model'], gate.outputs['blessing'], serving_dir)

  bulk_inferrer = wiring.bulk_inferrer(builder.outputs['examples'], trainer.outputs['model'],
                                       gate.outputs['blessing'], module.CONVERTING_SPLIT, module.ATTENTION_SIGNATURE)

  export = PredictionsExport(inference_result=bulk_inferrer.outputs['inference_result'],
                             key_feature=module.KEY, output_names=[module.PREDICTION],
                             carry_features=['uid', 'journey_length'])

  campaign_report = CampaignReport(
      examples=builder.outputs['examples'], model=trainer.outputs['model'],
      inference_result=bulk_inferrer.outputs['inference_result'],
      journey_max_length=int(settings['journey_max_length']),
      shapley_max_exact=int(settings['shapley_max_exact']),
      shapley_permutations=int(settings['shapley_permutations']),
      ground_truth=ground_truth_path(data_uri, settings['ground_truth']),
      time_decay_half_life_hours=float(settings['time_decay_half_life_hours']),
      code_version=code_version('pipelines.attribution.campaign_report', 'pipelines.attribution.baselines',
                                'pipelines.attribution.counterfactual', 'pipelines.attribution.shapley',
                                'pipelines.attribution.triggering'))

  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name, pipeline_root=pipeline_root,
      components=[example_gen, builder, *validation, transform, *([tuner] if tuner else []), trainer, latest_blessed,
                  evaluator, gate, push,
                  bulk_inferrer, export, campaign_report],
      enable_cache=True, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)
