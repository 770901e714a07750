"""BatchScorer: a SavedModel's Predict signature over one split of an Examples artifact, batch by batch, written as
keyed CSV or JSONL shards or a BigQuery table (Beam); the scoring stage of batch_inference.

Why not BulkInferrer: it runs tfx-bsl's RunInference, which loads the model once per worker process (a Shared
handle) and batches rows with beam.BatchElements, but then turns every row into a PredictionLog holding its input
example and one TensorProto per output (tf.make_tensor_proto per row and output), which an export step parses back
row by row. Here a batch stays a batch from the file to the output: one Beam element per input file (or per part
of a file, when the multi-process DirectRunner has more workers than files). The model is loaded once per worker
process (apache_beam.utils.shared) into a TF1 session, as tfx-bsl does, with its input tensor mapped to a
tf.data reader of the file (`batch_size` records per batch, the next batch read ahead); one session run reads a
batch, scores it, parses its keys and, for CSV, formats its lines (tf.strings), so no row passes through Python.

The output is the one PredictionsExport writes (the same Predictions artifact type, file names, counts.json
`rows_out`, properties `rows_out`, `output_format`, `output_table`), so the run report and RowsBalanceCheck read
either: the key column, then the outputs (all of the signature's, sorted, when none are named); CSV cells hold an
output's first value (floats with 9 or 17 significant digits, so they read back exactly), JSONL and BigQuery keep
multi-valued outputs as lists.
"""
from concurrent import futures
import json
import math
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.utils import shared
from tensorflow.python.saved_model import loader_impl  # pylint: disable=g-direct-tensorflow-import
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import path_utils

from pipelines.components import beam_io
from pipelines.components.predictions_export import (PREDICTIONS_PREFIX, Predictions, bigquery_sink, check_output,
                                                     table_schema)

RUNS_IN_FLIGHT = 2  # concurrent session runs per file (measured: +17% rows/s over 1 on 2 cores, 3 slower)
_KEY_DTYPES = {'bytes_list': tf.string, 'int64_list': tf.int64, 'float_list': tf.float32}


