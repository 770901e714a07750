"""CLV pipeline: CDNOW-style transactions -> per-customer DNN of next-period spend, evaluated, pushed, scored.

CsvExampleGen -> ExamplesBuilder(modules.clv.build_examples) -> StatisticsGen -> SchemaGen -> ExampleValidator
-> AnomaliesGate -> Transform -> Trainer -> Evaluator (vs latest blessed) -> Pusher -> BulkInferrer(score)
-> PredictionsExport.
"""
import os
from typing import Any, Dict, List

from tfx import v1 as tfx
from tfx.proto import example_gen_pb2

from modules import clv as clv_module
from pipelines.components.anomalies_gate import AnomaliesGate
from pipelines.components.examples_builder import ExamplesBuilder
from pipelines.components.predictions_export import PredictionsExport
from pipelines.runners import code_version

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
    'beam_mode': 'in_memory',         # DirectRunner: 'in_memory' or 'multi_processing'
    'beam_workers': 0,                # 0 = one per core
}
SETTING_CHOICES = {'loss': ('mse', 'ziln'), 'beam_mode': ('in_memory', 'multi_processing')}


def create_pipeline(pipeline_name: str, pipeline_root: str, data_path: str, serving_dir: str,
                    settings: Dict[str, Any], beam_pipeline_args: List[str],
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
  """The CLV pipeline over the CSV file `data_path` (columns: REQUIRED_COLUMNS)."""
  version = code_version(MODULE, 'pipelines.metrics')
  example_gen = tfx.components.CsvExampleGen(
      input_base=os.path.dirname(os.path.abspath(data_path)),
      input_config=example_gen_pb2.Input(splits=[
          example_gen_pb2.Input.Split(name='raw', pattern=os.path.basename(data_path))]))

  builder = ExamplesBuilder(
      raw_examples=example_gen.outputs['examples'], build_fn=f'{MODULE}.build_examples',
      params={k: settings[k] for k in ('threshold_date', 'predict_end', 'max_monetary', 'eval_percent', 'seed')},
      code_version=version)

  statistics_gen = tfx.components.StatisticsGen(examples=builder.outputs['examples'])
  schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs['statistics'],
                                        exclude_splits=['eval', 'score'])
  # `score` has no label by design; it is checked against the schema by Transform's parser at scoring.
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'],
      exclude_splits=['score'])
  anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs['anomalies'])

  transform = tfx.components.Transform(
      examples=builder.outputs['examples'], schema=schema_gen.outputs['schema'],
      preprocessing_fn=f'{MODULE}.preprocessing_fn',
      splits_config=tfx.proto.SplitsConfig(analyze=['train'], transform=['train', 'eval']),
      custom_config={'code_version': version})
  transform.add_upstream_node(anomalies_gate)

  trainer = tfx.components.Trainer(
      run_fn=f'{MODULE}.run_fn',
      examples=transform.outputs['transformed_examples'],
      transform_graph=transform.outputs['transform_graph'],
      schema=schema_gen.outputs['schema'],
      train_args=tfx.proto.TrainArgs(splits=['train']),
      eval_args=tfx.proto.EvalArgs(splits=['eval']),
      custom_config={**{k: settings[k] for k in ('seed', 'loss', 'hidden_units', 'dropout', 'learning_rate',
                                                   'batch_size', 'epochs')}, 'code_version': version})

  latest_blessed = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id('latest_blessed_model_resolver')

  evaluator = tfx.components.Evaluator(
      examples=builder.outputs['examples'], model=trainer.outputs['model'],
      baseline_model=latest_blessed.outputs['model'],
      eval_config=clv_module.eval_config(settings['max_mae_increase']),
      example_splits=['eval'])

  pusher = tfx.components.Pusher(
      model=trainer.outputs['model'], model_blessing=evaluator.outputs['blessing'],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)))

  bulk_inferrer = tfx.components.BulkInferrer(
      examples=builder.outputs['examples'], model=trainer.outputs['model'],
      model_blessing=evaluator.outputs['blessing'],
      data_spec=tfx.proto.DataSpec(example_splits=['score']),
      model_spec=tfx.proto.ModelSpec(model_signature_name=['serving_default']))

  export = PredictionsExport(inference_result=bulk_inferrer.outputs['inference_result'],
                             key_feature=clv_module.KEY, output_names=[clv_module.PREDICTION])

  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name, pipeline_root=pipeline_root,
      components=[example_gen, builder, statistics_gen, schema_gen, example_validator, anomalies_gate,
                  transform, trainer, latest_blessed, evaluator, pusher, bulk_inferrer, export],
      enable_cache=True, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)
