"""BigQuery input: `bq://project.dataset.table` URIs and the SQL that reads a use case's columns.

Every identifier is checked against BigQuery's naming rules (kept to their ASCII subset) before it is put
into SQL, and is then back-quoted; anything else is refused with a UsageError. No value from the user is
ever spliced into SQL unchecked.
"""
import dataclasses
import re
from typing import Mapping, Optional, Sequence

BQ_SCHEME = 'bq://'
# Project ids: 6-30 characters, lower-case letters, digits and hyphens, starting with a letter and not
# ending with a hyphen (domain-scoped projects such as example.com:p are not accepted).
_PROJECT = re.compile(r'[a-z][a-z0-9-]{4,28}[a-z0-9]')
_DATASET = re.compile(r'[A-Za-z0-9_]{1,1024}')
_TABLE = re.compile(r'[A-Za-z0-9_-]{1,1024}')
_COLUMN = re.compile(r'[A-Za-z_][A-Za-z0-9_]{0,299}')


class InvalidIdentifier(ValueError):
  """A project, dataset, table or column name that may not be put into SQL."""


def is_bigquery_uri(data_uri: str) -> bool:
  """True for `bq://...` data URIs."""
  return data_uri.startswith(BQ_SCHEME)


def _checked(kind: str, value: str, pattern: 're.Pattern[str]', rule: str) -> str:
  if not pattern.fullmatch(value):
    raise InvalidIdentifier(f'invalid BigQuery {kind} {value!r}: {rule}')
  return value


def column(name: str) -> str:
  """`name` back-quoted for SQL, or InvalidIdentifier unless it is a plain BigQuery column name."""
  return '`' + _checked('column name', name, _COLUMN, 'letters, digits and underscores, not starting '
                        'with a digit, at most 300 characters') + '`'


@dataclasses.dataclass(frozen=True)
class BigQueryTable:
  """A validated table reference."""
  project: str
  dataset: str
  table: str

  @classmethod
  def parse(cls, data_uri: str) -> 'BigQueryTable':
    """Parses and validates `bq://project.dataset.table`."""
    if not is_bigquery_uri(data_uri):
      raise InvalidIdentifier(f'not a BigQuery URI: {data_uri!r}; expected bq://project.dataset.table')
    parts = data_uri[len(BQ_SCHEME):].split('.')
    if len(parts) != 3:
      raise InvalidIdentifier(f'invalid BigQuery table {data_uri!r}: expected bq://project.dataset.table')
    project, dataset, table = parts
    return cls(
        project=_checked('project', project, _PROJECT, '6-30 lower-case letters, digits or hyphens, starting '
                         'with a letter'),
        dataset=_checked('dataset', dataset, _DATASET, 'letters, digits and underscores only'),
        table=_checked('table', table, _TABLE, 'letters, digits, underscores and hyphens only'))

  @property
  def sql_name(self) -> str:
    """The back-quoted `project.dataset.table` for a FROM clause."""
    return f'`{self.project}.{self.dataset}.{self.table}`'


def parse_column_map(text: str) -> Mapping[str, str]:
  """Parses the `bq_column_map` setting, 'our_name:their_name,...', validating both sides."""
  mapping = {}
  for pair in filter(None, (p.strip() for p in text.split(','))):
    ours, sep, theirs = pair.partition(':')
    if not sep:
      raise InvalidIdentifier(f'bq_column_map entry {pair!r} is not our_column:their_column')
    column(ours.strip())
    column(theirs.strip())
    mapping[ours.strip()] = theirs.strip()
  return mapping


def select_as_strings(table: BigQueryTable, columns: Sequence[str],
                      column_map: Optional[Mapping[str, str]] = None) -> str:
  """SELECT of `columns` (renamed from `column_map`'s source names) cast to STRING.

  BigQueryExampleGen accepts only INTEGER, FLOAT, BOOLEAN and STRING columns; reading every column as a
  string lets DATE, TIMESTAMP and NUMERIC columns through and gives the module's parser the same text a CSV
  file would, so a bad value is counted and kept in the rejected rows rather than failing the query.
  """
  column_map = column_map or {}
  unknown = sorted(set(column_map) - set(columns))
  if unknown:
    raise InvalidIdentifier(f'bq_column_map names unknown column(s) {", ".join(unknown)}; '
                            f'the columns are {", ".join(columns)}')
  selected = ',\n  '.join(f'CAST({column(column_map.get(name, name))} AS STRING) AS {column(name)}'
                          for name in columns)
  return f'SELECT\n  {selected}\nFROM {table.sql_name}'
