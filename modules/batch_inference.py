"""Batch inference module: keyed input rows -> the examples a model's serving signature parses.

`build_examples` checks every input row against what the model's serving signature parses (read from the
SavedModel: the keys, dtypes and defaults of its `ParseExampleV2` op), converts values to those dtypes (CSV and
BigQuery give strings), and sets aside, with their reason, rows that cannot be scored: a missing key, a missing
or unparsable value (NaN, infinity and numbers beyond float32 included), a duplicate key (when keys must be
unique); lines the reader could not read never reach it (the ExamplesBuilder sets them aside). The key column is
carried untouched. The one split it writes, `score`, is what BulkInferrer scores.
"""
import dataclasses
import itertools
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import apache_beam as beam
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf
from tfx_bsl.coders import example_coder

from pipelines import arrow_io, beam_io
from pipelines.components.examples_builder import BuiltExamples, batched
from pipelines.parsing import FLOAT32_MAX, parse_finite_float

SCORE_SPLIT = 'score'
# The reason the JSONL reader (pipelines/batch_inference/pipeline.py) gives a line that is no flat JSON object;
# the ExamplesBuilder sets such lines aside (with the CSV reader's bad_encoding and wrong_field_count) before
# build_examples.
MALFORMED_JSON = 'malformed_line'
REASONS = ('missing_key', 'missing_value', 'unparsable_value', 'duplicate_key')
INT64_LIMIT = 2.0 ** 63  # an int64 feature holds less
_KINDS = {tf.float32: 'float', tf.float64: 'float', tf.int64: 'int', tf.int32: 'int', tf.string: 'bytes'}


@dataclasses.dataclass(frozen=True)
class FeatureInput:
  """One feature the serving signature parses: its value kind ('int', 'float', 'bytes') and whether the
  parser has no default for it (a row without it cannot be scored)."""
  kind: str
  required: bool


def _const_value(node_def) -> Any:
  return tf.make_ndarray(node_def.attr['value'].tensor)


def _parse_specs(graph_def: tf.compat.v1.GraphDef) -> Dict[str, FeatureInput]:
  """Features of every ParseExampleV2 op in a GraphDef and its function library."""
  bodies = [(graph_def.node, None)] + [(f.node_def, f) for f in graph_def.library.function]
  features: Dict[str, FeatureInput] = {}
  for nodes, _ in bodies:
    by_name = {node.name: node for node in nodes}
    for node in nodes:
      if node.op != 'ParseExampleV2':
        continue
      inputs = [by_name.get(name.lstrip('^').split(':')[0]) for name in node.input]
      # inputs: serialized, names, sparse_keys, dense_keys, ragged_keys, dense_defaults...
      sparse_keys = _const_value(inputs[2]).reshape(-1) if inputs[2] is not None else []
      dense_keys = _const_value(inputs[3]).reshape(-1) if inputs[3] is not None else []
      ragged_keys = _const_value(inputs[4]).reshape(-1) if inputs[4] is not None else []
      dense_types = node.attr['Tdense'].list.type
      for index, key in enumerate(dense_keys):
        default = inputs[5 + index]
        # an empty Const default means none (required); a default is otherwise a (reshaped) value
        required = default is None or (default.op == 'Const' and _const_value(default).size == 0)
        features[key.decode()] = FeatureInput(_KINDS[tf.dtypes.as_dtype(dense_types[index])], required)
      for keys, types in ((sparse_keys, node.attr['sparse_types'].list.type),
                          (ragged_keys, node.attr['ragged_value_types'].list.type)):
        for key, dtype in zip(keys, types):
          features[key.decode()] = FeatureInput(_KINDS[tf.dtypes.as_dtype(dtype)], False)
  return features


def model_input_spec(model_dir: str, signature: str = 'serving_default') -> Dict[str, FeatureInput]:
  """Feature name -> FeatureInput for what `signature` of the SavedModel in `model_dir` parses from its
  serialized tf.Examples; ValueError when the signature parses nothing we can read (no ParseExampleV2)."""
  model = tf.saved_model.load(model_dir)
  if signature not in model.signatures:
    raise ValueError(f'{model_dir} has no signature {signature!r}; it has {sorted(model.signatures)}')
  features = _parse_specs(model.signatures[signature].graph.as_graph_def())
  if not features:
    raise ValueError(f'signature {signature!r} of {model_dir} parses no tf.Example features '
                     '(no ParseExampleV2 op found)')
  return features


