"""Converts a public rating data set into the recommender's listens CSV: a rating r becomes r listens of the item.

python -m pipelines.recommender.convert_ratings SRC OUT.csv [--items ITEMS]

SRC, by its first line:
- RecBole atomic interactions (`user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float`), e.g.
  MovieLens-100K as shipped inside the `recbole` wheel (recbole/dataset_example/ml-100k/ml-100k.inter); the items
  file beside it (`<name>.item`: item_id, movie_title, release_year, class) is read when present;
- MovieLens `u.data` (user, item, rating, timestamp, tab-separated, no header), with `u.item` beside it;
- CSV with a header holding userId,movieId,rating,timestamp (MovieLens 'latest'), with `movies.csv` beside it.
Output columns user_name,track_id,track_name,artist_name,tags,listened_at: artist_name is the item's release year
(the only grouping attribute MovieLens has beside genres), tags its genres ('|'-joined, lower case), listened_at
the rating's epoch seconds. Ratings are rounded to whole listens (half stars up); a rating below 1 gives none.
Nothing here downloads: the data set is read from a file the user has (MovieLens' licence forbids redistribution,
so none is bundled).
"""
import argparse
import csv
import math
import os
import re
import sys
from typing import Dict, Iterator, List, Optional, Tuple

HEADER = ['user_name', 'track_id', 'track_name', 'artist_name', 'tags', 'listened_at']
Rating = Tuple[str, str, float, str]  # user, item, rating, timestamp (epoch seconds as text)
Item = Tuple[str, str, str]  # name, artist (release year), tags


class ConversionError(ValueError):
  """The input is not a rating file this converter knows."""


def _year(text: str) -> str:
  match = re.search(r'\((\d{4})\)\s*$', text) or re.search(r'(\d{2}-\w{3}-)?(\d{4})$', text.strip())
  return match.group(match.lastindex) if match else ''


def _tags(genres: List[str]) -> str:
  return '|'.join(g.strip().lower().replace(' ', '-') for g in genres if g.strip() and g.strip() != '(no genres listed)')


def read_ratings(path: str) -> Tuple[str, Iterator[Rating]]:
  """(format name, ratings) of a RecBole .inter, MovieLens u.data or ratings.csv file."""
  with open(path, encoding='utf-8', errors='replace') as f:
    first = f.readline().rstrip('\n')
  if first.startswith('user_id:'):
    columns = [c.split(':')[0] for c in first.split('\t')]
    missing = {'user_id', 'item_id', 'rating', 'timestamp'} - set(columns)
    if missing:
      raise ConversionError(f'{path}: RecBole interactions without {", ".join(sorted(missing))}')
    at = {name: columns.index(name) for name in ('user_id', 'item_id', 'rating', 'timestamp')}
    return 'recbole', _rows(path, '\t', 1, (at['user_id'], at['item_id'], at['rating'], at['timestamp']))
  if 'userId' in first and 'movieId' in first:
    columns = next(csv.reader([first]))
    return 'movielens_csv', _rows(path, ',', 1, tuple(columns.index(c) for c in ('userId', 'movieId', 'rating',
                                                                                  'timestamp')))
  if len(first.split('\t')) == 4:
    return 'movielens_udata', _rows(path, '\t', 0, (0, 1, 2, 3))
  raise ConversionError(f'{path}: not a RecBole .inter, MovieLens u.data or ratings.csv file (first line {first!r})')


def _rows(path: str, delimiter: str, skip: int, at: Tuple[int, int, int, int]) -> Iterator[Rating]:
  with open(path, encoding='utf-8', errors='replace', newline='') as f:
    reader = csv.reader(f, delimiter=delimiter)
    for line_number, fields in enumerate(reader):
      if line_number < skip or not fields:
        continue
      try:
        yield fields[at[0]].strip(), fields[at[1]].strip(), float(fields[at[2]]), str(int(float(fields[at[3]])))
      except (IndexError, ValueError) as error:
        raise ConversionError(f'{path}, line {line_number + 1}: {error}') from error


def read_items(path: Optional[str]) -> Dict[str, Item]:
  """item id -> (name, artist, tags) from a RecBole .item, MovieLens u.item or movies.csv file ({} if none)."""
  if not path or not os.path.isfile(path):
    return {}
  items: Dict[str, Item] = {}
  with open(path, encoding='latin-1', newline='') as f:
    if path.endswith('.item') and not path.endswith('u.item'):
      reader = csv.reader(f, delimiter='\t')
      columns = [c.split(':')[0] for c in next(reader)]
      for fields in reader:
        row = dict(zip(columns, fields))
        items[row['item_id']] = (row.get('movie_title', ''), row.get('release_year', ''),
                                 _tags(row.get('class', '').split()))
    elif path.endswith('u.item'):
      genres = ['unknown', 'action', 'adventure', 'animation', "children's", 'comedy', 'crime', 'documentary',
                'drama', 'fantasy', 'film-noir', 'horror', 'musical', 'mystery', 'romance', 'sci-fi', 'thriller',
                'war', 'western']
      for fields in csv.reader(f, delimiter='|'):
        flags = fields[5:5 + len(genres)]
        items[fields[0]] = (fields[1], _year(fields[2]), _tags([g for g, on in zip(genres, flags) if on == '1']))
    else:
      for row in csv.DictReader(f):
        items[row['movieId']] = (row['title'], _year(row['title']), _tags(row['genres'].split('|')))
  return items


def default_items_path(ratings_path: str, format_name: str) -> Optional[str]:
  """The items file that sits beside a ratings file in each format."""
  directory = os.path.dirname(ratings_path)
  if format_name == 'recbole':
    return os.path.splitext(ratings_path)[0] + '.item'
  return os.path.join(directory, 'u.item' if format_name == 'movielens_udata' else 'movies.csv')


def listens(ratings: Iterator[Rating], items: Dict[str, Item]) -> Iterator[List[str]]:
  """Output rows: round(r) identical listens per rating r (half up), the item's name, artist and tags."""
  for user, item, rating, timestamp in ratings:
    if not math.isfinite(rating):
      continue
    name, artist, tags = items.get(item, (f'Item {item}', '', ''))
    for _ in range(int(math.floor(rating + 0.5))):
      yield [user, item, name, artist, tags, timestamp]


def convert(source: str, output: str, items_path: Optional[str] = None) -> int:
  """Writes the listens CSV; returns the rows written."""
  format_name, ratings = read_ratings(source)
  items = read_items(items_path or default_items_path(source, format_name))
  rows = 0
  with open(output, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f, lineterminator='\n')
    writer.writerow(HEADER)
    for row in listens(ratings, items):
      writer.writerow(row)
      rows += 1
  return rows


def main(argv: Optional[List[str]] = None) -> int:
  """CLI: convert SRC into OUT.csv; a one-line error and exit 2 on input it does not know."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('source')
  parser.add_argument('output')
  parser.add_argument('--items', help='items file (default: the one beside SRC in its format)')
  args = parser.parse_args(argv)
  try:
    rows = convert(args.source, args.output, args.items)
  except (ConversionError, OSError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  print(f'{rows} listens written to {args.output}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
