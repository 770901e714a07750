"""modules.recommender and its components' logic: pairs, labels and weights by hand, vocabulary thresholds and the
out-of-vocabulary filter on a tiny frame, recall@k on a hand-made example, the SQL for BigQuery."""
import math
import tempfile

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from apache_beam.testing.util import assert_that, equal_to
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from modules import recommender as module
from pipelines import bigquery
from pipelines.recommender.recall_evaluator import catalog_evaluation, evaluate, nearest_tracks
from pipelines.recommender.vocabulary_filter import in_vocabulary
from pipelines.recommender import champion_gate, recommendations
from pipelines.recommender.pipeline import bigquery_query

PARAMS = {'eval_percent': 15, 'test_percent': 15, 'max_tags': 2, 'user_tag_features': 3}


def _row(user, track, tags='rock|80s', when=1704067200, artist='A'):
  return {'user_name': user, 'track_id': track, 'track_name': f'Track {track}', 'artist_name': artist, 'tags': tags,
          'listened_at': when}


@pytest.mark.parametrize('row, reason', [
    (_row('', 't1'), 'missing_user'), (_row(None, 't1'), 'missing_user'), (_row('u', '  '), 'missing_track'),
    (_row('u', 't1', when='not-a-time'), 'unparsable_timestamp'), (_row('u', 't1', when='2024-13-45'),
                                                                   'unparsable_timestamp'),
    (_row('u', 't1', when=None), 'unparsable_timestamp'), (_row('u', 't1', when='nan'), 'unparsable_timestamp'),
])
def test_bad_rows_have_a_reason(row, reason):
  assert module.parse_listen(row) == (None, reason)


def test_numbers_and_strings_parse_alike():
  """CsvExampleGen infers ints, BigQuery gives strings; ISO-8601 with or without zone, epoch seconds."""
  assert module.parse_listen(_row(17, 42, tags='', when='1704067200')) == (('17', '42', 'A', ()), None)
  assert module.parse_listen(_row('u', 't', tags=' pop | |x ', when='2024-01-01T00:00:00Z'))[0][3] == ('pop', 'x')
  assert module.parse_timestamp('2024-01-01 00:00:00') == module.parse_timestamp(1704067200)


def test_pair_aggregation_label_and_weight_by_hand():
  pair = module.aggregate_pair('u1', 't1', [('A', ('rock', '80s')), ('B', ('rock',)), ('A', ('pop', 'rock'))], 2)
  assert pair == {'user_name': 'u1', 'track_id': 't1', 'listen_count': 3, 'artist_name': 'A', 'tags': 'rock|80s'}
  # u1: counts 6 (positive), 3 (positive), 2 (negative), 1 (negative); largest count 6.
  assert module.pair_weight(6, 6) == 1.0
  assert module.pair_weight(3, 6) == pytest.approx(math.sqrt(0.5))
  assert module.pair_weight(2, 6) == 0.5 and module.pair_weight(1, 6) == 1.0


def test_user_examples_features_from_training_listens_only():
  pairs = [{'user_name': 'u', 'track_id': 'a', 'listen_count': 6, 'artist_name': 'A', 'tags': 'rock|80s',
            'split': 'train'},
           {'user_name': 'u', 'track_id': 'b', 'listen_count': 2, 'artist_name': 'B', 'tags': 'pop', 'split': 'train'},
           {'user_name': 'u', 'track_id': 'c', 'listen_count': 4, 'artist_name': 'B', 'tags': 'jazz', 'split': 'test'}]
  out = module.user_examples('u', pairs, ['rock', 'jazz', 'pop'], 4)
  assert [split for split, _ in out] == ['train', 'train', 'test', 'users']
  by_track = {e['track_id']: e for _, e in out[:3]}
  assert [by_track[t]['label'] for t in 'abc'] == [1, 0, 1]
  assert by_track['a']['weight'] == 1.0 and by_track['b']['weight'] == 0.5
  assert by_track['c']['weight'] == pytest.approx(math.sqrt(4 / 6))
  # 8 training listens: rock 6/8, jazz 0 (its only pair is a test pair), pop 2/8, padding 0.
  assert by_track['c']['user_tag_shares'] == pytest.approx([0.75, 0.0, 0.25, 0.0])
  assert out[3] == ('users', {'user_name': 'u'})