class BatchScorerSpec(types.ComponentSpec):
  """BatchScorer component spec."""
  PARAMETERS = {
      'split': ExecutionParameter(type=str),
      'signature_name': ExecutionParameter(type=str),
      'key_feature': ExecutionParameter(type=str),
      'output_names': ExecutionParameter(type=str),
      'batch_size': ExecutionParameter(type=int),
      'num_shards': ExecutionParameter(type=int),
      'output_format': ExecutionParameter(type=str),
      'output_table': ExecutionParameter(type=str, optional=True),
      'write_disposition': ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {'examples': ChannelParameter(type=standard_artifacts.Examples),
            'model': ChannelParameter(type=standard_artifacts.Model)}
  OUTPUTS = {'predictions': ChannelParameter(type=Predictions)}


def serving_signature(model_dir: str, signature_name: str, output_names: List[str]) -> Tuple[str, List[str], Any]:
  """(input tensor name, output names (as given, or all sorted), SignatureDef) read from the SavedModel's proto
  (no session). ValueError for a missing signature or output, or an input that is not one string tensor."""
  meta_graph = loader_impl.SavedModelLoader(model_dir).get_meta_graph_def_from_tags([tf.saved_model.SERVING])
  if signature_name not in meta_graph.signature_def:
    raise ValueError(f'no signature {signature_name!r} in {model_dir}: it has {sorted(meta_graph.signature_def)}')
  signature = meta_graph.signature_def[signature_name]
  inputs = list(signature.inputs.values())
  if len(inputs) != 1 or inputs[0].dtype != tf.string.as_datatype_enum:
    raise ValueError(f'signature {signature_name!r} must take one string tensor (serialized tf.Examples)')
  names = list(output_names) or sorted(signature.outputs)
  unknown = sorted(set(names) - set(signature.outputs))
  if unknown:
    raise ValueError(f'the signature has no output(s) {unknown}: it has {sorted(signature.outputs)}')
  return inputs[0].name, names, signature


class SessionScorer:
  """A SavedModel's signature in a TF1 session whose input is a GZIP TFRecord file read in the graph: each run
  reads a batch, scores it, parses its keys and formats its CSV lines, in TensorFlow's C++ kernels."""

  def __init__(self, model_dir: str, signature_name: str, key_feature: str, key_kind: str, output_names: List[str],
               batch_size: int):
    """key_kind: the key's tf.Example kind ('bytes_list', 'int64_list' or 'float_list'); output_names: the
    outputs to fetch, in order (empty: all, sorted). Raises ValueError for a missing signature or output, or a
    signature whose input is not one string tensor (serialized tf.Examples)."""
    input_name, self.output_names, signature = serving_signature(model_dir, signature_name, output_names)
    self.graph = tf.compat.v1.Graph()
    self.session = tf.compat.v1.Session(graph=self.graph)
    with self.graph.as_default():
      self.path = tf.compat.v1.placeholder(tf.string, [], name='batch_scorer_path')
      self.parts = tf.compat.v1.placeholder(tf.int64, [], name='batch_scorer_parts')
      self.part = tf.compat.v1.placeholder(tf.int64, [], name='batch_scorer_part')
      batches = (tf.data.TFRecordDataset(self.path, compression_type='GZIP').batch(batch_size)
                 .shard(self.parts, self.part).prefetch(1))
      self.iterator = tf.compat.v1.data.make_initializable_iterator(batches)
      serialized = self.iterator.get_next()
      tf.compat.v1.saved_model.loader.load(self.session, [tf.saved_model.SERVING], model_dir,
                                           input_map={input_name: serialized})
      outputs = [self.graph.get_tensor_by_name(signature.outputs[name].name) for name in self.output_names]
      keys = tf.io.parse_example(serialized, {key_feature: tf.io.FixedLenFeature([], _KEY_DTYPES[key_kind])})[
          key_feature]
      lines = tf.strings.join([csv_cells(keys)] + [csv_cells(output) for output in outputs], separator=',')
      self.fetches = {'keys': keys, 'outputs': dict(zip(self.output_names, outputs)),
                      'csv': (tf.strings.reduce_join(lines + '\n'), tf.size(keys))}

  def batches(self, path: str, part: int, parts: int, fetch: str) -> Iterator[Any]:
    """Per batch i of the file with i % parts == part: (its CSV lines as one string, its rows) for fetch 'csv',
    else (keys, {output: values}). RUNS_IN_FLIGHT session runs at a time (each takes the next batch; the
    session releases the GIL), so one batch is formatted while the next is scored."""
    self.session.run(self.iterator.initializer, {self.path: path, self.part: part, self.parts: parts})
    fetches = self.fetches['csv'] if fetch == 'csv' else (self.fetches['keys'], self.fetches['outputs'])
    with futures.ThreadPoolExecutor(RUNS_IN_FLIGHT) as pool:
      pending = [pool.submit(self.session.run, fetches) for _ in range(RUNS_IN_FLIGHT)]
      while pending:
        try:
          result = pending.pop(0).result()
        except tf.errors.OutOfRangeError:
          continue  # the file is done for this run; the others finish theirs
        pending.append(pool.submit(self.session.run, fetches))
        yield result


def csv_cells(values: tf.Tensor) -> tf.Tensor:
  """[B] CSV cells of a [B, ...] tensor's first value per row: numbers with 9 (float32) or 17 (float64)
  significant digits, so they read back as the same value; strings quoted when they hold a comma, a quote or a
  line break (quotes doubled); booleans True / False."""
  first = tf.reshape(values, [tf.shape(values)[0], -1])[:, 0]
  if first.dtype == tf.string:
    quoted = tf.strings.join(['"', tf.strings.regex_replace(first, '"', '""'), '"'])
    return tf.where(tf.strings.regex_full_match(first, '(?s).*[,"\r\n].*'), quoted, first)
  if first.dtype == tf.bool:
    return tf.where(first, 'True', 'False')
  if first.dtype.is_floating:
    return tf.strings.as_string(first, precision=17 if first.dtype == tf.float64 else 9, shortest=True)
  return tf.strings.as_string(first)


def _python_values(array: np.ndarray) -> List[Any]:
  values = array.tolist()
  if array.dtype.kind in 'OSU':
    values = [v.decode('utf-8', errors='replace') if isinstance(v, bytes) else v for v in values]
  return values


def batch_records(keys: np.ndarray, outputs: Dict[str, np.ndarray], key_feature: str, output_names: List[str]
                  ) -> List[Dict[str, Any]]:
  """One {key_feature: key, output: value} per row of one batch; an output with several values per row is a
  list."""
  rows = len(keys)
  columns = [_python_values(keys)]
  for name in output_names:
    values = np.asarray(outputs[name]).reshape(rows, -1)
    columns.append(_python_values(values[:, 0]) if values.shape[1] == 1 else [_python_values(r) for r in values])
  return [dict(zip([key_feature] + output_names, row)) for row in zip(*columns)]


class _ScoreFile(beam.DoFn):
  """(file, part, parts) -> the scored batches i of the file with i % parts == part, as CSV / JSONL text chunks or
  BigQuery rows, and ('rows', n) per batch."""

  def __init__(self, model_dir: str, signature_name: str, key_feature: str, key_kind: str, output_names: List[str],
               batch_size: int, output_format: str):
    super().__init__()
    self._args = (model_dir, signature_name, key_feature, key_kind, output_names, batch_size)
    self._key_feature, self._output_names, self._format = key_feature, output_names, output_format
    self._shared = shared.Shared()
    self._scorer = None

  def setup(self):
    self._scorer = self._shared.acquire(lambda: SessionScorer(*self._args), tag=json.dumps(self._args))

  def process(self, work: Tuple[str, int, int]):
    path, part, parts = work
    if self._format == 'csv':
      for text, rows in self._scorer.batches(path, part, parts, 'csv'):
        yield beam.pvalue.TaggedOutput('rows', int(rows))
        yield text.decode('utf-8')
      return
    for keys, outputs in self._scorer.batches(path, part, parts, 'arrays'):
      yield beam.pvalue.TaggedOutput('rows', len(keys))
      records = batch_records(keys, outputs, self._key_feature, self._output_names)
      if self._format == 'jsonl':
        yield ''.join(json.dumps(r) + '\n' for r in records)
      else:
        yield from records


def parts_per_file(beam_pipeline_args: List[str], files: int) -> int:
  """Work items per input file: on the multi-process DirectRunner, enough for every worker process when there are
  fewer files than workers (each part reads the whole file and scores every parts-th batch); else one."""
  options = PipelineOptions(beam_pipeline_args).view_as(DirectOptions)
  if options.direct_running_mode not in ('multi_processing', 'multi_threading'):
    return 1
  workers = options.direct_num_workers or os.cpu_count() or 1
  return max(1, math.ceil(workers / max(files, 1)))


def _first_example(files: List[str]) -> Optional[tf.train.Example]:
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP').take(1):
    return tf.train.Example.FromString(record.numpy())
  return None


class Executor(base_beam_executor.BaseBeamExecutor):
  """Scores the split's files batch by batch and writes the predictions (see the module docstring)."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    examples = artifact_utils.get_single_instance(input_dict['examples'])
    model_dir = path_utils.serving_model_path(artifact_utils.get_single_instance(input_dict['model']).uri)
    predictions = artifact_utils.get_single_instance(output_dict['predictions'])
    key_feature, output_format = exec_properties['key_feature'], exec_properties['output_format']
    files = sorted(tf.io.gfile.glob(os.path.join(
        artifact_utils.get_split_uri([examples], exec_properties['split']), '*')))
    first = _first_example(files)
    key_kind = first.features.feature[key_feature].WhichOneof('kind') if first is not None else 'bytes_list'
    if first is not None and key_kind is None:
      raise ValueError(f'the examples have no key feature {key_feature!r}')
    _, output_names, _ = serving_signature(model_dir, exec_properties['signature_name'],
                                           json.loads(exec_properties['output_names']))
    prefix = os.path.join(predictions.uri, PREDICTIONS_PREFIX)
    parts = parts_per_file(self._beam_pipeline_args, len(files))
    with self._make_beam_pipeline() as pipeline:
      scored = (pipeline
                | 'Files' >> beam.Create([(path, part, parts) for path in files for part in range(parts)])
                | 'Score' >> beam.ParDo(_ScoreFile(model_dir, exec_properties['signature_name'], key_feature,
                                                   key_kind, output_names, exec_properties['batch_size'],
                                                   output_format)).with_outputs('rows', main='scored'))
      if output_format == 'csv':
        _ = scored.scored | 'WriteCsv' >> beam.io.WriteToText(
            prefix, file_name_suffix='.csv', header=','.join([key_feature] + output_names) + '\n',
            append_trailing_newlines=False, num_shards=exec_properties['num_shards'])
      elif output_format == 'jsonl':
        _ = scored.scored | 'WriteJsonl' >> beam.io.WriteToText(
            prefix, file_name_suffix='.jsonl', append_trailing_newlines=False,
            num_shards=exec_properties['num_shards'])
      elif first is not None:
        probe = SessionScorer(model_dir, exec_properties['signature_name'], key_feature, key_kind, output_names, 1)
        _, outputs = next(probe.batches(files[0], 0, 1, 'arrays'))
        schema = table_schema(key_feature, key_kind, {name: outputs[name][0] for name in output_names}, {})
        _ = scored.scored | 'WriteBigQuery' >> bigquery_sink(
            exec_properties['output_table'], schema, exec_properties.get('write_disposition') or 'WRITE_TRUNCATE')
      _ = (scored.rows | 'CountRows' >> beam.Map(lambda n: ('rows_out', n))
           | 'WriteCounts' >> beam_io.WriteCounts(predictions.uri))
    rows_out = beam_io.read_counts(predictions.uri).get('rows_out', 0)
    predictions.set_int_custom_property('rows_out', rows_out)
    predictions.set_string_custom_property('output_format', output_format)
    if output_format == 'bigquery':
      predictions.set_string_custom_property('output_table', exec_properties['output_table'])
    logging.info('BatchScorer wrote %d rows (%s) from %d file(s) in %d part(s) each', rows_out, output_format,
                 len(files), parts)


class BatchScorer(base_beam_component.BaseBeamComponent):
  """Scores one split of Examples with a Model in fixed-size batches (see the module docstring)."""

  SPEC_CLASS = BatchScorerSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, examples: types.BaseChannel, model: types.BaseChannel, split: str, key_feature: str,
               signature_name: str = 'serving_default', output_names: List[str] = (), batch_size: int = 1000,
               num_shards: int = 1, output_format: str = 'csv', output_table: str = '',
               write_disposition: str = 'WRITE_TRUNCATE'):
    """Args: examples and model channels, split (scored), key_feature (carried to the output), signature_name
    (takes serialized tf.Examples), output_names (written, in order; empty: all, sorted), batch_size (rows per
    session run), num_shards (output files; 0 lets Beam choose), output_format ('csv', 'jsonl' or 'bigquery'),
    output_table (bq://project.dataset.table), write_disposition (BigQuery's).
    Raises bigquery.InvalidIdentifier for an invalid output table, ValueError for an unknown format or disposition."""
    check_output(output_format, output_table, write_disposition)
    if batch_size < 1:
      raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    super().__init__(spec=BatchScorerSpec(
        examples=examples, model=model, split=split, signature_name=signature_name, key_feature=key_feature,
        output_names=json.dumps(list(output_names)), batch_size=batch_size, num_shards=num_shards,
        output_format=output_format, output_table=output_table, write_disposition=write_disposition,
        predictions=types.Channel(type=Predictions)))
