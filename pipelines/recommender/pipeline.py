"""Recommender pipeline: listens -> (user, track) pairs -> two-tower model, evaluated against popularity and random
ranking, pushed with a top-k signature, and top-k recommendations for every user in the vocabulary.

CsvExampleGen (or BigQueryExampleGen over the top tracks) -> ExamplesBuilder(modules.recommender.build_examples)
-> StatisticsGen -> SchemaGen -> ExampleValidator -> AnomaliesGate -> Transform (user, track, artist, tag
vocabularies with frequency thresholds) -> VocabularyFilter (pairs outside the vocabularies, counted) -> Trainer
-> Evaluator (TFMA on the in-vocabulary test pairs, vs latest blessed) -> Pusher; RecallEvaluator (recall@10/100 of
model, popularity, random on the same sampled tracks); BulkInferrer(top_k_examples over split `users`)
-> RecommendationsExport -> runs/recommender/recommendations.csv.
"""
import json
import os
import shutil
from typing import Any, Callable, Dict, List, Mapping

from tfx import v1 as tfx

from modules import recommender as module
from pipelines import bigquery, wiring
from pipelines.components.examples_builder import ExamplesBuilder
from pipelines.recommender.champion_gate import RecommenderChampionGate
from pipelines.recommender.recall_evaluator import CURVE_PLOT, NEAREST_CSV, RECALL_JSON, RecallEvaluator
from pipelines.recommender.recommendations import RecommendationsExport
from pipelines.recommender.vocabulary_filter import VocabularyFilter
from pipelines.example_gens import raw_example_gen
from pipelines.report import ReportExtras
from pipelines.runners import code_version

MODULE = 'modules.recommender'
REQUIRED_COLUMNS = ['user_name', 'track_id', 'track_name', 'artist_name', 'tags', 'listened_at']
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'data', 'recommender',
                            'listens.csv')
SETTINGS: Dict[str, Any] = {
    'eval_percent': 15,               # pair splits by a stable hash: train / eval / test = 70 / 15 / 15
    'test_percent': 15,
    'max_tags': 5,                    # tags kept per track (most frequent first)
    'user_tag_features': 20,          # user features: share of the user's training listens in each of the top tags
    'min_user_pairs': 3,              # vocabulary frequency thresholds, in training pairs
    'min_track_pairs': 3,
    'min_artist_pairs': 3,
    'min_tag_pairs': 3,
    'seed': 42,
    'objective': 'softmax',           # softmax: in-batch sampled softmax with log-Q correction; cosine: |cosine| log loss
    'temperature': 0.5,               # softmax: logits = cosine / temperature
    'embedding_l2': 0.0,              # L2 penalty on every embedding
    'embedding_dim': 32,
    'tower_units': '',                # hidden layers of each tower, e.g. '64' (none: the towers are linear)
    'output_dim': 32,
    'learning_rate': 0.003,
    'batch_size': 256,
    'epochs': 5,
    'sampled_negatives': 2,           # cosine: unlistened tracks per training pair as negatives (0: listened pairs only)
    'sampled_negative_weight': 1.0,
    'listened_negative_weight': 0.0,  # x the weight (1 / count) of listened label-0 pairs in training (0: left out)
    'tuning': 'on',                   # TFX Tuner before the Trainer (modules.recommender.search_space)
    'tuning_trials': 3,               # seeded random-search trials, scored by eval recall@10
    'tuning_epochs': 2,               # epochs of each trial (the Trainer then trains `epochs`)
    'top_k': 10,                      # tracks per user in the top-k signature and recommendations.csv
    'exclude_training_tracks': 'on',  # top-k leaves out the user's training tracks
    'recall_samples': 1000,           # sampled tracks each positive test pair is ranked against
    'primary_metric': 'recall_at_10', # champion: the model is served only if above popularity's on it
    'min_auc': 0.5,                   # blessing: test AUC above chance
    'max_auc_decrease': 0.01,         # ... and at most this below the latest blessed model's
    'bq_top_tracks': 50000,           # bq:// input: only listens of the N most listened tracks
}
SETTING_CHOICES: Dict[str, tuple] = {'objective': module.OBJECTIVES, 'exclude_training_tracks': ('on', 'off'),
                                     'tuning': ('on', 'off')}
REPORTED_MODELS = {'two_tower': ('candidate', module.PREDICTION, ''),
                   'popularity': ('candidate', module.POPULARITY, '')}
REPORTED_METRICS = (('recall_at_10', 'recall@10 (1,000 sampled)'), ('recall_at_100', 'recall@100 (1,000 sampled)'),
                    ('catalog_recall_at_10', 'recall@10 (full catalog)'),
                    ('catalog_recall_at_100', 'recall@100 (full catalog)'),
                    ('catalog_ndcg_at_10', 'NDCG@10 (full catalog)'), ('example_count', 'test pairs'),
                    ('auc', 'AUC'), ('auc_precision_recall', 'PR-AUC'), ('binary_crossentropy', 'log loss'),
                    ('calibration', 'calibration (mean prediction / label)'), ('mean_label', 'share positive'))
