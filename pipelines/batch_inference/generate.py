"""Seeded generator of keyed scoring input for the CLV model: one row per customer, or their transactions.

Each customer gets a CDNOW-like purchase history (first purchase between 1997-01-01 and 1997-03-25, as in
CDNOW's cohort; a Poisson number of repeat purchase days spread up to AS_OF; lognormal spend and small
quantities). The per-customer row holds the features `modules.clv.customer_features` computes from that
history as of AS_OF (the same code that made the CLV training data), keyed by a zero-padded `customer_id`
string, so keys such as '0000042' show whether they come back untouched.

AS_OF is CLV's default threshold_date, so the customers are as old as those the CLV model learned from (T
from 189 to 272 days, as in CLV's train split). As of CLV's predict_end they would be 273 days older than
any customer the model saw, and its DNN only extrapolates there: it predicted a mean of 358 per customer for
them, against a mean label of 31 on CLV's eval split.

    python -m pipelines.batch_inference.generate --rows 200000 --output /tmp/customers.csv [--seed 7]
    python -m pipelines.batch_inference.generate --rows 500 --output /tmp/tx.csv --transactions

The CLI's default batch_inference run writes its input with this generator into the run's output folder.
"""
import argparse
import csv
import datetime
import os
from typing import Dict, Iterator, List, Tuple

import numpy as np

from modules import clv

AS_OF = datetime.date(1997, 9, 30)  # CLV's default threshold_date (see the module docstring)
FIRST_DAY = datetime.date(1997, 1, 1)
FIRST_PURCHASE_DAYS = 84  # first purchases from FIRST_DAY to 1997-03-25, as in CDNOW
# Every feature modules.clv.customer_features computes (those a CLV example carries), in its order.
FEATURE_COLUMNS = list(clv.customer_features([(FIRST_DAY, 1.0, 1.0)], AS_OF))
CUSTOMER_COLUMNS = [clv.KEY] + FEATURE_COLUMNS
TRANSACTION_COLUMNS = [clv.KEY, 'date', 'quantity', 'amount']


def customer_id(index: int) -> str:
  """The key of the index-th customer: 7 zero-padded digits."""
  return f'{index:07d}'


def purchase_histories(rows: int, seed: int) -> Iterator[Tuple[str, List[clv.Purchase]]]:
  """(customer_id, purchases) for `rows` customers, the same for the same seed."""
  rng = np.random.default_rng(seed)
  span = (AS_OF - FIRST_DAY).days
  first = rng.integers(0, FIRST_PURCHASE_DAYS, size=rows)
  repeats = rng.poisson(rng.gamma(0.6, 3.0, size=rows))
  spend_level = rng.lognormal(3.0, 0.7, size=rows)
  for index in range(rows):
    days = [int(first[index])] + sorted(int(d) for d in rng.integers(first[index], span + 1, size=repeats[index]))
    amounts = np.round(spend_level[index] * rng.lognormal(0.0, 0.4, size=len(days)), 2)
    quantities = rng.integers(1, 4, size=len(days))
    yield customer_id(index), [(FIRST_DAY + datetime.timedelta(days=d), float(q), float(a))
                               for d, q, a in zip(days, quantities, amounts)]


def customer_rows(rows: int, seed: int) -> Iterator[Dict[str, object]]:
  """Per-customer feature rows as of AS_OF (what the CLV model's serving signature parses), keyed."""
  for key, purchases in purchase_histories(rows, seed):
    yield {clv.KEY: key, **clv.customer_features(purchases, AS_OF)}


def transaction_rows(rows: int, seed: int) -> Iterator[Dict[str, object]]:
  """The raw transactions of the same customers (CLV's input schema)."""
  for key, purchases in purchase_histories(rows, seed):
    for day, quantity, amount in purchases:
      yield {clv.KEY: key, 'date': day.isoformat(), 'quantity': int(quantity), 'amount': amount}


def write_csv(path: str, rows: int, seed: int, transactions: bool = False) -> str:
  """Writes the customers' feature rows (or their transactions) to `path`; returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  columns, generated = ((TRANSACTION_COLUMNS, transaction_rows(rows, seed)) if transactions
                        else (CUSTOMER_COLUMNS, customer_rows(rows, seed)))
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=columns, lineterminator='\n')
    writer.writeheader()
    writer.writerows(generated)
  return path


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rows', type=int, default=200_000, help='customers')
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument('--output', required=True)
  parser.add_argument('--transactions', action='store_true', help='write the raw transactions instead')
  args = parser.parse_args()
  print(write_csv(args.output, args.rows, args.seed, args.transactions))


if __name__ == '__main__':
  main()