def convert(value: Any, kind: str) -> Any:
  """`value` (a string from CSV or BigQuery, a JSON number, or a list) as the parser's kind: int, float or
  str; ValueError when it is not one (e.g. 'abc' or 2.5 for an int; NaN, infinity or beyond float32 for a
  float; beyond int64 for an int)."""
  if isinstance(value, list):
    return [convert(v, kind) for v in value]
  if kind == 'bytes':
    return value if isinstance(value, (str, bytes)) else str(value)
  if isinstance(value, bool):
    raise ValueError(f'{value!r} is a boolean')
  number = parse_finite_float(value)
  if kind == 'float':
    return number
  if not number.is_integer() or abs(number) >= INT64_LIMIT:
    raise ValueError(f'{value!r} is not an int64')
  return int(number)


def _is_missing(value: Any) -> bool:
  return value is None or (isinstance(value, str) and value.strip() == '') or value == []


def check_row(row: Dict[str, Any], key_column: str, spec: Dict[str, FeatureInput]
              ) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
  """(the example row: key untouched + the parsed features converted, None) or (None, reason)."""
  if _is_missing(row.get(key_column)):
    return None, 'missing_key'
  example = {key_column: row[key_column]}  # untouched, unless the model parses it too (then converted below)
  for name, feature in spec.items():
    value = row.get(name)
    if _is_missing(value):
      if feature.required:
        return None, 'missing_value'
      continue
    try:
      example[name] = convert(value, feature.kind)
    except (TypeError, ValueError):
      return None, 'unparsable_value'
  return example, None


def _key_text(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------------------
# Batches: raw rows (serialized tf.Examples or RecordBatches) -> (keys, serialized model examples) + rejected
# rows, columnar
# ---------------------------------------------------------------------------------------------------

Checked = Tuple[pa.Array, List[bytes], List[Dict[str, Any]]]  # (key texts (large_string), serialized examples,
                                                               # rejected)
Batch = Union[Sequence[bytes], pa.RecordBatch]  # serialized raw tf.Examples, or raw rows read from Parquet
_DECODER = example_coder.ExamplesToRecordBatchDecoder()
_ENCODER = example_coder.RecordBatchToExamplesEncoder()


class ValidRows(NamedTuple):
  """A batch's valid rows, not yet serialized: the key text of each, in order, and the rows as RecordBatches
  of their model features for tfx_bsl's encoder (the columnar check) or as serialized examples (the row check).
  Beam carries these between the check and the duplicate-key filter: fewer bytes than the examples, which
  repeat every feature name per row."""
  keys: pa.Array
  groups: List[pa.RecordBatch]
  serialized: List[bytes]

  def examples(self, keep: Optional[np.ndarray] = None) -> List[bytes]:
    """The serialized examples of the rows (of those where `keep` is true), in the keys' order."""
    if not self.groups:
      return list(self.serialized if keep is None else itertools.compress(self.serialized, keep))
    out: List[bytes] = []
    start = 0
    for group in self.groups:
      part = None if keep is None else keep[start:start + group.num_rows]
      start += group.num_rows
      if part is not None and not part.all():
        group = group.filter(pa.array(part))
      if group.num_rows:
        out += _ENCODER.encode(group)
    return out


class _NotColumnar(Exception):
  """A batch the columnar check does not take (a list of several values, a number where text is parsed):
  it is checked row by row instead, with the same result."""


def _rows(batch: Batch) -> List[Dict[str, Any]]:
  """The batch's rows as dicts (beam_io.serialized_example_to_row, arrow_io.batch_rows: the same dicts)."""
  if isinstance(batch, pa.RecordBatch):
    return arrow_io.batch_rows(batch)
  return [beam_io.serialized_example_to_row(record) for record in batch]


def _check_rows(batch: Batch, key_column: str, spec: Dict[str, FeatureInput]
                ) -> Tuple[ValidRows, List[Dict[str, Any]]]:
  """check_row of each row of the batch; the valid ones serialized."""
  keys, valid, rejected = [], [], []
  for row in _rows(batch):
    example, reason = check_row(row, key_column, spec)
    if reason:
      rejected.append({'reason': reason, 'record': row})
    else:
      keys.append(_key_text(example[key_column]))
      valid.append(example)
  return ValidRows(pa.array(keys, type=pa.large_string()), [], beam_io.rows_to_serialized_examples(valid)), rejected


def _is_binary(values: pa.Array) -> bool:
  return pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)


def _trimmed_text(values: pa.Array) -> pa.Array:
  """Binary values as text without surrounding whitespace (str.strip's rule); _NotColumnar when one is not
  UTF-8 (the row path decodes it with replacement characters)."""
  try:
    return pc.utf8_trim_whitespace(values.cast(pa.large_string()))
  except pa.ArrowInvalid as e:
    raise _NotColumnar(str(e)) from None


