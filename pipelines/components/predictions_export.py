"""PredictionsExport: BulkInferrer's PredictionLogs -> keyed CSV or JSONL files or a BigQuery table, counted (Beam).

Each PredictionLog of a Predict signature carries the serialized input tf.Example (from which the key
feature is read, so keys travel through BulkInferrer untouched) and the named output tensors. A row has
the key column, the chosen outputs (all of the signature's, sorted, when none are named), then any
`carry_features` copied from the input example (e.g. another model's prediction columns), one row per
scored example:
- `csv` (default): `num_shards` files `predictions-SSSSS-of-NNNNN.csv` in the output artifact, one value per
  cell (an output's first value);
- `jsonl`: `predictions-SSSSS-of-NNNNN.jsonl`, one JSON object per line, multi-valued outputs as lists;
- `bigquery`: the table `output_table` (`bq://project.dataset.table`, validated), schema from the first
  log's outputs and key (multi-valued outputs REPEATED), written with `write_disposition`.
`counts.json` records `rows_out`. When the model was not blessed, BulkInferrer writes nothing; the export
then writes a header-only CSV (no rows otherwise) and records `model_blessed: 0`, so the report can say why
there are no predictions.
"""
import csv
import io
import json
import os
from typing import Any, Dict, List, Optional

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import prediction_log_pb2
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from pipelines import artifacts, bigquery, runners
from pipelines import beam_io

PREDICTIONS_PREFIX = 'predictions'
OUTPUT_FORMATS = ('csv', 'jsonl', 'bigquery')
WRITE_DISPOSITIONS = ('WRITE_TRUNCATE', 'WRITE_APPEND', 'WRITE_EMPTY')
_BQ_TYPES = {'int64_list': 'INTEGER', 'float_list': 'FLOAT', 'bytes_list': 'STRING'}


class Predictions(types.Artifact):
  """Keyed prediction files (CSV shards) written by PredictionsExport."""
  TYPE_NAME = 'marketing_ml.Predictions'  # namespace.Name: KFP v2 requires it


class PredictionsExportSpec(types.ComponentSpec):
  """PredictionsExport component spec."""
  PARAMETERS = {
      'key_feature': ExecutionParameter(type=str),
      'output_names': ExecutionParameter(type=str),
      'carry_features': ExecutionParameter(type=str),
      'num_shards': ExecutionParameter(type=int),
      'output_format': ExecutionParameter(type=str, optional=True),
      'output_table': ExecutionParameter(type=str, optional=True),
      'write_disposition': ExecutionParameter(type=str, optional=True),
      'code_version': ExecutionParameter(type=str, optional=True),  # this module's source hash: a code change is a
                                                                   # cache miss
  }
  INPUTS = {'inference_result': ChannelParameter(type=standard_artifacts.InferenceResult)}
  OUTPUTS = {'predictions': ChannelParameter(type=Predictions)}


def prediction_row(log: prediction_log_pb2.PredictionLog, key_feature: str, output_names: List[str],
                   carry_features: List[str]) -> List[Any]:
  """[key, output_1, ..., carried_1, ...] from one PredictionLog of a Predict signature whose one input is
  the serialized tf.Example."""
  request = log.predict_log.request
  serialized = next(iter(request.inputs.values())).string_val[0]
  example = beam_io.serialized_example_to_row(serialized)
  outputs = log.predict_log.response.outputs
  missing = [name for name in output_names if name not in outputs] + [
      name for name in [key_feature] + carry_features if name not in example]
  if missing:
    raise ValueError(f'PredictionLog lacks {missing}: model outputs {sorted(outputs)}, '
                     f'input features {sorted(example)}')
  return ([example[key_feature]] + [tf.make_ndarray(outputs[name]).reshape(-1)[0].item() for name in output_names]
          + [example[name] for name in carry_features])


def _value(array: Any) -> Any:
  values = array.reshape(-1).tolist()
  values = [v.decode('utf-8', errors='replace') if isinstance(v, bytes) else v for v in values]
  return values[0] if len(values) == 1 else values


def prediction_record(log: prediction_log_pb2.PredictionLog, key_feature: str, output_names: List[str],
                      carry_features: List[str]) -> Dict[str, Any]:
  """{key, outputs..., carried...} from one PredictionLog; an output with several values per example is a list."""
  request = log.predict_log.request
  example = beam_io.serialized_example_to_row(next(iter(request.inputs.values())).string_val[0])
  outputs = log.predict_log.response.outputs
  record = {key_feature: example[key_feature],
            **{name: _value(tf.make_ndarray(outputs[name])) for name in output_names}}
  record.update({name: example[name] for name in carry_features})
  return record


