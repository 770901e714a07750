"""ExamplesBuilder: raw Examples -> model Examples by a module function `build_examples` (Beam).

The module function has the signature

    build_examples(rows: beam.PCollection[dict], params: dict) -> BuiltExamples

where `rows` are the raw rows of every input split as dicts (see `beam_io.example_to_row`; raw Examples with
a Parquet payload give the same dicts, see `arrow_io.batch_rows`), or batches of them (`batched`),
`BuiltExamples.splits` maps split names to PCollections of dict rows, and `BuiltExamples.rejected`
holds `{'reason': str, 'record': dict}` for every input row or entity set aside. Rows the CSV reader could
not read (pipelines.csv_lines: a line not valid in the file's encoding, a wrong field count) never reach
`build_examples`: they are set aside here with the reader's reason, their record the original line. The
component writes each split as GZIP tf.Example TFRecords (like ExampleGen), and an `ExamplesBuildReport`
artifact with `counts.json` (rows read, examples per split, skipped by reason) and `rejected-*.csv` (reason,
record as strict JSON: no NaN or infinity).
A full ComponentSpec + BaseBeamExecutor, so `beam_pipeline_args` (DirectRunner mode, Dataflow) reach it.
"""
import csv
import functools
import io
import json
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import apache_beam as beam
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from pipelines import runners
from pipelines import arrow_io, beam_io, csv_lines, parsing

REJECTED_PREFIX = 'rejected'
REJECTED_HEADER = 'reason,record'
BATCH_ROWS = 8192  # raw rows a batch: the columnar check pays per call (measured in benchmarks/RESULTS.md)


class ExamplesBuildReport(types.Artifact):
  """Counts and rejected rows of one ExamplesBuilder run."""
  TYPE_NAME = 'marketing_ml.ExamplesBuildReport'  # namespace.Name: KFP v2 requires it


def batched(build_fn: Callable[..., 'BuiltExamples']) -> Callable[..., 'BuiltExamples']:
  """Marks a build_examples that takes batches of up to BATCH_ROWS raw rows (rows the reader could not read
  already set aside): lists of serialized tf.Examples, or Arrow RecordBatches (one nullable value per row and
  column) when the ExampleGen wrote Parquet (pipelines.arrow_io); it returns splits of lists of serialized
  examples. Columnar code (tfx_bsl's coders, Arrow, NumPy) then replaces per-row Python."""
  build_fn.takes_batches = True
  return build_fn


class BuiltExamples(NamedTuple):
  """What a `build_examples` module function returns."""
  splits: Dict[str, beam.PCollection]
  rejected: Optional[beam.PCollection] = None


class ExamplesBuilderSpec(types.ComponentSpec):
  """ExamplesBuilder component spec."""
  PARAMETERS = {
      'build_fn': ExecutionParameter(type=str),
      'params': ExecutionParameter(type=str),
      'code_version': ExecutionParameter(type=str, optional=True),
      'max_rejected_fraction': ExecutionParameter(type=float, optional=True),
  }
  INPUTS = {'raw_examples': ChannelParameter(type=standard_artifacts.Examples)}
  OUTPUTS = {
      'examples': ChannelParameter(type=standard_artifacts.Examples),
      'report': ChannelParameter(type=ExamplesBuildReport),
  }


def _rejected_to_csv_line(rejected: Dict[str, Any]) -> str:
  """One CSV line (no line end) of reason and the record as strict JSON; a line break inside is quoted."""
  buffer = io.StringIO()
  csv.writer(buffer, lineterminator='').writerow([rejected['reason'], parsing.record_json(rejected['record'])])
  return buffer.getvalue()


def _split_unreadable(row: Dict[str, Any]):
  """A row the CSV reader could not read -> tagged 'unreadable' as a rejected record (its original line);
  every other row as it is."""
  reason = row.get(csv_lines.REJECTED_REASON)
  if reason is None:
    yield row
  else:
    yield beam.pvalue.TaggedOutput('unreadable', {'reason': reason, 'record': row.get(csv_lines.REJECTED_LINE, '')})


