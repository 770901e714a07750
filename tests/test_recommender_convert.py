"""pipelines.recommender.convert_ratings on a few hand-made rows of each rating format."""
import csv

import pytest

from modules import recommender as module
from pipelines.recommender import convert_ratings


def _read(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


def test_recbole_ratings_become_that_many_listens_with_item_features(tmp_path):
  (tmp_path / 'ml.inter').write_text('user_id:token\titem_id:token\trating:float\ttimestamp:float\n'
                                     '196\t242\t3\t881250949\n186\t302\t1\t891717742\n22\t242\t0\t878887116\n')
  (tmp_path / 'ml.item').write_text('item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n'
                                    "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir\n")
  out = tmp_path / 'listens.csv'
  assert convert_ratings.main([str(tmp_path / 'ml.inter'), str(out)]) == 0
  rows = _read(out)
  assert list(rows[0]) == convert_ratings.HEADER
  assert [(r['user_name'], r['track_id']) for r in rows] == [('196', '242')] * 3 + [('186', '302')]  # rating 0: none
  assert rows[3] == {'user_name': '186', 'track_id': '302', 'track_name': 'L.A. Confidential', 'artist_name': '1997',
                     'tags': 'crime|film-noir', 'listened_at': '891717742'}
  # Every converted row is a valid listen for the pipeline.
  assert all(module.parse_listen(r)[1] is None for r in rows)


def test_movielens_udata_and_ratings_csv(tmp_path):
  (tmp_path / 'u.data').write_text('1\t10\t2\t874965758\n2\t11\t5\t876893171\n')
  (tmp_path / 'u.item').write_text('10|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n')
  assert convert_ratings.convert(str(tmp_path / 'u.data'), str(tmp_path / 'a.csv')) == 7
  rows = _read(tmp_path / 'a.csv')
  assert rows[0]['artist_name'] == '1995' and rows[0]['tags'] == "animation|children's|comedy"
  assert rows[-1]['track_name'] == 'Item 11' and rows[-1]['tags'] == ''  # not in u.item
  (tmp_path / 'ratings.csv').write_text('userId,movieId,rating,timestamp\n1,1,3.5,964982703\n1,3,0.5,964981247\n')
  (tmp_path / 'movies.csv').write_text('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n')
  assert convert_ratings.convert(str(tmp_path / 'ratings.csv'), str(tmp_path / 'b.csv')) == 5  # 3.5 -> 4, 0.5 -> 1
  rows = _read(tmp_path / 'b.csv')
  assert rows[0]['artist_name'] == '1995' and rows[0]['tags'] == 'adventure|animation'


def test_unknown_input_is_a_one_line_error(tmp_path, capsys):
  (tmp_path / 'x.csv').write_text('a,b\n1,2\n')
  assert convert_ratings.main([str(tmp_path / 'x.csv'), str(tmp_path / 'out.csv')]) == 2
  assert capsys.readouterr().err.count('\n') == 1
  (tmp_path / 'bad.inter').write_text('user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\tx\t3\n')
  with pytest.raises(convert_ratings.ConversionError, match='line 2'):
    convert_ratings.convert(str(tmp_path / 'bad.inter'), str(tmp_path / 'out.csv'))
