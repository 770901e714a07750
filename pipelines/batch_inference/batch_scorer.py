"""BatchScorer: a SavedModel's Predict signature over one split of an Examples artifact, batch by batch, written as
keyed CSV or JSONL shards or a BigQuery table (Beam); the scoring stage of batch_inference.

Why not BulkInferrer: it runs tfx-bsl's RunInference, which loads the model once per worker process (a Shared
handle) and batches rows with beam.BatchElements, but then turns every row into a PredictionLog holding its input
example and one TensorProto per output (tf.make_tensor_proto per row and output), which an export step parses back
row by row. Here a batch stays a batch from the file to the output: one Beam element per input file (or per part
of a file, when the multi-process DirectRunner has more workers than files). The model is loaded once per worker
process (apache_beam.utils.shared) into a TF1 session, as tfx-bsl does, its input tensor fed a batch of the file's
serialized records (`batch_size` at a time, read in C++ while the batches before are scored); one session run
scores a batch and parses its keys, and for CSV the same thread formats the batch's lines with Arrow's C++
kernels (csv_text), so no row passes through Python.

Each work item writes its own output shard, `predictions-SSSSS-of-NNNNN.csv` (or .jsonl), one per input file
(or file part): a map-only job, no shuffle of the predictions (Beam's WriteToText groups every line by shard first:
a shuffle of every prediction on Dataflow; locally, with the counts' own write, it was 1.2 s of the executor's
3.6 s at 10k rows). A shard is written under a unique temporary name and renamed when complete, so a retried
bundle rewrites the same shard. Rows are counted in a Beam counter, read from the pipeline result. BigQuery rows
go to WriteToBigQuery.

The output is the one PredictionsExport writes (the same Predictions artifact type, shard names, counts.json
`rows_out`, properties `rows_out`, `output_format`, `output_table`), so the run report and RowsBalanceCheck read
either: the key column, then the outputs (all of the signature's, sorted, when none are named); CSV cells hold an
output's first value (floats in the shortest form that reads back as the same value), JSONL and BigQuery keep
multi-valued outputs as lists.
"""
from concurrent import futures
import json
import math
import os
import threading
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from absl import logging
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.runners.runner import PipelineResult
from apache_beam.utils import shared
from tensorflow.python.saved_model import loader_impl  # pylint: disable=g-direct-tensorflow-import
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import path_utils

from pipelines import runners
from pipelines import beam_io
from pipelines.components.predictions_export import (PREDICTIONS_PREFIX, Predictions, bigquery_sink, check_output,
                                                     table_schema)

COUNTER_NAMESPACE, ROWS_COUNTER = 'BatchScorer', 'rows_out'
RUNS_IN_FLIGHT = 2  # concurrent session runs per file (1M rows on 2 cores: 6.9 s with 1, 6.1 with 2, 5.9 with 3)
_KEY_DTYPES = {'bytes_list': tf.string, 'int64_list': tf.int64, 'float_list': tf.float32}


