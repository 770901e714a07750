"""Batch inference pipeline: any pushed model scored over a large keyed input, keys carried, every row counted.

KeyedFilesExampleGen (CSV / JSONL / TFRecord glob) or BigQueryExampleGen -> ExamplesBuilder
(modules.batch_inference.build_examples: rows checked against what the model parses, rejected by reason)
-> BatchScorer (the model from an Importer, scored in fixed batches; CSV / JSONL shards or a BigQuery table)
-> RowsBalanceCheck (rows in = rows out + rejected, or the run fails). `--set scorer=bulk_inferrer` scores with
TFX's BulkInferrer + PredictionsExport instead (see pipelines/batch_inference/batch_scorer.py for why not by default).

Raw data of a use case (`input_kind=raw`, e.g. CLV transactions with `--from clv`) goes through that use
case's own ExamplesBuilder (its build_fn and the params of the run that trained the model) and its `score`
split is scored instead: one preprocessing path.

`prepare` (called by the CLI before create_pipeline) resolves `--model` / `--from` / `--rows` into settings:
the latest pushed model of a use case through its ML Metadata, its key column and its ExamplesBuilder, and
the generated default input.
"""
import glob
import hashlib
import inspect
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
import pyarrow as pa
import tensorflow as tf
from tfx import v1 as tfx

from modules import batch_inference as bi
from pipelines import bigquery, csv_lines
from pipelines import beam_io
from pipelines.batch_inference import generate
from pipelines.batch_inference.batch_scorer import BatchScorer
from pipelines.components.examples_builder import ExamplesBuilder, ExamplesBuildReport
from pipelines.components.predictions_export import PREDICTIONS_PREFIX, PredictionsExport, Predictions
from pipelines.example_gens import raw_example_gen
from pipelines.report import ReportExtras
from pipelines.runners import code_version

MODULE = 'modules.batch_inference'
REQUIRED_COLUMNS: List[str] = []  # any columns: the model's serving signature says which it needs
DEFAULT_DATA = os.path.join('<output>', 'batch_inference', 'input',
                            'customers-<rows>-seed<seed>-<hash>.csv (generated)')
SERVING_DIR = 'Format-Serving'  # where BulkInferrer looks for the SavedModel inside a Model artifact
SETTINGS: Dict[str, Any] = {
    'model': '',                      # a Model artifact folder (holding Format-Serving/); set by --model / --from
    'source_use_case': 'clv',         # --from: the use case whose latest pushed model is scored
    'key_column': '',                 # default: the source use case's key (its PredictionsExport key_feature)
    'unique_keys': True,              # reject every row of a key that occurs more than once
    'input_kind': 'auto',             # 'examples' (model features + key), 'raw' (the source's raw data) or 'auto'
    'build_fn': '',                   # raw input: the source's build_examples (default: from its ML Metadata)
    'build_params': '',               # raw input: its params as JSON (default: those that made the model's data)
    'source_columns': '',             # raw input: the source's required columns, comma-separated (set by --from)
    'score_split': 'score',           # raw input: the split of the source's examples that is scored
    'signature': 'serving_default',
    'output_names': '',               # signature outputs to write, comma-separated ('' = all)
    'output_format': 'csv',           # 'csv' or 'jsonl' files, or 'bigquery' (output_table)
    'output_table': '',               # bq://project.dataset.table for output_format=bigquery
    'write_disposition': 'WRITE_TRUNCATE',
    'num_shards': 4,                  # output files of scorer=bulk_inferrer (0: Beam chooses); BatchScorer writes
                                      # one per input file
    'scorer': 'batch_scorer',         # 'batch_scorer' (fixed batches) or 'bulk_inferrer' (TFX BulkInferrer + export)
    'batch_size': 1000,               # rows per model call (batch_scorer)
    'rows': 200_000,                  # --rows: customers in the generated default input
    'seed': 42,                       # of the generated default input
}
SETTING_CHOICES = {'input_kind': ('auto', 'examples', 'raw'), 'output_format': ('csv', 'jsonl', 'bigquery'),
                   'scorer': ('batch_scorer', 'bulk_inferrer'),
                   'write_disposition': ('WRITE_TRUNCATE', 'WRITE_APPEND', 'WRITE_EMPTY')}
REPORTED_MODELS: Dict[str, Tuple[str, str, str]] = {}
REPORTED_METRICS: List[Tuple[str, str]] = []


