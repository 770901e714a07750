"""The raw-data ExampleGen every use case starts with: a CSV file (local or gs://, maybe gzipped) or a BigQuery
table. CSV files are read by pipelines.csv_lines (never failing on a bad line), not by CsvExampleGen.

Either way the output Examples have one split, `raw`, with one example per input row; the use case's
ExamplesBuilder turns them into model examples. Only this component differs between a laptop run on a
bundled file and a cloud run on a BigQuery table.
"""
import os
from typing import Callable, Mapping, Optional, Sequence, Type

from tfx import v1 as tfx
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.base.base_component import BaseComponent
from tfx.proto import example_gen_pb2

from pipelines import bigquery, csv_lines

RAW_SPLIT = 'raw'
# (validated table, column map) -> SQL; the default reads `columns` as strings.
QueryBuilder = Callable[[bigquery.BigQueryTable, Mapping[str, str]], str]


def is_local(data_uri: str) -> bool:
  """True for a path on this machine (no `scheme://`)."""
  return '://' not in data_uri


def raw_example_gen(data_uri: str, columns: Sequence[str], column_map: str = '',
                    query_builder: Optional[QueryBuilder] = None,
                    file_executor: Optional[Type[BaseExampleGenExecutor]] = None,
                    encoding: str = csv_lines.DEFAULT_ENCODING) -> BaseComponent:
  """An ExampleGen reading one CSV file with csv_lines (id `CsvExampleGen`, as before it replaced TFX's), or BigQueryExampleGen for `bq://project.dataset.table`.

  column_map: 'our_column:their_column,...' for a BigQuery table whose columns are named differently.
  query_builder: the use case's own SQL (e.g. an aggregation); by default `columns` are selected as strings.
  file_executor: an ExampleGen executor of the use case's own that reads the file instead of
    csv_lines.CsvRowsExecutor (the component is `<executor name without 'Executor'>ExampleGen`).
  encoding: of the file's text (utf-8, cp1252, latin-1, ...); the executor reads it with
    csv_lines.decode_reader_config, with `columns` as the columns every file must have.
  Raises bigquery.InvalidIdentifier for a table or column name that may not go into SQL.
  """
  # One input split and one output split: without an output_config ExampleGen would hash the rows into
  # train/eval, a split the use case's ExamplesBuilder makes itself.
  output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
      splits=[example_gen_pb2.SplitConfig.Split(name=RAW_SPLIT, hash_buckets=1)]))
  if bigquery.is_bigquery_uri(data_uri):
    table = bigquery.BigQueryTable.parse(data_uri)
    mapping = bigquery.parse_column_map(column_map)
    query = (query_builder(table, mapping) if query_builder
             else bigquery.select_as_strings(table, columns, mapping))
    return tfx.extensions.google_cloud_big_query.BigQueryExampleGen(
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=RAW_SPLIT, pattern=query)]),
        output_config=output_config)
  path = os.path.abspath(data_uri) if is_local(data_uri) else data_uri
  input_config = example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=RAW_SPLIT, pattern=os.path.basename(path))])
  component_id = (file_executor.__name__.replace('Executor', '') + 'ExampleGen' if file_executor
                  else 'CsvExampleGen')
  return FileBasedExampleGen(
      input_base=os.path.dirname(path), input_config=input_config, output_config=output_config,
      custom_config=csv_lines.encode_reader_config(encoding, columns),
      custom_executor_spec=executor_spec.BeamExecutorSpec(file_executor or csv_lines.CsvRowsExecutor),
  ).with_id(component_id)