class BatchScorerSpec(types.ComponentSpec):
  """BatchScorer component spec."""
  PARAMETERS = {
      'split': ExecutionParameter(type=str),
      'signature_name': ExecutionParameter(type=str),
      'key_feature': ExecutionParameter(type=str),
      'output_names': ExecutionParameter(type=str),
      'batch_size': ExecutionParameter(type=int),
      'output_format': ExecutionParameter(type=str),
      'output_table': ExecutionParameter(type=str, optional=True),
      'write_disposition': ExecutionParameter(type=str, optional=True),
      'code_version': ExecutionParameter(type=str, optional=True),  # this module's source hash: a code change is a
                                                                   # cache miss
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
  """A SavedModel's signature in a TF1 session, fed a batch of serialized tf.Examples: each run scores the batch
  and parses its keys.

  Thread-safe: one instance serves every thread of a worker process (Beam runs several DoFn instances per process,
  e.g. a Dataflow SDK process's harness threads, all given this one scorer by apache_beam.utils.shared); a run
  holds no state between batches, and each file is read by its own reader (record_batches)."""

  def __init__(self, model_dir: str, signature_name: str, key_feature: str, key_kind: str, output_names: List[str],
               batch_size: int):
    """key_kind: the key's tf.Example kind ('bytes_list', 'int64_list' or 'float_list'); output_names: the
    outputs to fetch, in order (empty: all, sorted). Raises ValueError for a missing signature or output, or a
    signature whose input is not one string tensor (serialized tf.Examples)."""
    input_name, self.output_names, signature = serving_signature(model_dir, signature_name, output_names)
    self.batch_size = batch_size
    self.graph = tf.compat.v1.Graph()
    self.session = tf.compat.v1.Session(graph=self.graph)
    with self.graph.as_default():
      self.serialized = tf.compat.v1.placeholder(tf.string, [None], name='batch_scorer_examples')
      tf.compat.v1.saved_model.loader.load(self.session, [tf.saved_model.SERVING], model_dir,
                                           input_map={input_name: self.serialized})
      outputs = [self.graph.get_tensor_by_name(signature.outputs[name].name) for name in self.output_names]
      keys = tf.io.parse_example(self.serialized, {key_feature: tf.io.FixedLenFeature([], _KEY_DTYPES[key_kind])})[
          key_feature]
      self.fetches = (keys, dict(zip(self.output_names, outputs)))
    self._warmed = False
    self._warming = threading.Lock()

  def score(self, batch: np.ndarray) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """(keys, {output: values}) of a batch of serialized tf.Examples, in one session run.

    The first run is made alone: TF's DirectSession optimizes the graph (Grappler) for a fetch on its first run,
    and runs that start before the first has finished each do it again (CLV's model: 0.5 CPU-s each; every
    harness thread of a Dataflow worker would pay it)."""
    if self._warmed:
      return self.session.run(self.fetches, {self.serialized: batch})
    with self._warming:
      result = self.session.run(self.fetches, {self.serialized: batch})
      self._warmed = True
    return result

  def batches(self, path: str, part: int, parts: int,
              convert: Callable[[np.ndarray, Dict[str, np.ndarray]], Any] = lambda keys, outputs: (keys, outputs)
              ) -> Iterator[Any]:
    """convert(keys, {output: values}) per batch i of the file with i % parts == part, in order. The file is read
    in this thread while RUNS_IN_FLIGHT threads score the batches before it and convert them (a session run and
    Arrow's kernels release the GIL), so reading, scoring and formatting overlap."""
    # A read's worth of batches may wait for a thread, so that the threads have work while the next read runs.
    queued = RUNS_IN_FLIGHT + math.ceil(beam_io.READ_RECORDS / self.batch_size)
    with futures.ThreadPoolExecutor(RUNS_IN_FLIGHT) as pool:
      pending: List[futures.Future] = []
      for i, batch in enumerate(beam_io.record_batches(path, self.batch_size)):
        if i % parts != part:
          continue
        pending.append(pool.submit(lambda records: convert(*self.score(records)), batch))
        if len(pending) > queued:
          yield pending.pop(0).result()
      for run in pending:
        yield run.result()


_CSV_SPECIAL = '[,"\r\n]'


def _csv_cells(values: np.ndarray) -> pa.Array:
  """Arrow binary CSV cells of an array's first value per row: numbers in the shortest form that reads back as the
  same value (float32 as float32); strings quoted when they hold a comma, a quote or a line break (quotes
  doubled); booleans True / False."""
  first = values.reshape(len(values), -1)[:, 0]
  if first.dtype.kind in 'OSU':
    cells = pa.array(first, pa.binary())
    special = pc.match_substring_regex(cells, _CSV_SPECIAL)
    if pc.any(special).as_py():  # rare for keys: only the batches that hold one are quoted
      quoted = pc.binary_join_element_wise(b'"', pc.replace_substring(cells, b'"', b'""'), b'"', b'')
      cells = pc.if_else(special, quoted, cells)
    return cells
  if first.dtype.kind == 'b':
    return pc.if_else(pa.array(first), b'True', b'False')
  if first.dtype == np.float16:  # Arrow casts no half floats to text; float32 holds them exactly
    first = first.astype(np.float32)
  return pc.cast(pc.cast(pa.array(first), pa.string()), pa.binary())


def csv_text(keys: np.ndarray, outputs: Sequence[np.ndarray]) -> bytes:
  """The CSV lines (bytes, each ending in a line break) of one scored batch: the key, then each output's first
  value per row (_csv_cells). Formatted by Arrow's C++ kernels, which release the GIL: 1M rows of a string key and
  two float32 outputs in 1.0 CPU-s on this project's 2-core machine, against 1.9 for TensorFlow's as_string
  and string joins."""
  lines = pc.binary_join_element_wise(*[_csv_cells(keys)] + [_csv_cells(np.asarray(o)) for o in outputs], b',')
  one_list = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines)
  return pc.binary_join(one_list, b'\n')[0].as_py() + b'\n'


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