RECOMMENDATIONS_FILE = 'recommendations.csv'


def bigquery_query(table: bigquery.BigQueryTable, column_map: Mapping[str, str], top_tracks: int) -> str:
  """The listens of the `top_tracks` most listened tracks (the ListenBrainz sample's restriction), every column
  cast to STRING; per-pair counts, artist and tags are aggregated by build_examples as for a file."""
  unknown = sorted(set(column_map) - set(REQUIRED_COLUMNS))
  if unknown:
    raise bigquery.InvalidIdentifier(f'bq_column_map names unknown column(s) {", ".join(unknown)}; '
                                     f'the columns are {", ".join(REQUIRED_COLUMNS)}')
  source = {name: bigquery.column(column_map.get(name, name)) for name in REQUIRED_COLUMNS}
  columns = ',\n  '.join(f'CAST({source[name]} AS STRING) AS {bigquery.column(name)}' for name in REQUIRED_COLUMNS)
  return (f'SELECT\n  {columns}\nFROM {table.sql_name}\nWHERE {source["track_id"]} IN (\n'
          f'  SELECT {source["track_id"]} FROM {table.sql_name}\n  GROUP BY {source["track_id"]}\n'
          f'  ORDER BY COUNT(*) DESC\n  LIMIT {int(top_tracks)})')


def _nearest_markdown(nearest: List[Dict[str, Any]]) -> str:
  lines = ['# Nearest tracks by item-tower cosine (|cosine| for objective cosine; most listened training tracks)',
           '', '| track | rank | neighbour | similarity |', '|---|---|---|---|']
  lines += [f'| {r["track"]} ({r["track_info"]}) | {r["rank"]} | {r["neighbour"]} ({r["neighbour_info"]}) | '
            f'{r["similarity"]:.3f} |' for r in nearest]
  return '\n'.join(lines) + '\n'


def _nearest_plot(nearest: List[Dict[str, Any]], path: str) -> None:
  """The nearest-tracks table as a PNG, so report.md shows it."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  cells = [[f'{r["track"]} ({r["track_info"]})', r['rank'], f'{r["neighbour"]} ({r["neighbour_info"]})',
            f'{r["similarity"]:.3f}'] for r in nearest]
  figure, axis = plt.subplots(figsize=(11, 0.28 * len(cells) + 0.8))
  axis.axis('off')
  if cells:
    table = axis.table(cellText=cells, colLabels=['track (artist; tags)', 'rank', 'nearest track (artist; tags)',
                                                  'similarity'], loc='center', cellLoc='left')
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.auto_set_column_width(list(range(4)))
  axis.set_title('Nearest tracks by item-tower similarity', fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def report_extras(settings: Dict[str, Any], artifact: Callable[[str, str], Any], predictions_csv: str,
                  output_dir: str) -> ReportExtras:
  """recommendations.csv, recall@k per model (metrics two_tower / popularity / random), the recall@k curve, the
  nearest tracks (CSV, markdown and a PNG table), and the vocabulary filter's counts (data.out_of_vocabulary)."""
  del settings
  outputs = {'recommendations': os.path.join(output_dir, RECOMMENDATIONS_FILE)}
  shutil.copyfile(predictions_csv, outputs['recommendations'])
  recall = artifact('RecallEvaluator', 'report')
  with open(os.path.join(recall.uri, RECALL_JSON)) as f:
    content = json.load(f)
  for name, file_name in (('recall_curve_plot', CURVE_PLOT), ('nearest_tracks', NEAREST_CSV)):
    outputs[name] = os.path.join(output_dir, file_name)
    shutil.copyfile(os.path.join(recall.uri, file_name), outputs[name])
  outputs['nearest_tracks_table'] = os.path.join(output_dir, 'nearest_tracks.md')
  with open(outputs['nearest_tracks_table'], 'w') as f:
    f.write(_nearest_markdown(content['nearest_tracks']))
  outputs['nearest_tracks_plot'] = os.path.join(output_dir, 'nearest_tracks.png')
  _nearest_plot(content['nearest_tracks'], outputs['nearest_tracks_plot'])
  filtered = artifact('VocabularyFilter', 'filtered')
  counts = {name: value.int_value for name, value in filtered.custom_properties.items()}
  recommendations = artifact('PredictionsExport', 'predictions')
  data = {
      'out_of_vocabulary': {k.split('/', 1)[1]: v for k, v in sorted(counts.items()) if k.startswith('out_of_')},
      'pairs_in_vocabulary': {k.split('/', 1)[1]: v for k, v in sorted(counts.items()) if k.startswith('kept/')},
      'recall_positives': content['positives'], 'recall_samples_per_positive': content['samples_per_positive'],
      'vocabulary_tracks': content['vocabulary_tracks'],
      'recommended_users': recommendations.custom_properties['users'].int_value,
      'users_outside_vocabulary': recommendations.custom_properties['fallback_users'].int_value,
  }
  return ReportExtras(outputs=outputs, metrics=content['models'], data=data)