def test_splits_are_a_stable_hash_near_70_15_15():
  splits = [module.assign_split(f'u{i}', f't{i % 97}', 15, 15) for i in range(20000)]
  assert module.assign_split('u1', 't1', 15, 15) == module.assign_split('u1', 't1', 15, 15)
  for name, share in (('train', 0.70), ('eval', 0.15), ('test', 0.15)):
    assert splits.count(name) / len(splits) == pytest.approx(share, abs=0.02)


def test_build_examples_under_beam_counts_rejected_rows():
  rows = [_row('u1', 't1'), _row('u1', 't1'), _row('u1', 't1', tags=''), _row('u1', 't2', tags='pop'),
          _row('u2', 't1'), _row('', 't1'), _row('u3', 't1', when='never')]
  with beam.Pipeline() as pipeline:
    built = module.build_examples(pipeline | beam.Create(rows), PARAMS)
    pairs = ((built.splits['train'], built.splits['eval'], built.splits['test']) | beam.Flatten()
             | beam.Map(lambda e: (e['user_name'], e['track_id'], e['listen_count'], e['label'])))
    assert_that(pairs, equal_to([('u1', 't1', 3, 1), ('u1', 't2', 1, 0), ('u2', 't1', 1, 0)]), label='pairs')
    assert_that(built.splits['users'], equal_to([{'user_name': 'u1'}, {'user_name': 'u2'}]), label='users')
    assert_that(built.rejected | beam.Map(lambda r: r['reason']),
                equal_to(['missing_user', 'unparsable_timestamp']), label='rejected')


def _transform(rows, **config):
  config = {'max_tags': 2, 'min_user_pairs': 2, 'min_track_pairs': 2, 'min_artist_pairs': 1, 'min_tag_pairs': 2,
            **config}
  feature_spec = {name: tf.io.FixedLenFeature([], tf.string) for name in (module.USER, module.TRACK, module.ARTIST,
                                                                         module.TAGS)}
  feature_spec.update({module.USER_TAG_SHARES: tf.io.FixedLenFeature([2], tf.float32),
                       module.LABEL: tf.io.FixedLenFeature([], tf.int64),
                       module.WEIGHT: tf.io.FixedLenFeature([], tf.float32),
                       module.COUNT: tf.io.FixedLenFeature([], tf.int64)})
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
  data = [{module.USER: u.encode(), module.TRACK: t.encode(), module.ARTIST: b'A', module.TAGS: tags.encode(),
           module.USER_TAG_SHARES: [0.5, 0.5], module.LABEL: 1, module.WEIGHT: 1.0, module.COUNT: 3}
          for u, t, tags in rows]
  with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
    (transformed, _), _ = ((data, metadata) | tft_beam.AnalyzeAndTransformDataset(
        lambda inputs: module.preprocessing_fn(inputs, config)))
  return transformed


def test_vocabulary_thresholds_and_out_of_vocabulary_counts_on_a_tiny_frame():
  # users: u1 3 pairs, u2 2, u3 1 (below 2); tracks: a 3, b 2, c 1 (below 2); tags: rock 3, pop 2, x 1.
  rows = [('u1', 'a', 'rock|pop'), ('u1', 'b', 'rock'), ('u1', 'c', 'x'), ('u2', 'a', 'rock|pop'), ('u2', 'b', ''),
          ('u3', 'a', '')]
  transformed = _transform(rows)
  users, tracks = 2, 2  # vocabulary sizes: index == size is the OOV bucket
  assert [int(r[module.USER_INDEX]) for r in transformed] == [0, 0, 0, 1, 1, users]
  assert [int(r[module.TRACK_INDEX]) for r in transformed] == [0, 1, tracks, 0, 1, 0]
  # Tags: 0 padding, 1 rock, 2 pop, 3 unknown (x is below the threshold).
  assert [list(r[module.TAG_INDEX]) for r in transformed] == [[1, 2], [1, 0], [3, 0], [1, 2], [0, 0], [0, 0]]
  kept = [int(r[module.USER_INDEX]) < users and int(r[module.TRACK_INDEX]) < tracks for r in transformed]
  assert kept.count(False) == 2  # (u1, c) and (u3, a)
  # The component's filter gives the same answer from the vocabulary files' tokens.
  rows_as_dicts = [{module.USER: u, module.TRACK: t} for u, t, _ in rows]
  assert in_vocabulary(rows_as_dicts, {'u1', 'u2'}, {'a', 'b'}) == kept