Work = Tuple[str, int, int, str]  # (input file, part, parts, output shard path ('' for BigQuery rows))


class _ScoreFile(beam.DoFn):
  """(file, part, parts, shard) -> the scored batches i of the file with i % parts == part, written to the shard
  as CSV (after `header`) or JSONL text, or yielded as BigQuery rows; every row counted in ROWS_COUNTER."""

  def __init__(self, model_dir: str, signature_name: str, key_feature: str, key_kind: str, output_names: List[str],
               batch_size: int, output_format: str, header: str = ''):
    super().__init__()
    self._args = (model_dir, signature_name, key_feature, key_kind, output_names, batch_size)
    self._key_feature, self._output_names, self._format = key_feature, output_names, output_format
    self._header = header
    self._shared = shared.Shared()
    self._scorer = None
    self._rows = Metrics.counter(COUNTER_NAMESPACE, ROWS_COUNTER)

  def setup(self):
    self._scorer = self._shared.acquire(lambda: SessionScorer(*self._args), tag=json.dumps(self._args))

  def process(self, work: Work):
    path, part, parts, shard = work
    if self._format == 'bigquery':
      for keys, outputs in self._scorer.batches(path, part, parts):
        self._rows.inc(len(keys))
        yield from batch_records(keys, outputs, self._key_feature, self._output_names)
      return
    temporary = f'{shard}.tmp-{uuid.uuid4().hex}'
    with tf.io.gfile.GFile(temporary, 'wb') as f:
      f.write(self._header.encode('utf-8'))
      for chunk in self.text_chunks(path, part, parts):
        f.write(chunk)
    tf.io.gfile.rename(temporary, shard, overwrite=True)

  def text_chunks(self, path: str, part: int, parts: int) -> Iterator[bytes]:
    """The CSV (without header) or JSONL text of the file part's batches, UTF-8, one chunk per batch, counted."""
    if self._format == 'csv':
      names = self._scorer.output_names
      for text, rows in self._scorer.batches(
          path, part, parts, lambda keys, outputs: (csv_text(keys, [outputs[name] for name in names]), len(keys))):
        self._rows.inc(rows)
        yield text
      return
    for keys, outputs in self._scorer.batches(path, part, parts):
      self._rows.inc(len(keys))
      yield ''.join(json.dumps(r) + '\n' for r in batch_records(keys, outputs, self._key_feature,
                                                                  self._output_names)).encode('utf-8')


def shard_paths(prefix: str, suffix: str, shards: int) -> List[str]:
  """Beam-style shard names <prefix>-SSSSS-of-NNNNN<suffix>."""
  return [f'{prefix}-{i:05d}-of-{shards:05d}{suffix}' for i in range(shards)]


def counter_total(result: PipelineResult, name: str) -> int:
  """The committed total of the pipeline's counter `name` (namespace COUNTER_NAMESPACE), over all steps."""
  counters = result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE).with_name(name))['counters']
  return int(sum(counter.committed or 0 for counter in counters))