# ---------------------------------------------------------------------------------------------------
# Input files: CSV, JSONL or TFRecord, never failing on a malformed line
# ---------------------------------------------------------------------------------------------------

def json_line_to_row(line: bytes, encoding: str = csv_lines.DEFAULT_ENCODING) -> Dict[str, Any]:
  """One JSON object per line; a csv_lines.rejected_row for anything else (bad_encoding for a line not valid
  in `encoding`, malformed_line for one that is no flat JSON object). Nulls are left out."""
  try:
    text = line.decode(encoding).lstrip('\ufeff')
  except UnicodeDecodeError:
    return csv_lines.rejected_row(csv_lines.BAD_ENCODING, line.decode(encoding, errors='replace'))
  try:
    row = json.loads(text)
  except ValueError:
    return csv_lines.rejected_row(bi.MALFORMED_JSON, text)
  if not isinstance(row, dict) or any(isinstance(v, dict) for v in row.values()):
    return csv_lines.rejected_row(bi.MALFORMED_JSON, text)
  return {k: v for k, v in row.items() if v is not None}


def input_format(pattern: str) -> str:
  """'csv', 'jsonl' or 'tfrecord' from the file pattern's extension (.gz allowed after csv/jsonl)."""
  name = pattern[:-3] if pattern.endswith('.gz') and not pattern.endswith(('.tfrecord.gz', '.tfr.gz')) else pattern
  for suffixes, kind in ((('.csv',), 'csv'), (('.jsonl', '.json', '.ndjson'), 'jsonl'),
                         (('.tfrecord', '.tfrecord.gz', '.tfr', '.tfr.gz'), 'tfrecord')):
    if name.endswith(suffixes):
      return kind
  raise ValueError(f'cannot tell the format of {pattern}: use .csv, .jsonl or .tfrecord[.gz] files')


@beam.ptransform_fn
def _KeyedFilesToBatches(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],  # pylint: disable=invalid-name
                         split_pattern: str) -> beam.PCollection:
  """Lists of serialized tf.Examples of the files matching the split's pattern."""
  pattern = os.path.join(exec_properties['input_base'], split_pattern)
  if not tf.io.gfile.glob(pattern):
    raise ValueError(f'no file matches {pattern}')
  kind = input_format(pattern)
  batch = beam.BatchElements(min_batch_size=csv_lines.BATCH_ROWS, max_batch_size=csv_lines.BATCH_ROWS)
  if kind == 'tfrecord':
    compression = 'gzip' if pattern.endswith('.gz') else 'uncompressed'
    return (pipeline | 'ReadTFRecords' >> beam.io.ReadFromTFRecord(pattern, compression_type=compression)  # as is
            | 'Batch' >> batch)
  encoding = csv_lines.decode_reader_config(exec_properties)['encoding']
  if kind == 'csv':
    schema = _csv_schema(exec_properties, split_pattern)
    if schema is not None:
      return pipeline | 'ReadCsv' >> csv_lines.ReadCsvRecordBatches(  # pylint: disable=no-value-for-parameter
          pattern, schema, encoding=encoding)
    return pipeline | 'ReadCsv' >> csv_lines.ReadCsvExamples(  # pylint: disable=no-value-for-parameter
        pattern, encoding=encoding)
  return (pipeline | 'ReadJsonl' >> beam.io.ReadFromText(pattern, coder=beam.coders.BytesCoder())
          | 'SkipBlank' >> beam.Filter(lambda line: line.strip() != b'')
          | 'JsonToRow' >> beam.Map(json_line_to_row, encoding)
          | 'Batch' >> batch
          | 'ToExamples' >> beam.Map(beam_io.rows_to_serialized_examples))


def _csv_schema(exec_properties: Dict[str, Any], split_pattern: str) -> Optional[pa.Schema]:
  """The RecordBatches' schema of CSV input (written as Parquet: csv_lines.record_batch_schema); None for
  other input, or a header that Parquet cannot hold (then tf.Examples)."""
  pattern = os.path.join(exec_properties['input_base'], split_pattern)
  if input_format(pattern) != 'csv':
    return None
  encoding = csv_lines.decode_reader_config(exec_properties)['encoding']
  return csv_lines.record_batch_schema(csv_lines.csv_files_header(pattern, encoding))