def test_sampled_negatives_are_unlistened_tracks_of_the_same_user():
  class Sizes:
    tracks = 50
  train = {module.USER_INDEX: np.array([0, 0, 1]), module.TRACK_INDEX: np.array([3, 4, 3]),
           module.ARTIST_INDEX: np.array([7, 8, 7]), module.TAG_INDEX: np.array([[1, 0], [2, 0], [1, 0]]),
           module.LABEL: np.array([1.0, 0.0, 1.0], np.float32), module.WEIGHT: np.ones(3, np.float32),
           module.USER_TAG_SHARES: np.zeros((3, 2), np.float32), module.COUNT: np.array([3.0, 1.0, 5.0])}
  out = module.with_sampled_negatives(train, Sizes(), 10, 0.5, seed=1)
  assert len(out[module.LABEL]) == 33 and out[module.LABEL][3:].sum() == 0
  assert np.all(out[module.WEIGHT][3:] == 0.5)
  listened = {(0, 3), (0, 4), (1, 3)}
  assert not listened & set(zip(out[module.USER_INDEX][3:].tolist(), out[module.TRACK_INDEX][3:].tolist()))
  again = module.with_sampled_negatives(train, Sizes(), 10, 0.5, seed=1)
  np.testing.assert_array_equal(out[module.TRACK_INDEX], again[module.TRACK_INDEX])


def test_fitted_pairs_weight_listened_negatives_and_add_sampled_ones():
  class Sizes:
    tracks = 50
  train = {module.USER_INDEX: np.array([0, 0, 1]), module.TRACK_INDEX: np.array([3, 4, 3]),
           module.ARTIST_INDEX: np.array([7, 8, 7]), module.TAG_INDEX: np.array([[1, 0], [2, 0], [1, 0]]),
           module.LABEL: np.array([1.0, 0.0, 1.0], np.float32),
           module.WEIGHT: np.array([0.8, 0.5, 1.0], np.float32),
           module.USER_TAG_SHARES: np.zeros((3, 2), np.float32), module.COUNT: np.array([3.0, 2.0, 5.0])}
  config = {'listened_negative_weight': 0.1, 'sampled_negatives': 2, 'sampled_negative_weight': 1.0, 'seed': 3}
  out = module.fitted_pairs(train, Sizes(), config)
  np.testing.assert_allclose(out[module.WEIGHT][:3], [0.8, 0.05, 1.0])  # only the listened negative scaled
  assert len(out[module.LABEL]) == 9 and out[module.LABEL][3:].sum() == 0
  # Factor 0: the listened negative leaves training; the sampled negatives drawn for it stay.
  out = module.fitted_pairs(train, Sizes(), {**config, 'listened_negative_weight': 0.0})
  assert len(out[module.LABEL]) == 8 and list(out[module.LABEL][:2]) == [1.0, 1.0]
  assert not ((out[module.USER_INDEX] == 0) & (out[module.TRACK_INDEX] == 4)).any()


def test_ranks_and_recall_at_k_on_a_hand_made_example():
  positive = np.array([0.9, 0.5, 0.1, 0.5])
  sampled = np.array([[0.1, 0.2, 0.3], [0.6, 0.5, 0.1], [0.2, 0.3, 0.4], [0.5, 0.5, 0.5]])
  rank = module.ranks(positive, sampled)
  np.testing.assert_array_equal(rank, [0, 1.5, 3, 1.5])
  assert module.recall_at_k(rank, [1, 2, 4]) == {1: 0.25, 2: 0.75, 4: 1.0}


def test_sampled_tracks_never_include_the_positive_and_are_seeded():
  positives = np.array([0, 5, 9, 9])
  samples = module.sample_negatives(positives, 10, 1000, seed=3)
  assert samples.shape == (4, 9)  # capped at the vocabulary without the positive
  for row, positive in zip(samples, positives):
    assert sorted(row) == sorted(set(range(10)) - {positive})
  np.testing.assert_array_equal(module.sample_negatives(positives, 100, 20, 3),
                                module.sample_negatives(positives, 100, 20, 3))