def first_log(pattern: str) -> prediction_log_pb2.PredictionLog:
  """The first PredictionLog in the GZIP TFRecord files matching `pattern`."""
  for record in artifacts.read_records(pattern):
    return prediction_log_pb2.PredictionLog.FromString(record)
  raise ValueError(f'no PredictionLog in {pattern}')


def table_schema(key_feature: str, key_kind: str, outputs: Dict[str, Any], carried: Dict[str, str]
                 ) -> Dict[str, List[Dict[str, str]]]:
  """The output table's schema (WriteToBigQuery's dict form): the key (REQUIRED, typed by its tf.Example kind
  'bytes_list' / 'int64_list' / 'float_list'), the outputs (one example's values, typed by their dtype; REPEATED
  when there are several) and the carried features ({name: kind})."""
  fields = [{'name': bigquery.column(name).strip('`'), 'type': _BQ_TYPES[kind],
             'mode': 'REQUIRED' if name == key_feature else 'NULLABLE'}
            for name, kind in [(key_feature, key_kind)] + list(carried.items())]
  for name, values in outputs.items():
    array = np.asarray(values)
    kind = ('BOOLEAN' if array.dtype == bool else 'INTEGER' if array.dtype.kind in 'iu'
            else 'FLOAT' if array.dtype.kind == 'f' else 'STRING')
    fields.append({'name': bigquery.column(name).strip('`'), 'type': kind,
                   'mode': 'REPEATED' if array.size > 1 else 'NULLABLE'})
  return {'fields': fields}


def bigquery_schema(log: prediction_log_pb2.PredictionLog, key_feature: str, output_names: List[str],
                    carry_features: List[str]) -> Dict[str, List[Dict[str, str]]]:
  """table_schema from one PredictionLog: its input example's key and carried features, its outputs."""
  request = log.predict_log.request
  example = tf.train.Example.FromString(next(iter(request.inputs.values())).string_val[0])
  kinds = {name: example.features.feature[name].WhichOneof('kind') for name in [key_feature] + carry_features}
  return table_schema(key_feature, kinds.pop(key_feature),
                      {name: tf.make_ndarray(log.predict_log.response.outputs[name]) for name in output_names},
                      kinds)


def bigquery_sink(output_table: str, schema: Dict[str, Any], write_disposition: str) -> beam.PTransform:
  """WriteToBigQuery for `bq://project.dataset.table` (identifiers validated), creating the table when needed."""
  if write_disposition not in WRITE_DISPOSITIONS:
    raise ValueError(f'write_disposition must be one of {WRITE_DISPOSITIONS}, got {write_disposition!r}')
  table = bigquery.BigQueryTable.parse(output_table)
  return beam.io.WriteToBigQuery(
      table=f'{table.project}:{table.dataset}.{table.table}', schema=schema,
      create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
      write_disposition=getattr(beam.io.BigQueryDisposition, write_disposition),
      method=beam.io.WriteToBigQuery.Method.FILE_LOADS)


def _csv_line(values: List[Any]) -> str:
  buffer = io.StringIO()
  csv.writer(buffer, lineterminator='').writerow(values)
  return buffer.getvalue()


def check_output(output_format: str, output_table: str, write_disposition: str) -> None:
  """Raises ValueError for an unknown output format or write disposition, bigquery.InvalidIdentifier for an
  invalid output table (bq://project.dataset.table) when the format is 'bigquery'."""
  if output_format not in OUTPUT_FORMATS:
    raise ValueError(f'output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}')
  if output_format == 'bigquery':
    bigquery.BigQueryTable.parse(output_table)
    if write_disposition not in WRITE_DISPOSITIONS:
      raise ValueError(f'write_disposition must be one of {WRITE_DISPOSITIONS}, got {write_disposition!r}')


