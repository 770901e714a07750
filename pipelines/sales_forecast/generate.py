"""Writes the bundled sales_forecast data: seeded synthetic Iowa-liquor-style invoice lines.

  python -m pipelines.sales_forecast.generate   # data/sales_forecast/sales.csv (300 items, 2021-2023) and sales_sample.csv

One row per invoice line with the columns of the public Iowa liquor sales table:
date,store_number,item_number,item_description,category_name,vendor_name,pack,bottle_volume_ml,
state_bottle_cost,state_bottle_retail,bottles_sold. Stores order on weekdays (more on Mondays and Fridays);
demand has a yearly cycle with a December peak (stronger for some categories), a trend per item, price and
pack effects, item-level demand shocks that persist for a few months, items introduced and discontinued
during the period, and lumpy order sizes (often whole cases). About 1% of the rows are malformed, in equal
shares of: wrong field count, empty required field, unparsable number, unparsable date, negative
bottles_sold, non-positive pack. Same seed, same bytes.
"""
import argparse
import csv
import datetime
import os
from typing import List

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'data',
                        'sales_forecast')
COLUMNS = ['date', 'store_number', 'item_number', 'item_description', 'category_name', 'vendor_name', 'pack',
           'bottle_volume_ml', 'state_bottle_cost', 'state_bottle_retail', 'bottles_sold']
# (category, December amplitude, summer amplitude)
CATEGORIES = [('American Vodkas', 0.5, 0.15), ('Canadian Whiskies', 0.7, 0.0), ('Straight Bourbon Whiskies', 0.8, 0.0),
              ('Spiced Rum', 0.4, 0.3), ('Mixto Tequila', 0.3, 0.35), ('Imported Brandies', 1.0, -0.1),
              ('Cream Liqueurs', 1.4, -0.2), ('American Flavored Vodka', 0.4, 0.25), ('Blended Whiskies', 0.6, 0.0),
              ('American Dry Gins', 0.3, 0.3), ('Imported Vodkas', 0.6, 0.1), ('Cocktails /RTD', 0.2, 0.5)]
BRANDS = ['Black Velvet', 'Hawkeye', 'Titos', 'Fireball', 'Crown Royal', 'Jim Beam', 'Captain Morgan', 'Smirnoff',
          'Jose Cuervo', 'Baileys', 'Paul Masson', 'Five Star', 'McCormick', 'Absolut', 'Seagrams', 'Bacardi',
          'Jack Daniels', 'Kinky', 'Korbel', 'Ketel One', 'Grey Goose', 'Malibu', 'Canadian Mist', 'Admiral Nelson']
VENDORS = ['Diageo Americas', 'Sazerac Company Inc', 'Heaven Hill Brands', 'Jim Beam Brands', 'Luxco Inc',
           'Pernod Ricard USA', 'Bacardi USA Inc', 'Proximo', 'E & J Gallo Winery', 'Constellation Brands Inc',
           'Brown Forman Corp', 'Phillips Beverage', 'Mccormick Distilling Co', 'Fifth Generation Inc',
           'William Grant & Sons Inc', 'Moet Hennessy USA', 'Laird & Company', 'Hood River Distillers']
VOLUMES = np.array([200, 375, 750, 1000, 1750])
PACK_BY_VOLUME = {200: 48, 375: 24, 750: 12, 1000: 12, 1750: 6}
WEEKDAY_WEIGHT = np.array([1.3, 0.9, 0.9, 1.0, 1.2, 0.0, 0.0])  # Monday..Sunday: stores order on weekdays
MALFORMED_KINDS = ['wrong_field_count', 'empty_required_field', 'unparsable_number', 'unparsable_date',
                   'negative_bottles_sold', 'non_positive_pack']


def _month_factor(months: np.ndarray, december: float, summer: float) -> np.ndarray:
  """Yearly cycle: a December peak (and a smaller November one), a January dip and a summer bump."""
  factor = np.ones(months.shape)
  factor[months == 12] += december
  factor[months == 11] += december / 3
  factor[months == 1] -= 0.25
  factor[months == 2] -= 0.15
  factor[np.isin(months, [6, 7, 8])] += summer
  return factor


def _items(rng: np.random.Generator, n_items: int, n_days: int, scale: float) -> List[dict]:
  items = []
  numbers = rng.choice(np.arange(10000, 100000), size=n_items, replace=False)
  for number in sorted(numbers):
    category = int(rng.integers(len(CATEGORIES)))
    volume = int(rng.choice(VOLUMES, p=[0.1, 0.15, 0.45, 0.15, 0.15]))
    cost = round(float(np.exp(rng.normal(np.log(6 + volume / 100), 0.45))), 2)
    start = 0 if rng.random() < 0.8 else int(rng.integers(30, n_days - 240))  # first month in train
    end = n_days if rng.random() < 0.85 else int(rng.integers(max(start + 90, 365), n_days + 60))
    # Cheaper and larger-pack items sell more bottles; lognormal spread between items.
    base = (scale * float(np.exp(rng.normal(1.3, 1.0))) * (12.0 / max(cost, 3.0)) ** 0.6
            * (PACK_BY_VOLUME[volume] / 12) ** 0.3)
    items.append({
        'item_number': str(number), 'category': category, 'volume': volume, 'pack': PACK_BY_VOLUME[volume],
        'cost': cost, 'retail': round(cost * 1.5, 2), 'vendor': VENDORS[int(rng.integers(len(VENDORS)))],
        'description': f'{BRANDS[int(rng.integers(len(BRANDS)))]} {CATEGORIES[category][0].split()[-1]} {volume}ml',
        'base': base, 'trend': float(rng.normal(0.0, 0.3)), 'start': start, 'end': min(end, n_days)})
  return items