Column = Tuple[np.ndarray, pa.Array]  # (number of values in each row, the values of all rows in row order)


class BytesParser:
  """Features of serialized tf.Examples as Columns, parsed by tf.io.parse_example in a TF1 session when every
  one is a list of bytes (as the CSV reader writes them), only the features named: a fifth of the time of
  tfx_bsl's decoder (4 against 19 us a row of CLV's 13 features and key on our 2-core machine)."""

  def __init__(self, names: Sequence[str]):
    graph = tf.compat.v1.Graph()
    with graph.as_default():
      self._input = tf.compat.v1.placeholder(tf.string, [None])
      parsed = tf.io.parse_example(self._input, {name: tf.io.VarLenFeature(tf.string) for name in set(names)})
      self._fetches = {name: (tensor.indices[:, 0], tensor.values) for name, tensor in parsed.items()}
    self._session = tf.compat.v1.Session(graph=graph)

  def __call__(self, serialized: Sequence[bytes]) -> Optional[Dict[str, Column]]:
    """{name: Column}; None when a feature is not a list of bytes (or a record is not a tf.Example)."""
    try:
      fetched = self._session.run(self._fetches, {self._input: serialized})
    except tf.errors.InvalidArgumentError:
      return None
    return {name: (np.bincount(rows, minlength=len(serialized)), pa.array(values, type=pa.large_binary()))
            for name, (rows, values) in fetched.items()}


def _arrow_columns(batch: pa.RecordBatch, names: Sequence[str]) -> Dict[str, Column]:
  """{name: Column} of each named column of the batch with a value in some row (a null is no value)."""
  columns = {}
  for name in set(names) & set(batch.schema.names):
    column = batch.column(batch.schema.get_field_index(name))
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
      lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
      columns[name] = (lengths, column.flatten())
    else:
      columns[name] = (column.is_valid().to_numpy(zero_copy_only=False).astype(np.int64), column.drop_null())
  return {name: column for name, column in columns.items() if column[0].any()}


def _decoded_columns(batch: Batch, names: Sequence[str], parser: Optional[BytesParser]) -> Dict[str, Column]:
  """{name: Column} of each named feature that the batch has: a RecordBatch's columns as they are; serialized
  examples by `parser` when it takes the batch, else by tfx_bsl's decoder (any kinds)."""
  if isinstance(batch, pa.RecordBatch):
    return _arrow_columns(batch, names)
  columns = parser(batch) if parser is not None else None
  if columns is not None:
    return {name: column for name, column in columns.items() if column[0].any()}
  return _arrow_columns(_DECODER.DecodeBatch(list(batch)), names)


def _present_values(rows: int, column: Optional[Column]) -> Tuple[np.ndarray, Optional[pa.Array]]:
  """(whether each row has a value, not blank text, as _is_missing says; those values in row order) of a
  feature of at most one value a row; _NotColumnar for one with more."""
  present = np.zeros(rows, dtype=bool)
  if column is None:
    return present, None
  lengths, values = column
  if (lengths > 1).any():
    raise _NotColumnar('several values')
  if _is_binary(values):
    nonblank = pc.not_equal(pc.binary_length(_trimmed_text(values)), 0)
    values = values.filter(nonblank)
    nonblank = nonblank.to_numpy(zero_copy_only=False)
  else:
    nonblank = np.ones(len(values), dtype=bool)
  present[np.flatnonzero(lengths == 1)] = nonblank
  return present, values


def _parsed_texts(values: pa.Array) -> np.ndarray:
  """float64 of each binary value by Python's float rules, NaN where it is no number. Arrow parses as Python
  does but refuses a few forms Python takes ('1_0', '+.5'): then pandas, then Python for what it refuses."""
  try:
    return pc.cast(_trimmed_text(values), pa.float64()).to_numpy(zero_copy_only=False)
  except pa.ArrowInvalid:
    pass
  texts = values.to_pylist()
  numbers = pd.to_numeric(pd.Series(texts, dtype=object), errors='coerce').to_numpy(dtype=np.float64)
  for index in np.flatnonzero(np.isnan(numbers)):
    try:
      numbers[index] = parse_finite_float(texts[index])
    except ValueError:
      pass
  return numbers


def _numbers(values: pa.Array, kind: str) -> Tuple[np.ndarray, np.ndarray]:
  """(float64 values, whether each parses as `kind` by convert's rules) of text or numeric values."""
  numbers = (_parsed_texts(values) if _is_binary(values)
             else values.to_numpy(zero_copy_only=False).astype(np.float64))
  with np.errstate(invalid='ignore'):
    ok = np.isfinite(numbers) & (np.abs(numbers) <= FLOAT32_MAX)
    if kind == 'int':
      ok &= (np.floor(numbers) == numbers) & (np.abs(numbers) < INT64_LIMIT)
  return numbers, ok


