"""Writes the CDNOW transactions shipped inside the `lifetimes` package as our CSV schema.

Output columns: customer_id,date,quantity,amount (date as YYYY-MM-DD).
- transactions.csv: the CDNOW master file (23,570 customers, 69,659 transactions).
- transactions_sample.csv: the CDNOW 1/10 sample (2,357 customers) used by fast tests.

Run: python data/clv/make_cdnow.py   (reads only the installed package; nothing is downloaded)
"""
import csv
import os
from typing import Iterator, List

import lifetimes.datasets

_DATASETS = os.path.dirname(lifetimes.datasets.__file__)
_HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = ['customer_id', 'date', 'quantity', 'amount']


def _rows(file_name: str, id_field: int, date_field: int) -> Iterator[List[str]]:
  """Yields [customer_id, YYYY-MM-DD, quantity, amount] from a whitespace-separated CDNOW file."""
  with open(os.path.join(_DATASETS, file_name)) as f:
    for line in f:
      fields = line.split()
      if not fields or not fields[0].isdigit():
        continue  # header line of the master file
      day = fields[date_field]
      yield [str(int(fields[id_field])), f'{day[:4]}-{day[4:6]}-{day[6:]}',
             fields[date_field + 1], fields[date_field + 2]]


def write(file_name: str, rows: Iterator[List[str]]) -> int:
  """Writes rows under data/clv/ with the CSV header; returns the row count."""
  count = 0
  with open(os.path.join(_HERE, file_name), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(COLUMNS)
    for row in rows:
      writer.writerow(row)
      count += 1
  return count


if __name__ == '__main__':
  # Master: "customer_id date number_of_cds dollar_value"; sample: "id_master id_sample date cds dollars".
  print('transactions.csv', write('transactions.csv', _rows('CDNOW_master.txt', 0, 1)))
  print('transactions_sample.csv', write('transactions_sample.csv', _rows('CDNOW_sample.txt', 0, 2)))