def test_recall_evaluation_ranks_a_perfect_model_first_and_shares_the_samples():
  rng = np.random.default_rng(0)
  tracks = np.linalg.qr(rng.normal(size=(40, 40)))[0]  # orthonormal track vectors
  positives = np.arange(30)
  users = tracks[positives]  # each user points exactly at its positive track
  popularity = np.arange(40, dtype=float)[::-1]  # track 0 the most popular
  ranks, samples = evaluate(users, tracks, popularity, positives, 1000, seed=0)
  assert samples == 39
  np.testing.assert_array_equal(ranks['two_tower'], 0)
  np.testing.assert_array_equal(ranks['popularity'], positives)  # track i is beaten by tracks 0..i-1
  assert 0 < module.recall_at_k(ranks['random'], [10])[10] < 0.8


def test_nearest_tracks_of_the_most_popular_track():
  vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.99, 0.14], [-0.7, 0.71]])
  rows = nearest_tracks(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), ['a', 'b', 'c', 'd'],
                        np.array([5.0, 1.0, 1.0, 1.0]), {'a': 'A; rock'}, queries=1, neighbours=2)
  assert [(r['track'], r['neighbour']) for r in rows] == [('a', 'c'), ('a', 'd')]  # |cosine|: d is near
  assert rows[0]['track_info'] == 'A; rock'
  rows = nearest_tracks(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), ['a', 'b', 'c', 'd'],
                        np.array([5.0, 1.0, 1.0, 1.0]), {}, queries=1, neighbours=2, objective='softmax')
  assert [r['neighbour'] for r in rows] == ['c', 'b'] and rows[1]['similarity'] == 0.0  # cosine: d is opposite


def test_bigquery_query_reads_the_top_tracks_with_quoted_identifiers():
  table = bigquery.BigQueryTable.parse('bq://my-project-1.music.listens')
  sql = bigquery_query(table, {'user_name': 'user'}, 100)
  assert 'CAST(`user` AS STRING) AS `user_name`' in sql and 'FROM `my-project-1.music.listens`' in sql
  assert 'ORDER BY COUNT(*) DESC\n  LIMIT 100)' in sql
  with pytest.raises(bigquery.InvalidIdentifier):
    bigquery_query(table, {'user_name': 'x`; DROP'}, 100)
  with pytest.raises(bigquery.InvalidIdentifier):
    bigquery_query(table, {'not_a_column': 'x'}, 100)


def _numpy_softmax_loss(users, items, ids, log_q, temperature):
  users = users / np.linalg.norm(users, axis=1, keepdims=True)
  items = items / np.linalg.norm(items, axis=1, keepdims=True)
  losses = []
  for i in range(len(users)):
    logits = []
    for j in range(len(items)):
      if j != i and ids[j] == ids[i]:
        continue  # the row's own item elsewhere in the batch is no negative
      logits.append((users[i] @ items[j] / temperature - log_q[j], j == i))
    values = np.array([v for v, _ in logits])
    own = [v for v, is_own in logits if is_own][0]
    losses.append(np.log(np.exp(values).sum()) - own)
  return np.array(losses)


def test_sampled_softmax_loss_with_log_q_matches_numpy():
  rng = np.random.default_rng(0)
  users, items = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
  ids = np.array([4, 7, 4, 1, 9])  # item 4 twice: an accidental hit for rows 0 and 2
  log_q = np.log(np.array([0.3, 0.1, 0.3, 0.05, 0.25]))
  expected = _numpy_softmax_loss(users, items, ids, log_q, 0.2)
  got = module.sampled_softmax_loss(tf.constant(users, tf.float32), tf.constant(items, tf.float32),
                                    tf.constant(ids), tf.constant(log_q, tf.float32), 0.2)
  assert float(got) == pytest.approx(expected.mean(), rel=1e-5)
  weights = np.array([1.0, 0.0, 2.0, 1.0, 1.0])
  got = module.sampled_softmax_loss(tf.constant(users, tf.float32), tf.constant(items, tf.float32),
                                    tf.constant(ids), tf.constant(log_q, tf.float32), 0.2,
                                    tf.constant(weights, tf.float32))
  assert float(got) == pytest.approx((expected * weights).sum() / weights.sum(), rel=1e-5)
  # log-Q lowers a popular negative's logit: without the correction the loss differs.
  uncorrected = module.sampled_softmax_loss(tf.constant(users, tf.float32), tf.constant(items, tf.float32),
                                            tf.constant(ids), tf.zeros(5), 0.2)
  assert float(uncorrected) == pytest.approx(_numpy_softmax_loss(users, items, ids, np.zeros(5), 0.2).mean(),
                                             rel=1e-5)
  assert float(uncorrected) != pytest.approx(expected.mean(), rel=1e-3)