def _one_value_lists(values: pa.Array) -> pa.Array:
  return pa.LargeListArray.from_arrays(pa.array(np.arange(len(values) + 1), type=pa.int64()), values)


def _check_columnar(batch: Batch, key_column: str, spec: Dict[str, FeatureInput],
                    parser: Optional[BytesParser] = None) -> Tuple[ValidRows, List[Dict[str, Any]]]:
  """_check_rows of a batch, decoded (by `parser` where it takes the batch), checked and converted column by
  column (tfx_bsl's C++ coders, NumPy and pandas); rows are decoded one by one only when rejected. _NotColumnar
  for a batch it does not take."""
  decoded = _decoded_columns(batch, [key_column, *spec], parser)
  rows = len(batch)
  reasons = np.full(rows, '', dtype=object)
  present, keys = _present_values(rows, decoded.get(key_column))
  reasons[~present] = 'missing_key'
  columns: Dict[str, Tuple[np.ndarray, Optional[pa.Array]]] = {key_column: (present, keys)}
  for name, feature in spec.items():
    present, values = _present_values(rows, decoded.get(name))
    if values is not None and feature.kind != 'bytes':
      numbers, ok = _numbers(values, feature.kind)
      bad = np.zeros(rows, dtype=bool)
      bad[np.flatnonzero(present)] = ~ok
      reasons[bad & (reasons == '')] = 'unparsable_value'
      numbers = np.where(ok, numbers, 0.0)  # a rejected row's value is never written
      values = pa.array(numbers.astype(np.float32 if feature.kind == 'float' else np.int64))
    elif values is not None and not _is_binary(values):
      raise _NotColumnar(name)  # convert() writes a number parsed as text as its text
    if feature.required:
      reasons[~present & (reasons == '')] = 'missing_value'
    columns[name] = (present, values)
  return _valid_groups(batch, reasons, columns, key_column)


def _valid_groups(batch: Batch, reasons: np.ndarray, columns: Dict[str, Tuple[np.ndarray, Optional[pa.Array]]],
                  key_column: str) -> Tuple[ValidRows, List[Dict[str, Any]]]:
  """(the valid rows, rejected) from checked columns: the rows without a reason, grouped by which optional
  features they have (tfx_bsl writes a missing value as a feature of no kind, which the model's parser
  refuses), a RecordBatch each."""
  valid = reasons == ''
  bad = np.flatnonzero(~valid)
  rejected = [{'reason': reasons[i], 'record': record}
              for i, record in zip(bad, _rows(batch.take(pa.array(bad)) if isinstance(batch, pa.RecordBatch)
                                               else [batch[i] for i in bad]))]
  # each column's values indexed by row (-1: none)
  positions = {}
  for name, (present, _) in columns.items():
    index = np.full(len(present), -1)
    index[present] = np.arange(int(present.sum()))
    positions[name] = index
  pattern = np.zeros(len(valid), dtype=np.int64)
  for bit, (present, _) in enumerate(columns.values()):
    pattern |= present.astype(np.int64) << bit
  keys: List[pa.Array] = [pa.array([], type=pa.large_string())]
  groups: List[pa.RecordBatch] = []
  for value in np.unique(pattern[valid]):
    rows = np.flatnonzero(valid & (pattern == value))
    names = [name for name, (present, _) in columns.items() if present[rows[0]]]
    arrays = [_one_value_lists(columns[name][1].take(pa.array(positions[name][rows]))) for name in names]
    groups.append(pa.RecordBatch.from_arrays(arrays, names))
    key_values = columns[key_column][1].take(pa.array(positions[key_column][rows]))
    keys.append(key_values.cast(pa.large_string()) if _is_binary(key_values)
                else pa.array([_key_text(v) for v in key_values.to_pylist()], type=pa.large_string()))
  return ValidRows(pa.concat_arrays(keys), groups, []), rejected


def check_batch_rows(batch: Batch, key_column: str, spec: Dict[str, FeatureInput],
                     parser: Optional[BytesParser] = None) -> Tuple[ValidRows, List[Dict[str, Any]]]:
  """check_batch's valid rows before they are serialized (ValidRows.examples), and the rejected rows."""
  if not len(batch):  # pylint: disable=g-explicit-length-test  (a RecordBatch has no truth value)
    return ValidRows(pa.array([], type=pa.large_string()), [], []), []
  try:
    return _check_columnar(batch, key_column, spec, parser)
  except (_NotColumnar, RuntimeError, pa.ArrowException):  # RuntimeError: kinds differ within a feature
    return _check_rows(batch, key_column, spec)