class Executor(base_beam_executor.BaseBeamExecutor):
  """Reads PredictionLogs, writes CSV or JSONL shards or a BigQuery table, and counts."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    inference_result = artifact_utils.get_single_instance(input_dict['inference_result'])
    predictions = artifact_utils.get_single_instance(output_dict['predictions'])
    key_feature = exec_properties['key_feature']
    output_names = json.loads(exec_properties['output_names'])
    carry_features = json.loads(exec_properties['carry_features'])
    output_format = exec_properties.get('output_format') or 'csv'
    if output_format not in OUTPUT_FORMATS:
      raise ValueError(f'output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}')
    pattern = os.path.join(inference_result.uri, '*.gz')
    blessed = bool(tf.io.gfile.glob(pattern))
    if blessed and (not output_names or output_format == 'bigquery'):
      log = first_log(pattern)
      output_names = output_names or sorted(log.predict_log.response.outputs)
    prefix = os.path.join(predictions.uri, PREDICTIONS_PREFIX)
    with self._make_beam_pipeline() as pipeline:
      if blessed:
        logs = pipeline | 'ReadLogs' >> beam.io.ReadFromTFRecord(
            pattern, coder=beam.coders.ProtoCoder(prediction_log_pb2.PredictionLog))
      else:
        logging.warning('No prediction logs in %s: the model was not blessed, nothing was scored.',
                        inference_result.uri)
        logs = pipeline | 'NoRows' >> beam.Create([])
      if output_format == 'csv':
        _ = (logs
             | 'ToRow' >> beam.Map(prediction_row, key_feature, output_names, carry_features)
             | 'ToCsv' >> beam.Map(_csv_line)
             | 'WriteCsv' >> beam.io.WriteToText(prefix, file_name_suffix='.csv',
                                                 header=','.join([key_feature] + output_names + carry_features),
                                                 num_shards=exec_properties['num_shards']))
      else:
        records = logs | 'ToRecord' >> beam.Map(prediction_record, key_feature, output_names, carry_features)
        if output_format == 'jsonl':
          _ = (records
               | 'ToJson' >> beam.Map(json.dumps)
               | 'WriteJsonl' >> beam.io.WriteToText(prefix, file_name_suffix='.jsonl',
                                                     num_shards=exec_properties['num_shards']))
        elif blessed:
          _ = records | 'WriteBigQuery' >> bigquery_sink(
              exec_properties['output_table'], bigquery_schema(log, key_feature, output_names, carry_features),
              exec_properties.get('write_disposition') or 'WRITE_TRUNCATE')
      _ = (logs | 'CountRows' >> beam.Map(lambda _: ('rows_out', 1))
           | 'WriteCounts' >> beam_io.WriteCounts(predictions.uri))
    counts = beam_io.read_counts(predictions.uri)
    predictions.set_int_custom_property('rows_out', counts.get('rows_out', 0))
    predictions.set_int_custom_property('model_blessed', int(blessed))
    predictions.set_string_custom_property('output_format', output_format)
    if output_format == 'bigquery':
      predictions.set_string_custom_property('output_table', exec_properties['output_table'])
    logging.info('PredictionsExport wrote %d rows (%s) to %s', counts.get('rows_out', 0), output_format,
                 exec_properties.get('output_table') if output_format == 'bigquery' else predictions.uri)


class PredictionsExport(base_beam_component.BaseBeamComponent):
  """Exports BulkInferrer output as keyed CSV files (see module docstring)."""

  SPEC_CLASS = PredictionsExportSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, inference_result: types.BaseChannel, key_feature: str, output_names: List[str],
               carry_features: Optional[List[str]] = None, num_shards: int = 1, output_format: str = 'csv',
               output_table: str = '', write_disposition: str = 'WRITE_TRUNCATE'):
    """Args: inference_result (BulkInferrer output), key_feature (carried from the input example),
    output_names (signature outputs to write, in order; empty: all, sorted), carry_features (input features
    to copy after the outputs), num_shards (files; 0 lets Beam choose), output_format ('csv', 'jsonl' or
    'bigquery'), output_table (bq://project.dataset.table for 'bigquery'), write_disposition (BigQuery's
    WRITE_TRUNCATE, WRITE_APPEND or WRITE_EMPTY).
    Raises bigquery.InvalidIdentifier for an invalid output table, ValueError for an unknown format."""
    check_output(output_format, output_table, write_disposition)
    super().__init__(spec=PredictionsExportSpec(
        inference_result=inference_result, key_feature=key_feature, output_names=json.dumps(output_names),
        carry_features=json.dumps(carry_features or []), num_shards=num_shards, output_format=output_format,
        output_table=output_table, write_disposition=write_disposition, code_version=runners.code_version(__name__),
        predictions=types.Channel(type=Predictions)))