_UNREADABLE_MARK = csv_lines.REJECTED_REASON.encode('utf-8')


def _split_unreadable_batch(batch: List[bytes]):
  """A batch of serialized raw examples without those the reader could not read (tagged 'unreadable' as
  _split_unreadable tags them); a byte search finds the candidates without parsing every example, one search
  of the whole batch first."""
  if _UNREADABLE_MARK not in b''.join(batch):
    yield batch
    return
  kept = []
  for record in batch:
    row = beam_io.serialized_example_to_row(record) if _UNREADABLE_MARK in record else None
    if row is not None and csv_lines.REJECTED_REASON in row:
      yield from _split_unreadable(row)
    else:
      kept.append(record)
  if kept:
    yield kept


class Executor(base_beam_executor.BaseBeamExecutor):
  """Runs the module's build_examples in a Beam pipeline and writes splits, counts and rejected rows."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    raw_examples = artifact_utils.get_single_instance(input_dict['raw_examples'])
    examples = artifact_utils.get_single_instance(output_dict['examples'])
    report = artifact_utils.get_single_instance(output_dict['report'])
    build_fn = beam_io.load_function(exec_properties['build_fn'])
    params = json.loads(exec_properties['params'])
    input_splits = artifact_utils.decode_split_names(raw_examples.split_names)
    logging.info('ExamplesBuilder: %s over splits %s with %s', exec_properties['build_fn'], input_splits, params)

    takes_batches = getattr(build_fn, 'takes_batches', False)
    parquet = examples_utils.get_payload_format(raw_examples) == example_gen_pb2.FORMAT_PARQUET
    spread = not beam_io.one_worker(self._beam_pipeline_args or [])
    with self._make_beam_pipeline() as pipeline:
      patterns = [io_utils.all_files_pattern(artifact_utils.get_split_uri([raw_examples], split))
                  for split in input_splits]
      if parquet:
        inputs = pipeline | 'ReadBatches' >> arrow_io.ReadRecordBatches(  # pylint: disable=no-value-for-parameter
            patterns, BATCH_ROWS, spread=spread)
        split_fn = functools.partial(arrow_io.split_unreadable, reason_column=csv_lines.REJECTED_REASON,
                                     line_column=csv_lines.REJECTED_LINE)
        count = lambda batch: ('rows_in', batch.num_rows)
      elif takes_batches:
        inputs = pipeline | 'ReadBatches' >> beam_io.ReadExampleBatches(  # pylint: disable=no-value-for-parameter
            patterns, BATCH_ROWS, spread=spread)
        split_fn, count = _split_unreadable_batch, lambda batch: ('rows_in', len(batch))
      else:
        inputs = ([pipeline | f'Read[{split}]' >> beam_io.ReadExampleRows(pattern)
                   for split, pattern in zip(input_splits, patterns)]
                  | 'FlattenInput' >> beam.Flatten())
        split_fn, count = _split_unreadable, lambda _: ('rows_in', 1)
      readable = inputs | 'SplitUnreadable' >> beam.FlatMap(split_fn).with_outputs('unreadable', main='rows')
      counters = [inputs | 'CountRowsIn' >> beam.Map(count)]
      rows = readable.rows
      if parquet and not takes_batches:
        rows = rows | 'ToRows' >> beam.FlatMap(arrow_io.batch_rows)
      built = build_fn(rows, params)
      if not isinstance(built, BuiltExamples) or not built.splits:
        raise ValueError(f'{exec_properties["build_fn"]} must return BuiltExamples with at least one split')
      examples.split_names = artifact_utils.encode_split_names(sorted(built.splits))
      for split, split_rows in built.splits.items():
        uri = artifact_utils.get_split_uri([examples], split)
        if takes_batches:
          _ = split_rows | f'Write[{split}]' >> beam_io.WriteExampleBatches(uri)  # pylint: disable=no-value-for-parameter
          counters.append(split_rows | f'Count[{split}]' >> beam.Map(lambda b, s=split: (f'examples/{s}', len(b))))
        else:
          _ = split_rows | f'Write[{split}]' >> beam_io.WriteExampleRows(uri)
          counters.append(split_rows | f'Count[{split}]' >> beam.Map(lambda _, s=split: (f'examples/{s}', 1)))
      rejected = ([built.rejected, readable.unreadable] if built.rejected is not None else [readable.unreadable]
                  ) | 'AllRejected' >> beam.Flatten()
      _ = (rejected
           | 'RejectedToCsv' >> beam.Map(_rejected_to_csv_line)
           | 'WriteRejected' >> beam.io.WriteToText(os.path.join(report.uri, REJECTED_PREFIX),
                                                    file_name_suffix='.csv', header=REJECTED_HEADER))
      counters.append(rejected | 'CountRejected' >> beam.Map(lambda r: (f'skipped/{r["reason"]}', 1)))
      _ = counters | 'FlattenCounts' >> beam.Flatten() | 'WriteCounts' >> beam_io.WriteCounts(report.uri)

    counts = beam_io.read_counts(report.uri)
    logging.info('ExamplesBuilder counts: %s', counts)
    check_rejected_fraction(counts, exec_properties.get('max_rejected_fraction'))
    empty = [split for split in built.splits if not counts.get(f'examples/{split}')]
    if empty:
      raise ValueError(f'build_examples produced no examples for split(s) {empty}: rows read '
                       f'{counts.get("rows_in", 0)}, skipped {beam_io.counts_under(counts, "skipped")}. '
                       'Check the input data and settings.')
    for name, value in counts.items():
      report.set_int_custom_property(name, value)


def check_rejected_fraction(counts: Dict[str, int], max_rejected_fraction: Optional[float]) -> None:
  """Raises ValueError naming the counts by reason when rejected rows / rows in exceeds the limit (None: none)."""
  if max_rejected_fraction is None:
    return
  skipped = beam_io.counts_under(counts, 'skipped')
  rows_in = counts.get('rows_in', 0)
  fraction = sum(skipped.values()) / rows_in if rows_in else 0.0
  if fraction > max_rejected_fraction:
    raise ValueError(f'{sum(skipped.values())} of {rows_in} rows rejected ({fraction:.2%}), more than '
                     f'max_rejected_fraction {max_rejected_fraction:.2%}: '
                     + ', '.join(f'{reason} {count}' for reason, count in sorted(skipped.items())))


class ExamplesBuilder(base_beam_component.BaseBeamComponent):
  """Builds model Examples from raw Examples with a module function (see module docstring)."""

  SPEC_CLASS = ExamplesBuilderSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, raw_examples: types.BaseChannel, build_fn: str, params: Dict[str, Any],
               code_version: str = '', max_rejected_fraction: Optional[float] = None):
    """Args: raw_examples (ExampleGen output), build_fn (dotted path of build_examples), params (JSON-able),
    code_version (a hash of the module code, so a code change invalidates the cache; the hash of this component's
    own code and of beam_io, which reads and writes the rows, is added to it), max_rejected_fraction (fail the
    run when rejected rows / rows in exceeds it; None: no limit)."""
    super().__init__(spec=ExamplesBuilderSpec(
        raw_examples=raw_examples, build_fn=build_fn, params=json.dumps(params, sort_keys=True),
        code_version=f'{code_version}+{runners.code_version(__name__, beam_io.__name__, arrow_io.__name__)}',
        max_rejected_fraction=max_rejected_fraction,
        examples=types.Channel(type=standard_artifacts.Examples),
        report=types.Channel(type=ExamplesBuildReport)))