def check_batch(batch: Batch, key_column: str, spec: Dict[str, FeatureInput],
                parser: Optional[BytesParser] = None) -> Checked:
  """(key text of each valid row, its serialized example, rejected rows with their reason) of a batch of raw
  rows (serialized tf.Examples or a RecordBatch): what check_row gives row by row (the same examples, reasons and records), checked
  column by column where the batch allows it (parsed by `parser`, a BytesParser of the key and the spec's
  features, where it takes the batch)."""
  valid, rejected = check_batch_rows(batch, key_column, spec, parser)
  return valid.keys, valid.examples(), rejected


class _CheckBatches(beam.DoFn):
  """Loads the model's input spec (and builds its BytesParser) once per worker, then checks each batch
  (check_batch)."""

  def __init__(self, key_column: str, model_dir: str, signature: str):
    self._key_column = key_column
    self._model_dir = model_dir
    self._signature = signature
    self._spec: Optional[Dict[str, FeatureInput]] = None
    self._parser: Optional[BytesParser] = None

  def setup(self):
    self._spec = model_input_spec(self._model_dir, self._signature)
    self._parser = BytesParser([self._key_column, *self._spec])

  def process(self, batch: Batch):
    valid, rejected = check_batch_rows(batch, self._key_column, self._spec, self._parser)
    for record in rejected:
      yield beam.pvalue.TaggedOutput('rejected', record)
    if len(valid.keys):  # pylint: disable=g-explicit-length-test  (an Arrow array)
      yield valid


class _DuplicateKeys(beam.CombineFn):
  """The keys that occur more than once among batches of keys (Arrow arrays), counted by Arrow's value_counts
  over all of them: no Python step per key (the keys of one run must fit in a worker's memory: 1M keys of 7
  characters take 16 MB)."""

  def create_accumulator(self):
    return []

  def add_input(self, accumulator, keys):
    accumulator.append(keys)
    return accumulator

  def merge_accumulators(self, accumulators):
    return [keys for accumulator in accumulators for keys in accumulator]

  def extract_output(self, accumulator):
    if not accumulator:
      return pa.array([], type=pa.large_string())
    counts = pc.value_counts(pa.concat_arrays(accumulator))
    return counts.field('values').filter(pc.greater(counts.field('counts'), 1))


def _unique_only(valid: ValidRows, duplicates: pa.Array):
  """The serialized examples of keys that occur once; every row of a duplicated key rejected (none may be
  picked)."""
  if not len(duplicates):  # pylint: disable=g-explicit-length-test  (an Arrow array)
    yield valid.examples()
    return
  duplicated = pc.is_in(valid.keys, value_set=duplicates).to_numpy(zero_copy_only=False)
  kept = valid.examples(~duplicated)
  if kept:
    yield kept
  for example in valid.examples(duplicated):
    yield beam.pvalue.TaggedOutput('rejected', {'reason': 'duplicate_key',
                                                'record': beam_io.serialized_example_to_row(example)})


@batched
def build_examples(batches: beam.PCollection, params: Dict[str, Any]) -> BuiltExamples:
  """Batches of keyed raw rows (serialized tf.Examples, or RecordBatches from a Parquet payload) -> batches of
  `score` examples for the model, and rejected rows with their reason (REASONS).

  params: key_column, model_dir (a SavedModel folder), signature (its serving signature), unique_keys (reject
  every row of a key that occurs more than once: the keys are compared, not the rows grouped).
  """
  checked = batches | 'CheckBatches' >> beam.ParDo(
      _CheckBatches(params['key_column'], params['model_dir'], params['signature'])).with_outputs(
          'rejected', main='valid')
  if not params['unique_keys']:
    return BuiltExamples(splits={SCORE_SPLIT: checked.valid | 'Examples' >> beam.Map(lambda valid: valid.examples())},
                         rejected=checked.rejected)
  duplicates = (checked.valid
                | 'Keys' >> beam.Map(lambda valid: valid.keys)
                | 'DuplicateKeys' >> beam.CombineGlobally(_DuplicateKeys()))
  unique = checked.valid | 'UniqueOnly' >> beam.FlatMap(
      _unique_only, beam.pvalue.AsSingleton(duplicates)).with_outputs('rejected', main='valid')
  rejected = (checked.rejected, unique.rejected) | 'FlattenRejected' >> beam.Flatten()
  return BuiltExamples(splits={SCORE_SPLIT: unique.valid}, rejected=rejected)
