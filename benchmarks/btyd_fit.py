"""Fit time of the BTYD models (pipelines.clv.btyd) by number of customers.

Data sets, in weeks with the calibration period ending 1997-09-30 like Fader, Hardie & Lee (2005):
- sample: the CDNOW 1/10 sample (2,357 customers), features by modules.clv from data/clv/transactions_sample.csv;
- full: the CDNOW master file (23,570 customers), data/clv/transactions.csv;
- synthetic: 1,000,000 customers drawn from the BG/NBD and Gamma-Gamma processes with the published CDNOW
  parameters (seeded), so the fits can also be checked against the true parameters.
Timed: fit_btyd('bgnbd') = BG/NBD + Gamma-Gamma, and fit_btyd('pnbd') = Pareto/NBD + Gamma-Gamma (the
Gamma-Gamma part takes well under a second up to 23,570 customers; see the bgnbd line for its share).

Run: TF_USE_LEGACY_KERAS=1 .venv/bin/python benchmarks/btyd_fit.py [--customers 1000000] [--seed 0]
     [--pnbd-max-customers N]
"""
import argparse
import csv
import datetime
import os
import time
import warnings
from typing import Dict, List

import numpy as np
import pandas as pd

from modules import clv
from pipelines.clv import btyd

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, 'data', 'clv')
CALIBRATION_END = datetime.date(1997, 9, 30)
TRUE_BGNBD = {'r': 0.243, 'alpha': 4.414, 'a': 0.793, 'b': 2.426}  # weeks
TRUE_GAMMA_GAMMA = {'p': 6.25, 'q': 3.74, 'v': 15.44}
ACQUISITION_WEEKS = (27.0, 39.0)  # ages at the end of calibration: first purchases in the first 12 weeks


def csv_summary(file_name: str) -> pd.DataFrame:
  """Per-customer summary (weeks) of a transactions CSV, by our own feature code."""
  purchases: Dict[str, List[clv.Purchase]] = {}
  with open(os.path.join(DATA_DIR, file_name)) as f:
    for row in csv.DictReader(f):
      parsed, reason = clv.parse_transaction(row)
      if reason is None:
        customer_id, purchase = parsed
        purchases.setdefault(customer_id, []).append(purchase)
  features = {c: clv.customer_features(p, CALIBRATION_END) for c, p in purchases.items()}
  days = pd.DataFrame.from_dict({c: f for c, f in features.items() if f is not None}, orient='index')
  return btyd.to_time_unit(days, 'weeks')


def synthetic_summary(n: int, seed: int) -> pd.DataFrame:
  """n customers from the BG/NBD process (TRUE_BGNBD, weeks) and Gamma-Gamma spend (TRUE_GAMMA_GAMMA).

  The same process as lifetimes.generate_data.beta_geometric_nbd_model, vectorized (lifetimes loops in
  Python, about 200 s per million customers): purchase rate lambda ~ Gamma(r, 1/alpha), dropout probability
  p ~ Beta(a, b) after each repeat purchase, so frequency = min(Poisson(lambda T), Geometric(p)); given
  N purchases in (0, T], the x-th one falls at T * Beta(x, N - x + 1) (uniform order statistics).
  Mean spend of x purchases: Gamma(p x, rate x nu) / x with nu ~ Gamma(q, rate v).
  """
  rng = np.random.default_rng(seed)
  r, alpha, a, b = (TRUE_BGNBD[k] for k in ('r', 'alpha', 'a', 'b'))
  T = rng.uniform(*ACQUISITION_WEEKS, n)
  purchases_in_T = rng.poisson(rng.gamma(r, 1 / alpha, n) * T)
  frequency = np.minimum(purchases_in_T, rng.geometric(rng.beta(a, b, n)))
  repeat = frequency > 0
  recency = np.zeros(n)
  recency[repeat] = T[repeat] * rng.beta(frequency[repeat], purchases_in_T[repeat] - frequency[repeat] + 1)
  p, q, v = (TRUE_GAMMA_GAMMA[k] for k in ('p', 'q', 'v'))
  nu = rng.gamma(q, 1 / v, n)
  monetary_value = np.zeros(n)
  monetary_value[repeat] = rng.gamma(p * frequency[repeat], 1 / (frequency[repeat] * nu[repeat]))
  return pd.DataFrame({'frequency': frequency, 'recency': recency, 'T': T, 'monetary_value': monetary_value})


def _format(params: Dict[str, float]) -> str:
  return ', '.join(f'{k}={v:.4g}' for k, v in params.items())


def time_fit(summary: pd.DataFrame, model: str) -> None:
  """Fits and prints the time, the parameters and the log-likelihoods."""
  start = time.perf_counter()
  fitted = btyd.fit_btyd(summary, model, 0.0, 'weeks')
  seconds = time.perf_counter() - start
  params = fitted.params()
  purchase, spend = params['purchase_model'], params['spend_model']
  print(f'  {model} + gamma_gamma: {seconds:8.2f} s | {model}: {_format(purchase["params"])} '
        f'(LL {purchase["log_likelihood"]:.1f}) | gamma_gamma ({spend["n_customers"]} repeat customers): '
        f'{_format(spend["params"])}', flush=True)


def bench(name: str, summary: pd.DataFrame, pnbd_max_customers: int, seed: int) -> None:
  """Times both fits on one data set (P/NBD on a subsample above pnbd_max_customers)."""
  print(f'{name}: {len(summary)} customers, {int((summary["frequency"] > 0).sum())} repeat customers', flush=True)
  time_fit(summary, 'bgnbd')
  if 0 < pnbd_max_customers < len(summary):
    print(f'  note: P/NBD skipped on all {len(summary)} customers (Nelder-Mead on the full likelihood, time '
          f'grows linearly with the customers); timed on a random {pnbd_max_customers} instead', flush=True)
    summary = summary.sample(pnbd_max_customers, random_state=seed)
  time_fit(summary, 'pnbd')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--customers', type=int, default=1_000_000, help='synthetic customers')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--pnbd-max-customers', type=int, default=0,
                      help='fit P/NBD on a subsample of this size above it (0: no limit)')
  args = parser.parse_args()
  warnings.simplefilter('ignore', RuntimeWarning)  # lifetimes' optimizers step through overflowing regions
  for name, file_name in (('sample', 'transactions_sample.csv'), ('full', 'transactions.csv')):
    start = time.perf_counter()
    summary = csv_summary(file_name)
    print(f'[{file_name}: features in {time.perf_counter() - start:.2f} s]')
    bench(name, summary, args.pnbd_max_customers, args.seed)
  start = time.perf_counter()
  summary = synthetic_summary(args.customers, args.seed)
  print(f'[synthetic: generated in {time.perf_counter() - start:.2f} s; true BG/NBD {_format(TRUE_BGNBD)}, '
        f'Gamma-Gamma {_format(TRUE_GAMMA_GAMMA)}]')
  bench('synthetic', summary, args.pnbd_max_customers, args.seed)


if __name__ == '__main__':
  main()