def test_track_log_q_is_the_log_share_of_training_pairs():
  np.testing.assert_allclose(module.track_log_q(np.array([0, 0, 0, 2]), 4), np.log([3 / 6, 1 / 6, 1 / 6, 1 / 6]),
                             rtol=1e-6)


def test_catalog_recall_and_ndcg_on_a_hand_made_example():
  # Two users, five tracks. User 0: trained on track 0 (excluded), relevant tracks 1 and 4.
  scores = np.array([[0.9, 0.8, 0.1, 0.7, 0.2],
                     [0.5, 0.4, 0.3, 0.2, 0.1]])
  excluded = np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
  relevant = np.array([[0, 1, 0, 0, 1], [0, 0, 1, 0, 0]], bool)
  out = module.catalog_metrics(scores, excluded, relevant, [1, 2, 4])
  # User 0 ranks tracks 1, 3, 4, 2 (track 0 excluded): hits at ranks 1 and 3; user 1: track 2 at rank 3.
  assert out['catalog_recall_at_1'] == pytest.approx(1 / 3)
  assert out['catalog_recall_at_2'] == pytest.approx(1 / 3)
  assert out['catalog_recall_at_4'] == pytest.approx(1.0)
  assert out['catalog_ndcg_at_1'] == pytest.approx((1.0 + 0.0) / 2)
  ideal_two = 1 + 1 / np.log2(3)
  assert out['catalog_ndcg_at_4'] == pytest.approx(((1 + 1 / np.log2(4)) / ideal_two + (1 / np.log2(4))) / 2)
  # Without the exclusion, user 0's trained track 0 would take rank 1.
  assert module.catalog_metrics(scores, np.zeros_like(excluded), relevant, [1])['catalog_recall_at_1'] == 0.0


def test_rank_scores_per_objective():
  users, items = np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0], [0.6, 0.8]])
  np.testing.assert_allclose(module.rank_scores(users, items, 'softmax'), [[-1.0, 0.6]])
  np.testing.assert_allclose(module.rank_scores(users, items, 'cosine'), [[1.0, 0.6]])


def test_catalog_evaluation_excludes_training_tracks_and_ranks_a_perfect_model_first():
  rng = np.random.default_rng(1)
  tracks = np.linalg.qr(rng.normal(size=(20, 20)))[0]
  users = tracks[[3, 5]] + 0.5 * tracks[[0, 0]]  # both users like track 0 too, but trained on it
  train_pairs = np.array([[0, 0], [1, 0]])
  test_pairs = np.array([[0, 3], [1, 5]])
  users = users / np.linalg.norm(users, axis=1, keepdims=True)
  out = catalog_evaluation(users, tracks, np.arange(20.0)[::-1], train_pairs, test_pairs, [1, 10], seed=0,
                           objective='softmax')
  assert out['two_tower']['catalog_recall_at_1'] == 1.0 and out['two_tower']['catalog_ndcg_at_1'] == 1.0
  # Popularity: track 0 (most popular) excluded, so track 3 is 3rd and track 5 is 5th.
  assert out['popularity']['catalog_recall_at_1'] == 0.0 and out['popularity']['catalog_recall_at_10'] == 1.0
  assert out['popularity']['catalog_ndcg_at_10'] == pytest.approx((1 / np.log2(4) + 1 / np.log2(6)) / 2)