class KeyedFilesExecutor(csv_lines.BatchesExampleGenExecutor):
  """ExampleGen executor for CSV (values kept as strings, as BigQuery gives them; a Parquet payload), JSONL and
  tf.Example TFRecord files matching a glob; a malformed line becomes a row the ExamplesBuilder rejects and
  counts."""

  def GetInputSourceToBatchesPTransform(self) -> beam.PTransform:
    return _KeyedFilesToBatches

  def parquet_schema(self, exec_properties: Dict[str, Any], split_pattern: str) -> Optional[pa.Schema]:
    return _csv_schema(exec_properties, split_pattern)


def select_all(table: bigquery.BigQueryTable, column_map: Mapping[str, str]) -> str:
  """Every column of the validated table (BigQueryExampleGen reads INTEGER, FLOAT, BOOLEAN and STRING columns;
  CAST others in a view)."""
  if column_map:
    raise bigquery.InvalidIdentifier('bq_column_map is not used by batch_inference: name the columns as the '
                                     'model expects in a view')
  return f'SELECT * FROM {table.sql_name}'


# ---------------------------------------------------------------------------------------------------
# Nothing lost: rows in = rows out + rejected
# ---------------------------------------------------------------------------------------------------

def rows_balance(build_counts: Mapping[str, int], rows_out: int, score_split: str, raw_input: bool
                 ) -> Dict[str, Any]:
  """rows_in, rows_out, rejected (by reason) and whether they balance.

  Keyed input: rows_in = input rows read, rejected = the ExamplesBuilder's rejects. Raw input: rows_in = the
  entities in the source use case's score split (its raw-row rejects are reported as data.skipped).
  """
  scored = build_counts.get(f'examples/{score_split}', 0)
  rejected = {} if raw_input else beam_io.counts_under(build_counts, 'skipped')
  rows_in = scored if raw_input else build_counts.get('rows_in', 0)
  return {'rows_in': rows_in, 'rows_out': rows_out, 'rejected': rejected,
          'balanced': rows_in == rows_out + sum(rejected.values()) and scored == rows_out}


@tfx.dsl.components.component
def RowsBalanceCheck(report: tfx.dsl.components.InputArtifact[ExamplesBuildReport],  # pylint: disable=invalid-name
                     predictions: tfx.dsl.components.InputArtifact[Predictions],
                     score_split: tfx.dsl.components.Parameter[str],
                     raw_input: tfx.dsl.components.Parameter[int]) -> None:
  """Fails the run, naming the counts, unless rows in = rows out + rows rejected."""
  balance = rows_balance(beam_io.read_counts(report.uri), beam_io.read_counts(predictions.uri).get('rows_out', 0),
                         score_split, bool(raw_input))
  if not balance['balanced']:
    raise RuntimeError(f'rows lost: {balance["rows_in"]} rows in, {balance["rows_out"]} predictions out, '
                       f'{sum(balance["rejected"].values())} rejected {balance["rejected"]}')


# ---------------------------------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------------------------------

