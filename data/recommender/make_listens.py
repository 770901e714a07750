"""Seeded generator of the bundled listening log: data/recommender/listens.csv and listens_sample.csv.

python data/recommender/make_listens.py [--users 2000] [--seed 7]

Columns user_name,track_id,track_name,artist_name,tags,listened_at, one row per listen. Structure a model can
find: each user has tastes over a few genres and a few favourite artists; tracks belong to an artist whose genre
and tags they share (plus a mood tag of their own); track popularity is long-tailed (Zipf), so many tracks are
cold (a handful of listens); a user replays the tracks that fit their taste more often (repeat listens), so
`listen_count > 2` carries taste. listened_at is epoch seconds on about half of the rows and ISO-8601 on the
rest; a few bad rows (empty user, empty track, unparsable time) are appended to test the counted skips.
"""
import argparse
import datetime
import os

import numpy as np

GENRES = ['rock', 'pop', 'jazz', 'hiphop', 'electronic', 'classical', 'metal', 'folk', 'rnb', 'reggae',
          'country', 'blues']
MOODS = ['chill', 'energetic', 'sad', 'happy', 'dark', 'romantic', 'party', 'focus']
DECADES = ['70s', '80s', '90s', '00s', '10s']
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
YEAR_SECONDS = 365 * 24 * 3600
BAD_ROWS = [',t00001,Track 1,Artist 1,rock,1704067200', 'user_bad,,Track 2,Artist 1,rock,1704067200',
            'user_bad,t00003,Track 3,Artist 2,pop,not-a-time', 'user_bad,t00004,Track 4,Artist 2,pop,2024-13-45']


def make_catalogue(rng: np.random.Generator, n_artists: int, n_tracks: int):
  """Artists (genre, decade) and tracks (artist, tags, popularity with a long Zipf tail)."""
  artist_genre = rng.integers(len(GENRES), size=n_artists)
  artist_decade = rng.integers(len(DECADES), size=n_artists)
  artist_weight = 1.0 / np.arange(1, n_artists + 1) ** 0.8
  track_artist = rng.choice(n_artists, size=n_tracks, p=artist_weight / artist_weight.sum())
  track_mood = rng.integers(len(MOODS), size=n_tracks)
  popularity = 1.0 / rng.permutation(np.arange(1, n_tracks + 1)) ** 1.0
  tags = []
  for t in range(n_tracks):
    a = track_artist[t]
    track_tags = [GENRES[artist_genre[a]], DECADES[artist_decade[a]], MOODS[track_mood[t]]]
    tags.append('|'.join(track_tags) if rng.random() > 0.05 else '')  # some tracks are untagged
  return artist_genre, track_artist, track_mood, popularity, tags


def make_listens(n_users: int, seed: int):
  """Rows (user_name, track_id, track_name, artist_name, tags, listened_at) for n_users users."""
  rng = np.random.default_rng(seed)
  n_artists, n_tracks = max(50, n_users // 8), max(200, (n_users * 3) // 2)
  artist_genre, track_artist, track_mood, popularity, tags = make_catalogue(rng, n_artists, n_tracks)
  track_genre = artist_genre[track_artist]
  rows = []
  for u in range(n_users):
    genre_taste = rng.dirichlet(np.full(len(GENRES), 0.15))
    mood_taste = rng.dirichlet(np.full(len(MOODS), 0.5))
    liked_genres = np.flatnonzero(genre_taste > 0.1)
    candidates = np.flatnonzero(np.isin(artist_genre, liked_genres)) if len(liked_genres) else np.arange(n_artists)
    favourites = rng.choice(candidates, size=min(3, len(candidates)), replace=False)
    affinity = genre_taste[track_genre] * (0.5 + mood_taste[track_mood]) * (
        1.0 + 4.0 * np.isin(track_artist, favourites))
    weight = affinity * popularity ** 0.6 + 0.02 * popularity
    n_distinct = int(np.clip(rng.lognormal(3.0, 0.6), 5, 150))
    chosen = rng.choice(n_tracks, size=min(n_distinct, n_tracks), replace=False, p=weight / weight.sum())
    fit = affinity[chosen] / affinity.max()
    counts = 1 + rng.poisson(6.0 * fit ** 1.5 + 0.3)
    for t, count in zip(chosen, counts):
      for when in START + rng.uniform(0, YEAR_SECONDS, size=count):
        stamp = (str(int(when)) if rng.random() < 0.5 else
                 datetime.datetime.fromtimestamp(int(when), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))
        rows.append((f'user_{u:05d}', f't{t:05d}', f'Track {t}', f'Artist {track_artist[t]}', tags[t], stamp))
  return rows


def write(path: str, rows, bad_rows) -> None:
  """Writes the CSV with its header, the rows and then the bad rows."""
  with open(path, 'w') as f:
    f.write('user_name,track_id,track_name,artist_name,tags,listened_at\n')
    for row in rows:
      f.write(','.join(row) + '\n')
    for line in bad_rows:
      f.write(line + '\n')


def main() -> None:
  """Writes listens.csv (all users) and listens_sample.csv (a smaller population, same seed) beside this file."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--users', type=int, default=2000)
  parser.add_argument('--sample-users', type=int, default=300)
  parser.add_argument('--seed', type=int, default=7)
  args = parser.parse_args()
  here = os.path.dirname(os.path.abspath(__file__))
  for name, users in (('listens.csv', args.users), ('listens_sample.csv', args.sample_users)):
    rows = make_listens(users, args.seed)
    write(os.path.join(here, name), rows, BAD_ROWS)
    print(f'{name}: {users} users, {len({r[1] for r in rows})} tracks, {len(rows)} listens')


if __name__ == '__main__':
  main()