def generate(seed: int, n_items: int, n_stores: int, start: datetime.date, end: datetime.date,
             scale: float = 1.0) -> List[List[str]]:
  """Rows (lists of strings, no header) of invoice lines between start and end inclusive, malformed ones
  included; `scale` multiplies every item's demand."""
  rng = np.random.default_rng(seed)
  n_days = (end - start).days + 1
  days = [start + datetime.timedelta(d) for d in range(n_days)]
  months = np.array([d.month for d in days])
  weekdays = WEEKDAY_WEIGHT[[d.weekday() for d in days]]
  month_index = np.array([(d.year - start.year) * 12 + d.month - start.month for d in days])
  stores = rng.choice(np.arange(2000, 6000), size=n_stores, replace=False)
  store_weight = rng.dirichlet(np.full(n_stores, 2.0))
  rows = []
  for item in _items(rng, n_items, n_days, scale):
    december, summer = CATEGORIES[item['category']][1:]
    # Demand shocks per month that persist (AR(1) in log space).
    shocks = np.zeros(month_index.max() + 1)
    for m in range(1, len(shocks)):
      shocks[m] = 0.6 * shocks[m - 1] + rng.normal(0, 0.2)
    years = np.arange(n_days) / 365.25
    rate = (item['base'] * np.exp(item['trend'] * years) * _month_factor(months, december, summer) * weekdays
            * np.exp(shocks[month_index]))
    rate[:item['start']] = 0
    rate[item['end']:] = 0
    lines = rng.poisson(rate / 6.0)  # about six bottles per invoice line
    for day in np.flatnonzero(lines):
      for _ in range(lines[day]):
        cases = rng.random() < 0.5
        bottles = int(item['pack'] * rng.integers(1, 3)) if cases else int(rng.integers(1, 7))
        rows.append([days[day].isoformat(), str(int(rng.choice(stores, p=store_weight))), item['item_number'],
                     item['description'], CATEGORIES[item['category']][0], item['vendor'], str(item['pack']),
                     str(item['volume']), f'{item["cost"]:.2f}', f'{item["retail"]:.2f}', str(bottles)])
  rows.sort(key=lambda r: (r[0], r[1], r[2]))
  return _malform(rng, rows)


def _malform(rng: np.random.Generator, rows: List[List[str]]) -> List[List[str]]:
  """Breaks about 1% of the rows, an equal share of each MALFORMED_KINDS."""
  chosen = rng.choice(len(rows), size=len(rows) // 100, replace=False)
  for i, index in enumerate(chosen):
    row = rows[index]
    kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
    if kind == 'wrong_field_count':
      rows[index] = row[:-1] if i % 2 else row + ['extra']
    elif kind == 'empty_required_field':
      row[COLUMNS.index(['item_number', 'bottles_sold', 'date'][i % 3])] = ''
    elif kind == 'unparsable_number':
      row[COLUMNS.index(['bottles_sold', 'state_bottle_cost', 'pack'][i % 3])] = ['twelve', 'N/A', '1O'][i % 3]
    elif kind == 'unparsable_date':
      row[0] = ['2022-13-45', 'yesterday', '31/31/2021'][i % 3]
    elif kind == 'negative_bottles_sold':
      row[-1] = str(-int(rng.integers(1, 13)))
    else:
      row[COLUMNS.index('pack')] = ['0', '-6'][i % 2]
  return rows


def write(path: str, rows: List[List[str]]) -> None:
  """Writes the header and rows as CSV."""
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow(COLUMNS)
    writer.writerows(rows)


def main() -> None:
  """Writes the bundled files (see the module docstring)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out_dir', default=DATA_DIR)
  parser.add_argument('--seed', type=int, default=7)
  args = parser.parse_args()
  full = generate(args.seed, n_items=300, n_stores=40, start=datetime.date(2021, 1, 1), end=datetime.date(2023, 12, 31),
                  scale=0.35)
  write(os.path.join(args.out_dir, 'sales.csv'), full)
  sample = generate(args.seed + 1, n_items=40, n_stores=10, start=datetime.date(2022, 1, 1),
                    end=datetime.date(2023, 12, 31), scale=0.2)
  write(os.path.join(args.out_dir, 'sales_sample.csv'), sample)
  print(f'sales.csv: {len(full)} rows; sales_sample.csv: {len(sample)} rows')


if __name__ == '__main__':
  main()