def create_pipeline(pipeline_name: str, pipeline_root: str, data_uri: str, serving_dir: str,
                    settings: Dict[str, Any], beam_pipeline_args: List[str],
                    metadata_connection_config=None) -> tfx.dsl.Pipeline:
  """The batch inference pipeline over files (a glob) or `bq://project.dataset.table`, scoring the Model
  artifact folder settings['model'] (serving_dir is unused: nothing is pushed). `prepare` fills the settings."""
  del serving_dir
  if not settings['model']:
    raise ValueError('batch_inference needs settings["model"] (--model PATH or --from USE_CASE)')
  raw_input = settings['input_kind'] == 'raw'
  if raw_input:
    example_gen = raw_example_gen(data_uri, settings['source_columns'].split(','), settings['bq_column_map'],
                                  encoding=settings['encoding'])
    builder = ExamplesBuilder(raw_examples=example_gen.outputs['examples'], build_fn=settings['build_fn'],
                              params=json.loads(settings['build_params']),
                              code_version=code_version(settings['build_fn'].rpartition('.')[0]))
  else:
    example_gen = raw_example_gen(data_uri, [], settings['bq_column_map'], query_builder=select_all,
                                  file_executor=KeyedFilesExecutor, encoding=settings['encoding'])
    builder = ExamplesBuilder(
        raw_examples=example_gen.outputs['examples'], build_fn=f'{MODULE}.build_examples',
        params={'key_column': settings['key_column'], 'unique_keys': settings['unique_keys'],
                'model_dir': os.path.join(settings['model'], SERVING_DIR), 'signature': settings['signature']},
        code_version=code_version(MODULE))

  model = tfx.dsl.Importer(source_uri=settings['model'], artifact_type=tfx.types.standard_artifacts.Model,
                           custom_properties={'tfx_version': tfx.__version__}).with_id('model_importer')

  split = settings['score_split'] if raw_input else bi.SCORE_SPLIT
  output_format = 'bigquery' if settings['output_table'] else settings['output_format']
  output_names = [name.strip() for name in settings['output_names'].split(',') if name.strip()]
  if settings['scorer'] == 'batch_scorer':
    scorers = [BatchScorer(
        examples=builder.outputs['examples'], model=model.outputs['result'], split=split,
        key_feature=settings['key_column'], signature_name=settings['signature'], output_names=output_names,
        batch_size=settings['batch_size'], output_format=output_format, output_table=settings['output_table'],
        write_disposition=settings['write_disposition'])]
  else:
    bulk_inferrer = tfx.components.BulkInferrer(
        examples=builder.outputs['examples'], model=model.outputs['result'],
        data_spec=tfx.proto.DataSpec(example_splits=[split]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=[settings['signature']]))
    scorers = [bulk_inferrer, PredictionsExport(
        inference_result=bulk_inferrer.outputs['inference_result'], key_feature=settings['key_column'],
        output_names=output_names, num_shards=settings['num_shards'], output_format=output_format,
        output_table=settings['output_table'], write_disposition=settings['write_disposition'])]

  check = RowsBalanceCheck(report=builder.outputs['report'], predictions=scorers[-1].outputs['predictions'],
                           score_split=split, raw_input=int(raw_input))

  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name, pipeline_root=pipeline_root,
      components=[example_gen, builder, model, *scorers, check],
      enable_cache=True, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args)


def report_extras(settings: Dict[str, Any], artifact: Callable[[str, str], Any], predictions_csv: str,
                  output_dir: str) -> ReportExtras:
  """data.rows_in / rows_out / rejected (by reason) / balanced, and the prediction shards copied to
  <output>/batch_inference/predictions-*.csv or .jsonl (or the BigQuery table named)."""
  del predictions_csv
  predictions = artifact('BatchScorer', 'predictions') or artifact('PredictionsExport', 'predictions')
  report = artifact('ExamplesBuilder', 'report')
  balance = rows_balance(beam_io.read_counts(report.uri), beam_io.read_counts(predictions.uri).get('rows_out', 0),
                         settings['score_split'] if settings['input_kind'] == 'raw' else bi.SCORE_SPLIT,
                         settings['input_kind'] == 'raw')
  outputs: Dict[str, str] = {}
  if settings['output_table']:
    outputs['predictions_table'] = settings['output_table']
  else:
    for old in glob.glob(os.path.join(output_dir, f'{PREDICTIONS_PREFIX}-*-of-*')):
      os.remove(old)
    shards = sorted(tf.io.gfile.glob(os.path.join(predictions.uri, f'{PREDICTIONS_PREFIX}-*-of-*')))
    for shard in shards:
      tf.io.gfile.copy(shard, os.path.join(output_dir, os.path.basename(shard)), overwrite=True)
    if shards:
      outputs['prediction_shards'] = os.path.join(output_dir, f'{PREDICTIONS_PREFIX}-*-of-*')
  return ReportExtras(outputs=outputs, data={**balance, 'model': settings['model']})


# ---------------------------------------------------------------------------------------------------
# CLI: --model / --from / --rows -> settings (file I/O and ML Metadata here, never in create_pipeline)
# ---------------------------------------------------------------------------------------------------

def _store(metadata_path: str):
  from ml_metadata import metadata_store  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = metadata_path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return metadata_store.MetadataStore(config)


def _property(execution, name: str) -> Optional[str]:
  for properties in (execution.custom_properties, execution.properties):
    if name in properties:
      return properties[name].string_value
  return None