def create_pipeline(pipeline_name: str, pipeline_root: str, data_uri: str, serving_dir: str,
                    settings: Dict[str, Any], beam_pipeline_args: List[str],
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
  """The recommender pipeline over a listens CSV (local or gs://) or a BigQuery table `bq://project.dataset.table`
  with the columns REQUIRED_COLUMNS."""
  version = code_version(MODULE)
  example_gen = raw_example_gen(
      data_uri, REQUIRED_COLUMNS, settings['bq_column_map'],
      query_builder=lambda table, mapping: bigquery_query(table, mapping, settings['bq_top_tracks']),
      encoding=settings['encoding'])
  builder = ExamplesBuilder(
      raw_examples=example_gen.outputs['examples'], build_fn=f'{MODULE}.build_examples',
      params={k: settings[k] for k in ('eval_percent', 'test_percent', 'max_tags', 'user_tag_features')},
      code_version=version)

  validation = wiring.data_validation(builder.outputs['examples'],
                                      schema_exclude_splits=['eval', 'test', module.USERS_SPLIT],
                                      validation_exclude_splits=[module.USERS_SPLIT])

  # wiring.transform passes no settings to preprocessing_fn; the vocabulary thresholds are settings here.
  transform = tfx.components.Transform(
      examples=builder.outputs['examples'], schema=validation.schema, preprocessing_fn=f'{MODULE}.preprocessing_fn',
      splits_config=tfx.proto.SplitsConfig(analyze=['train'], transform=['train', 'eval']),
      custom_config={'code_version': version, **{k: settings[k] for k in (
          'max_tags', 'min_user_pairs', 'min_track_pairs', 'min_artist_pairs', 'min_tag_pairs')}})
  transform.add_upstream_node(validation.gate)

  vocabulary_filter = VocabularyFilter(
      examples=builder.outputs['examples'], transform_graph=transform.outputs['transform_graph'],
      code_version=code_version('pipelines.recommender.vocabulary_filter'))

  model_settings = {k: settings[k] for k in (
      'seed', 'max_tags', 'objective', 'temperature', 'embedding_l2', 'embedding_dim', 'tower_units', 'output_dim',
      'learning_rate', 'batch_size', 'epochs', 'top_k', 'exclude_training_tracks', 'sampled_negatives',
      'sampled_negative_weight', 'listened_negative_weight')}
  tuner = None
  if settings['tuning'] == 'on':
    tuner = wiring.tuner(MODULE, transform, validation.schema, {
        **model_settings, **{k: settings[k] for k in ('tuning_trials', 'tuning_epochs', 'recall_samples')}}, version)
  trainer = wiring.trainer(MODULE, transform, validation.schema, model_settings, version, tuned=tuner)

  latest_blessed = wiring.latest_blessed_model()

  evaluator = tfx.components.Evaluator(
      examples=vocabulary_filter.outputs['filtered'], model=trainer.outputs['model'],
      baseline_model=latest_blessed.outputs['model'],
      eval_config=module.eval_config(settings['min_auc'], settings['max_auc_decrease']), example_splits=['test'])

  recall = RecallEvaluator(
      examples=vocabulary_filter.outputs['filtered'], transform_graph=transform.outputs['transform_graph'],
      model=trainer.outputs['model'], num_samples=settings['recall_samples'], seed=settings['seed'],
      objective=settings['objective'], code_version=code_version('pipelines.recommender.recall_evaluator', MODULE))

  # The champion rule on recall (not a TFMA metric): the model is served only if it beats popularity.
  gate = RecommenderChampionGate(
      model=trainer.outputs['model'], report=recall.outputs['report'],
      evaluator_blessing=evaluator.outputs['blessing'], primary_metric=settings['primary_metric'],
      code_version=code_version('pipelines.recommender.champion_gate', 'pipelines.champion')).with_id('ChampionGate')

  push = wiring.pusher(trainer.outputs['model'], gate.outputs['blessing'], serving_dir)

  bulk_inferrer = wiring.bulk_inferrer(builder.outputs['examples'], trainer.outputs['model'],
                                       gate.outputs['blessing'], module.USERS_SPLIT, module.TOP_K_EXAMPLES_SIGNATURE)

  # The run report publishes the node `PredictionsExport`'s CSV (and only then calls report_extras).
  export = RecommendationsExport(
      inference_result=bulk_inferrer.outputs['inference_result'], examples=vocabulary_filter.outputs['filtered'],
      user_examples=builder.outputs['examples'], transform_graph=transform.outputs['transform_graph'],
      blessing=gate.outputs['blessing'], top_k=settings['top_k'],
      exclude_training_tracks=settings['exclude_training_tracks'],
      code_version=code_version('pipelines.recommender.recommendations')).with_id('PredictionsExport')

  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name, pipeline_root=pipeline_root,
      components=[example_gen, builder, *validation, transform, vocabulary_filter, *([tuner] if tuner else []),
                  trainer, latest_blessed,
                  evaluator, recall, gate, push, bulk_inferrer, export],
      enable_cache=True, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)
