"""A second, independent invoice generator for the sales forecast: Iowa-liquor-like, for development and benchmarks.

  python -m pipelines.sales_forecast.second_generator OUT.csv [--seed N] [--items 120] [--years 4]

Written from a description, not from pipelines/sales_forecast/generate.py (only its column schema is shared):
about 120 items over four years in six categories; a catalogue that turns over (items launched during the
period, many of them short-lived, others discontinued); a long tail of sparse items sold a few times a month
by few stores; orders on weekdays with a Tuesday/Thursday delivery pattern; a December peak (a holiday build-up
from October) plus a July 4th bump for some categories; list-price changes a few times per item that move
demand (elastic, with a lag); store-level order cycles (each store orders every 1-3 weeks, in cases or loose
bottles); and about 1% bad rows of several kinds. Same seed, same bytes.
"""
import argparse
import csv
import datetime
from typing import List, Sequence

import numpy as np

COLUMNS = ['date', 'store_number', 'item_number', 'item_description', 'category_name', 'vendor_name', 'pack',
           'bottle_volume_ml', 'state_bottle_cost', 'state_bottle_retail', 'bottles_sold']
# category -> (share of items, December lift, July lift, typical shelf price)
CATEGORIES = {'Vodka': (0.25, 0.6, 0.2, 14.0), 'Whiskey': (0.2, 1.1, 0.0, 26.0), 'Rum': (0.15, 0.4, 0.35, 15.0),
              'Tequila': (0.12, 0.3, 0.45, 24.0), 'Liqueur': (0.15, 1.6, -0.1, 19.0), 'Gin': (0.13, 0.4, 0.25, 18.0)}
# Delivery days: Monday..Sunday.
WEEKDAY = np.array([0.8, 1.4, 0.9, 1.3, 0.6, 0.0, 0.0])
SIZES = [(50, 120), (200, 48), (375, 24), (750, 12), (1000, 12), (1750, 6)]  # (ml, bottles per case)
BAD_KINDS = ('too_few_fields', 'too_many_fields', 'blank_item', 'blank_bottles', 'bad_date', 'bad_number',
             'negative_bottles', 'zero_pack')


def _month_lift(month: np.ndarray, day: np.ndarray, december: float, july: float) -> np.ndarray:
  """Holiday build-up (October-December, strongest in the weeks before Christmas), a January hangover and a
  July 4th bump."""
  lift = np.ones(month.shape)
  lift += december * ((month == 12) * np.where(day <= 24, 1.0, 0.3) + (month == 11) * 0.45 + (month == 10) * 0.15)
  lift += july * ((month == 7) * np.where(day <= 4, 2.0, 0.6) + (month == 6) * 0.4)
  lift *= np.where(month == 1, 0.7, 1.0)
  return lift


def _price_path(rng: np.random.Generator, n_days: int, base_price: float) -> np.ndarray:
  """Daily shelf price: two to five list-price changes (up mostly, some temporary discounts)."""
  price = np.full(n_days, base_price)
  for _ in range(int(rng.integers(2, 6))):
    start = int(rng.integers(0, n_days))
    if rng.random() < 0.35:  # a discount for one to three months
      price[start:start + int(rng.integers(30, 92))] *= 0.8
    else:
      price[start:] *= 1.0 + float(rng.uniform(0.03, 0.15))
  return np.round(price, 2)


def _catalogue(rng: np.random.Generator, n_items: int, n_days: int) -> List[dict]:
  names = list(CATEGORIES)
  shares = np.array([CATEGORIES[n][0] for n in names])
  items = []
  for number in sorted(rng.choice(np.arange(100000, 999999), size=n_items, replace=False)):
    category = names[int(rng.choice(len(names), p=shares / shares.sum()))]
    size_ml, pack = SIZES[int(rng.choice(len(SIZES), p=[0.05, 0.1, 0.15, 0.4, 0.15, 0.15]))]
    life = rng.random()
    if life < 0.45:  # sold the whole period
      first, last = 0, n_days
    elif life < 0.7:  # launched during the period
      first, last = int(rng.integers(60, n_days - 90)), n_days
    elif life < 0.85:  # discontinued
      first, last = 0, int(rng.integers(180, n_days - 30))
    else:  # short-lived (a seasonal or limited edition): two to eight months
      first = int(rng.integers(0, n_days - 90))
      last = min(n_days, first + int(rng.integers(60, 240)))
    sparse = rng.random() < 0.35
    # Bottles per open day: a heavy tail between items; sparse items sell a few bottles a week.
    level = float(np.exp(rng.normal(-0.5, 0.6))) if sparse else float(np.exp(rng.normal(2.2, 1.1)))
    price = CATEGORIES[category][3] * (size_ml / 750) ** 0.8 * float(np.exp(rng.normal(0, 0.3)))
    items.append({'number': str(number), 'category': category, 'size': size_ml, 'pack': pack, 'level': level,
                  'sparse': sparse, 'first': first, 'last': last, 'elasticity': float(rng.uniform(0.8, 2.0)),
                  'drift': float(rng.normal(0, 0.25)), 'prices': _price_path(rng, n_days, price),
                  'vendor': f'Vendor {int(rng.integers(1, 15)):02d} Spirits',
                  'description': f'{category} {int(rng.integers(1, 400)):03d} {size_ml}ml'})
  return items