def _producer(store, artifact_id: int):
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  events = [e for e in store.get_events_by_artifact_ids([artifact_id])
            if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
  return store.get_executions_by_id([events[0].execution_id])[0] if events else None


def _inputs(store, execution_id: int) -> Dict[str, int]:
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  return {e.path.steps[0].key if e.path.steps else str(e.artifact_id): e.artifact_id
          for e in store.get_events_by_execution_ids([execution_id])
          if e.type in (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)}


def _upstream_with(store, artifact_id: int, name: str) -> Optional[Any]:
  """The nearest execution upstream of an artifact that has the exec property `name` (breadth first)."""
  queue, seen = [artifact_id], set()
  while queue:
    current = queue.pop(0)
    if current in seen:
      continue
    seen.add(current)
    execution = _producer(store, current)
    if execution is None:
      continue
    if _property(execution, name):
      return execution
    queue.extend(_inputs(store, execution.id).values())
  return None


def latest_pushed_model(metadata_path: str) -> Optional[Dict[str, str]]:
  """The latest model a use case pushed, from its ML Metadata: {'model': the Model artifact folder the Pusher
  pushed, 'pushed_to', 'key_column' (its PredictionsExport's key), 'build_fn', 'build_params' (the
  ExamplesBuilder that made its data)}; None when nothing was pushed."""
  if not os.path.exists(metadata_path):
    return None
  store = _store(metadata_path)
  pushed = [a for a in store.get_artifacts_by_type('PushedModel')
            if 'pushed' in a.custom_properties and a.custom_properties['pushed'].int_value == 1]
  if not pushed:
    return None
  latest = max(pushed, key=lambda a: (a.create_time_since_epoch, a.id))
  pusher = _producer(store, latest.id)
  model_id = _inputs(store, pusher.id)['model']
  model = store.get_artifacts_by_id([model_id])[0]
  builder = _upstream_with(store, model_id, 'build_fn')
  exports = [e for e in store.get_executions() if _property(e, 'key_feature')]
  return {'model': model.uri, 'pushed_to': latest.custom_properties['pushed_destination'].string_value,
          'key_column': _property(max(exports, key=lambda e: (e.create_time_since_epoch, e.id)), 'key_feature')
                        if exports else '',
          'build_fn': _property(builder, 'build_fn') if builder else '',
          'build_params': _property(builder, 'params') if builder else ''}


def model_artifact_dir(path: str, staging_dir: str) -> str:
  """A folder holding Format-Serving/ for the SavedModel at `path`: `path` itself when it is a Model artifact
  (a Trainer output), its parent when it is Format-Serving, else (a plain local SavedModel, e.g. a pushed
  one) a folder under staging_dir whose Format-Serving links to it. ValueError when no SavedModel is there.
  A cloud path (gs://...) is taken as a Model artifact folder unchecked: checking it needs credentials."""
  if '://' in path:
    return path.rstrip('/')
  if tf.io.gfile.exists(os.path.join(path, SERVING_DIR, 'saved_model.pb')):
    return path
  if not tf.io.gfile.exists(os.path.join(path, 'saved_model.pb')):
    raise ValueError(f'no SavedModel at {path} (no saved_model.pb, nor {SERVING_DIR}/saved_model.pb)')
  if os.path.basename(path.rstrip('/')) == SERVING_DIR:
    return os.path.dirname(path.rstrip('/'))
  path = os.path.abspath(path)
  staged = os.path.join(staging_dir, hashlib.sha256(path.encode()).hexdigest()[:12])
  os.makedirs(staged, exist_ok=True)
  link = os.path.join(staged, SERVING_DIR)
  if os.path.islink(link) and os.readlink(link) != path:
    os.remove(link)
  if not os.path.islink(link):
    os.symlink(path, link)
  return staged


def generated_input_name(rows: int, seed: int) -> str:
  """customers-<rows>-seed<seed>-<generator hash>.csv: a change to the generator is a new file, never a stale one."""
  source = inspect.getsource(generate).encode('utf-8')
  return f'customers-{rows}-seed{seed}-{hashlib.sha256(source).hexdigest()[:8]}.csv'


def generate_input(path: str, rows: int, seed: int) -> str:
  """The default input: `rows` generated CLV customers (pipelines/batch_inference/generate.py), written once."""
  if not os.path.exists(path):
    generate.write_csv(path + '.tmp', rows, seed)
    os.replace(path + '.tmp', path)
  return path


def _local_header(pattern: str) -> List[str]:
  files = sorted(glob.glob(pattern))
  if not files or input_format(pattern) == 'tfrecord':
    return []
  if input_format(pattern) == 'csv':
    return csv_lines.csv_header(files[0])
  row = json_line_to_row(csv_lines.first_line(files[0]).encode('utf-8'))
  return [] if csv_lines.REJECTED_REASON in row else list(row)


def _has_rows(pattern: str, encoding: str) -> bool:
  """Whether a local CSV or JSONL input has a record after its header (a non-blank line, for JSONL) in some
  file; TFRecord input is not looked at (True)."""
  kind = input_format(pattern)
  for path in sorted(glob.glob(pattern)):
    if kind == 'tfrecord':
      return True
    if kind == 'csv' and next(csv_lines.file_records(path, encoding), None) is not None:
      return True
    if kind == 'jsonl':
      with csv_lines.open_binary(path) as stream:
        if any(line.strip() for line in stream):
          return True
  return False


def prepare(args: Any, settings: Dict[str, Any], run_use_case: Callable[[str], None],
            required_columns: Callable[[str], Sequence[str]]) -> Tuple[str, Dict[str, Any]]:
  """(data URI, settings) from the CLI flags: --model or --from (default: clv's latest pushed model, running
  clv first when it pushed none), --rows, --data (default: the generated input). Raises ValueError with one
  line for anything missing; `run_use_case(name)` runs another use case's pipeline into the same --output and
  `required_columns(name)` gives a use case's input columns."""
  settings = dict(settings)
  root = os.path.abspath(args.output) if args.command == 'run' else None
  if args.model and args.from_use_case:
    raise ValueError('give --model or --from, not both')
  if args.rows is not None:
    settings['rows'] = args.rows
  if args.model:
    staging = os.path.join(root or '.', 'batch_inference', 'models')
    settings.update(model=model_artifact_dir(args.model, staging), source_use_case='')
    if not settings['key_column']:
      raise ValueError('--model needs --set key_column=NAME (the input column carried to the output)')
  elif not settings['model']:
    source = args.from_use_case or settings['source_use_case']
    if root is None:
      raise ValueError('compile needs --model gs://.../<Trainer model folder> (--from reads local runs)')
    metadata = os.path.join(root, source, 'metadata.sqlite')
    found = latest_pushed_model(metadata)
    if found is None and not args.from_use_case and not args.model:
      run_use_case(source)
      found = latest_pushed_model(metadata)
    if found is None:
      raise ValueError(f'no pushed {source} model in {metadata}: run `python -m pipelines run {source} '
                       f'--output {args.output}` first (a model is pushed only when blessed)')
    settings.update(model=found['model'], source_use_case=source, key_column=settings['key_column'] or
                    found['key_column'], build_fn=settings['build_fn'] or found['build_fn'],
                    build_params=settings['build_params'] or found['build_params'])
  if args.runner != 'local' and '://' not in settings['model']:
    raise ValueError(f'--runner {args.runner} cannot read the local model {settings["model"]}: use a gs:// model')

  data = args.data
  if not data:
    if settings['source_use_case'] != 'clv' or args.runner != 'local':
      raise ValueError('batch_inference needs --data (files or bq://...) unless it scores the generated CLV input')
    data = generate_input(os.path.join(root, 'batch_inference', 'input',
                                       generated_input_name(settings['rows'], settings['seed'])),
                          settings['rows'], settings['seed'])
  if '://' not in data:
    data = os.path.abspath(data)
    if not glob.glob(data):
      raise ValueError(f'no input file matches {data}')
    if not _has_rows(data, settings['encoding']):
      raise ValueError(f'{data} has no rows to score (every file is empty or only a header)')
  if settings['input_kind'] == 'auto':
    required = required_columns(settings['source_use_case']) if settings['source_use_case'] else None
    header = _local_header(data) if '://' not in data else []
    settings['input_kind'] = 'raw' if required and set(required) <= set(header) else 'examples'
  if settings['input_kind'] == 'raw' and not (settings['build_fn'] and settings['build_params']):
    raise ValueError('raw input needs the source use case\'s build_fn and build_params (--from finds them)')
  if settings['input_kind'] == 'raw' and not settings['source_columns']:
    settings['source_columns'] = ','.join(required_columns(settings['source_use_case']))
  if not settings['key_column']:
    raise ValueError('no key column: --set key_column=NAME')
  return data, settings