def parts_per_file(beam_pipeline_args: List[str], files: int) -> int:
  """Work items per input file: on the multi-process DirectRunner, enough for every worker process when there are
  fewer files than workers (each part reads the whole file and scores every parts-th batch); else one."""
  options = PipelineOptions(beam_pipeline_args).view_as(DirectOptions)
  if options.direct_running_mode not in ('multi_processing', 'multi_threading'):
    return 1
  workers = options.direct_num_workers or os.cpu_count() or 1
  return max(1, math.ceil(workers / max(files, 1)))


def first_example(files: List[str]) -> Optional[tf.train.Example]:
  """The first record of the first non-empty file, or None when every file is empty."""
  for path in files:
    for batch in beam_io.record_batches(path, 1):
      return tf.train.Example.FromString(batch[0])
  return None


def scored_table_schema(scorer: SessionScorer, key_feature: str, key_kind: str, example: tf.train.Example
                        ) -> Dict[str, Any]:
  """The BigQuery schema of the scorer's rows (the key, then its outputs), from scoring `example` once."""
  _, outputs = scorer.score(np.array([example.SerializeToString()], dtype=object))
  return table_schema(key_feature, key_kind, {name: outputs[name][0] for name in scorer.output_names}, {})


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
    first = first_example(files)
    key_kind = first.features.feature[key_feature].WhichOneof('kind') if first is not None else 'bytes_list'
    if first is not None and key_kind is None:
      raise ValueError(f'the examples have no key feature {key_feature!r}')
    _, output_names, _ = serving_signature(model_dir, exec_properties['signature_name'],
                                           json.loads(exec_properties['output_names']))
    parts = parts_per_file(self._beam_pipeline_args, len(files))
    items = [(path, part) for path in files for part in range(parts)]
    shards = ([] if output_format == 'bigquery' else
              shard_paths(os.path.join(predictions.uri, PREDICTIONS_PREFIX), f'.{output_format}', max(len(items), 1)))
    header = ','.join([key_feature] + output_names) + '\n' if output_format == 'csv' else ''
    if not items and shards:  # no input file: one empty shard, as a readable "no rows"
      with tf.io.gfile.GFile(shards[0], 'w') as f:
        f.write(header)
    score = _ScoreFile(model_dir, exec_properties['signature_name'], key_feature, key_kind, output_names,
                       exec_properties['batch_size'], output_format, header)
    with self._make_beam_pipeline() as pipeline:
      scored = (pipeline
                | 'Files' >> beam.Create([(path, part, parts, shards[i] if shards else '')
                                          for i, (path, part) in enumerate(items)])
                | 'Score' >> beam.ParDo(score))
      if output_format == 'bigquery' and first is not None:
        schema = scored_table_schema(SessionScorer(model_dir, exec_properties['signature_name'], key_feature,
                                                   key_kind, output_names, 1), key_feature, key_kind, first)
        _ = scored | 'WriteBigQuery' >> bigquery_sink(
            exec_properties['output_table'], schema, exec_properties.get('write_disposition') or 'WRITE_TRUNCATE')
    rows_out = counter_total(pipeline.result, ROWS_COUNTER)
    beam_io.write_counts_file(predictions.uri, {'rows_out': rows_out})
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
               output_format: str = 'csv', output_table: str = '', write_disposition: str = 'WRITE_TRUNCATE'):
    """Args: examples and model channels, split (scored), key_feature (carried to the output), signature_name
    (takes serialized tf.Examples), output_names (written, in order; empty: all, sorted), batch_size (rows per
    session run), output_format ('csv' or 'jsonl' shards, one per input file (or file part), or 'bigquery'),
    output_table (bq://project.dataset.table), write_disposition (BigQuery's).
    Raises bigquery.InvalidIdentifier for an invalid output table, ValueError for an unknown format or disposition."""
    check_output(output_format, output_table, write_disposition)
    if batch_size < 1:
      raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    super().__init__(spec=BatchScorerSpec(
        examples=examples, model=model, split=split, signature_name=signature_name, key_feature=key_feature,
        output_names=json.dumps(list(output_names)), batch_size=batch_size, output_format=output_format,
        output_table=output_table, write_disposition=write_disposition, code_version=runners.code_version(__name__),
        predictions=types.Channel(type=Predictions)))