def test_champion_is_the_model_only_when_its_recall_beats_popularity():
  models = {'two_tower': {'recall_at_10': 0.07}, 'popularity': {'recall_at_10': 0.08}, 'random': {'recall_at_10': 0.5}}
  lost = champion_gate.choose(models, 'recall_at_10')
  assert lost.winner == 'popularity' and not lost.model_won  # random is not a candidate
  assert lost.values == {'two_tower': 0.07, 'popularity': 0.08}
  models['two_tower']['recall_at_10'] = 0.09
  assert champion_gate.choose(models, 'recall_at_10').model_won
  models['two_tower']['recall_at_10'] = 0.08  # a tie is no win
  assert not champion_gate.choose(models, 'recall_at_10').model_won


def test_popularity_top_k_leaves_out_training_tracks_and_unknown_users():
  train = [('u1', 'a', 5.0), ('u2', 'a', 4.0), ('u2', 'b', 3.0), ('u1', 'c', 1.0), ('u3', 'd', 2.0)]
  # Training listens: a 9, b 3, d 2, c 1.
  out = recommendations.popularity_top_k(['u1', 'u2', 'zz'], {'u1', 'u2', 'u3'}, train, 2, True)
  assert out[0] == ('u1', False, [('b', 3.0), ('d', 2.0)])
  assert out[1] == ('u2', False, [('d', 2.0), ('c', 1.0)])
  assert out[2][:2] == ('zz', True)
  assert recommendations.popularity_top_k(['u1'], {'u1'}, train, 2, False)[0][2] == [('a', 9.0), ('b', 3.0)]


def _two_taste_pairs(rng, users, tracks_per_taste, per_user):
  """Users 0..users-1 of two tastes (even: tracks 0..n-1, odd: n..2n-1); track 0 of each taste is very popular."""
  rows = []
  for user in range(users):
    taste = user % 2
    weights = np.ones(tracks_per_taste)
    weights[0] = 5.0
    for track in rng.choice(tracks_per_taste, per_user, replace=False, p=weights / weights.sum()):
      rows.append((user, taste * tracks_per_taste + track))
  return np.array(rows)


def test_softmax_towers_learn_tastes_that_popularity_cannot_see():
  class Sizes:
    users, tracks, artists, tags = 40, 20, 1, 1
  rng = np.random.default_rng(0)
  pairs = _two_taste_pairs(rng, 40, 10, 6)
  held_out = np.zeros(len(pairs), bool)
  held_out[::6] = True  # one pair per user held out
  def columns(rows):
    n = len(rows)
    return {module.USER_INDEX: rows[:, 0], module.TRACK_INDEX: rows[:, 1], module.ARTIST_INDEX: np.zeros(n, np.int64),
            module.TAG_INDEX: np.zeros((n, 2), np.int64), module.USER_TAG_SHARES: np.zeros((n, 1), np.float32),
            module.LABEL: np.ones(n, np.float32), module.WEIGHT: np.ones(n, np.float32),
            module.COUNT: np.full(n, 3.0, np.float32)}
  train, test = columns(pairs[~held_out]), columns(pairs[held_out])
  config = {'seed': 1, 'objective': 'softmax', 'max_tags': 2, 'embedding_dim': 8, 'tower_units': '', 'output_dim': 8,
            'embedding_l2': 0.0, 'learning_rate': 0.05, 'batch_size': 32, 'epochs': 30, 'temperature': 0.2}
  user_tower, item_tower, model = module.fit_towers(train, test, Sizes(), config, verbose=0)
  users, tracks = module.tower_vectors(user_tower, item_tower, train, Sizes())
  np.testing.assert_allclose(np.linalg.norm(tracks, axis=1), 1.0, rtol=1e-5)
  popularity = np.bincount(train[module.TRACK_INDEX], minlength=20).astype(float)
  out = catalog_evaluation(users, tracks, popularity, pairs[~held_out], pairs[held_out], [5], seed=0,
                           objective='softmax')
  # Half of each user's top 5 by popularity is the other taste's; the towers keep to the user's own taste.
  assert out['two_tower']['catalog_recall_at_5'] > out['popularity']['catalog_recall_at_5'] + 0.2
  # The pair model (serving_default's) gives a probability.
  probability = model.predict({k: v[:1] for k, v in test.items()}, verbose=0)
  assert 0 < float(probability[0, 0]) < 1