def _item_rows(rng: np.random.Generator, item: dict, days: Sequence[datetime.date], stores: np.ndarray,
               store_share: np.ndarray) -> List[List[str]]:
  n_days = len(days)
  month = np.array([d.month for d in days])
  day_of_month = np.array([d.day for d in days])
  weekday = WEEKDAY[[d.weekday() for d in days]]
  _, december, july, _ = CATEGORIES[item['category']]
  years = np.arange(n_days) / 365.25
  # Demand follows the price with a lag of about two weeks (shelf tags change late).
  lagged = np.concatenate([np.full(14, item['prices'][0]), item['prices'][:-14]])
  price_effect = (lagged / item['prices'][0]) ** (-item['elasticity'])
  # A launch ramp over the first two months, a fade-out over the last month.
  age = np.arange(n_days) - item['first']
  ramp = np.clip((age + 1) / 60.0, 0.05, 1.0) if item['first'] > 0 else np.ones(n_days)
  fade = np.clip((item['last'] - np.arange(n_days)) / 30.0, 0.2, 1.0) if item['last'] < n_days else np.ones(n_days)
  # Slow level changes: a random walk per week in log space.
  walk = np.repeat(np.cumsum(rng.normal(0, 0.05, n_days // 7 + 1)), 7)[:n_days]
  rate = (item['level'] * np.exp(item['drift'] * years + walk) * _month_lift(month, day_of_month, december, july)
          * weekday * price_effect * ramp * fade)
  rate[:item['first']] = 0
  rate[item['last']:] = 0
  rows = []
  n_orders = rng.poisson(rate / (3.0 if item['sparse'] else 8.0))  # bottles per order line
  for day in np.flatnonzero(n_orders):
    for _ in range(int(n_orders[day])):
      if item['sparse']:
        bottles = int(rng.integers(1, 7))
      elif rng.random() < 0.4:
        bottles = item['pack'] * int(rng.integers(1, 3))
      else:
        bottles = int(rng.integers(1, 13))
      store = int(stores[rng.choice(len(stores), p=store_share)])
      cost = item['prices'][day] / 1.5
      rows.append([days[day].isoformat(), str(store), item['number'], item['description'], item['category'],
                   item['vendor'], str(item['pack']), str(item['size']), f'{cost:.2f}', f'{item["prices"][day]:.2f}',
                   str(bottles)])
  return rows


def _corrupt(rng: np.random.Generator, rows: List[List[str]], fraction: float) -> List[List[str]]:
  """About `fraction` of the rows broken, kinds drawn at random from BAD_KINDS."""
  for index in rng.choice(len(rows), size=int(len(rows) * fraction), replace=False):
    row, kind = list(rows[index]), BAD_KINDS[int(rng.integers(len(BAD_KINDS)))]
    if kind == 'too_few_fields':
      row = row[:-2]
    elif kind == 'too_many_fields':
      row = row + ['', 'x']
    elif kind == 'blank_item':
      row[2] = ''
    elif kind == 'blank_bottles':
      row[10] = ' '
    elif kind == 'bad_date':
      row[0] = ['2023-02-30', 'n/a', '13/13/2022'][int(rng.integers(3))]
    elif kind == 'bad_number':
      row[[6, 8, 10][int(rng.integers(3))]] = ['', 'abc', '1..5'][int(rng.integers(1, 3))]
    elif kind == 'negative_bottles':
      row[10] = str(-int(rng.integers(1, 24)))
    else:
      row[6] = '0'
    rows[index] = row
  return rows


def generate(seed: int, n_items: int = 120, years: int = 4, n_stores: int = 60,
             start: datetime.date = datetime.date(2020, 1, 1), bad_fraction: float = 0.01) -> List[List[str]]:
  """Rows (lists of strings, no header), sorted by date and store, bad rows included."""
  rng = np.random.default_rng(seed)
  end = datetime.date(start.year + years, start.month, start.day)
  days = [start + datetime.timedelta(d) for d in range((end - start).days)]
  stores = np.sort(rng.choice(np.arange(2000, 9000), size=n_stores, replace=False))
  store_share = rng.pareto(1.5, n_stores) + 0.1
  store_share /= store_share.sum()
  rows = []
  for item in _catalogue(rng, n_items, len(days)):
    rows.extend(_item_rows(rng, item, days, stores, store_share))
  rows.sort(key=lambda r: (r[0], r[1], r[2]))
  return _corrupt(rng, rows, bad_fraction)


def main(argv: Sequence[str] = None) -> None:
  """Writes OUT.csv (header + rows)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('out')
  parser.add_argument('--seed', type=int, default=1)
  parser.add_argument('--items', type=int, default=120)
  parser.add_argument('--years', type=int, default=4)
  args = parser.parse_args(argv)
  rows = generate(args.seed, n_items=args.items, years=args.years)
  with open(args.out, 'w', newline='') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow(COLUMNS)
    writer.writerows(rows)
  print(f'{args.out}: {len(rows)} rows')


if __name__ == '__main__':
  main()
