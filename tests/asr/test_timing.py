"""Word timing on hand-made words and energies (8 ms frames): each step of `place_words` alone,
then the whole chain from clip time back to recording time. No model."""
from __future__ import annotations

import numpy as np

from duplexcorpus.asr.plan import ClipPlan
from duplexcorpus.asr.timing import (HOP_S, RATE, clamp_to_spans, extend_ends, interpolate, place_words,
                                     recording_words, snap_joins)


def w(word: str, start: float | None, end: float | None, score: float = 0.9) -> dict:
    return {"word": word, "start": start, "end": end, "score": score}


def times(words: list[dict]) -> list[tuple[str, float, float]]:
    return [(x["word"], round(x["start"], 6), round(x["end"], 6)) for x in words]


def loud_between(n: int, *ranges: tuple[int, int], quiet: float = -60.0, loud: float = 0.0) -> np.ndarray:
    """An energy track of n frames, `loud` dB in the given frame ranges [a, b), `quiet` elsewhere."""
    e = np.full(n, quiet)
    for a, b in ranges:
        e[a:b] = loud
    return e


# ------------------------------------------------------------------------------------ interpolate
def test_interpolate_spreads_a_run_between_its_neighbours_by_length():
    words = [w("ab", 0.0, 0.5), w("c", None, None), w("def", None, None), w("g", 1.3, 1.5)]
    out = interpolate(words, [(0.0, 2.0)])
    # 0.8 s between the neighbours, 1 : 3 characters
    assert times(out) == [("ab", 0.0, 0.5), ("c", 0.5, 0.7), ("def", 0.7, 1.3), ("g", 1.3, 1.5)]
    assert [x.get("interpolated") for x in out] == [None, True, True, None]


def test_interpolate_a_leading_run_starts_at_the_ipu_of_the_next_word():
    out = interpolate([w("x", None, None), w("y", 1.2, 1.5)], [(0.0, 0.5), (1.0, 2.0)])
    assert times(out) == [("x", 1.0, 1.2), ("y", 1.2, 1.5)]


def test_interpolate_a_trailing_run_ends_with_the_ipu_of_the_previous_word():
    out = interpolate([w("x", 0.1, 0.3), w("yy", None, None)], [(0.0, 0.5), (1.0, 2.0)])
    assert times(out) == [("x", 0.1, 0.3), ("yy", 0.3, 0.5)]


def test_interpolate_with_nothing_placed_uses_all_the_spans():
    out = interpolate([w("a", None, None), w("b", None, None)], [(1.0, 1.5), (2.0, 3.0)])
    assert times(out) == [("a", 1.0, 2.0), ("b", 2.0, 3.0)]


def test_interpolate_gives_a_run_without_room_ten_ms_per_word():
    out = interpolate([w("a", 0.0, 0.5), w("b", None, None), w("c", None, None), w("d", 0.5, 0.6)], [(0.0, 1.0)])
    assert times(out) == [("a", 0.0, 0.5), ("b", 0.5, 0.51), ("c", 0.51, 0.52), ("d", 0.5, 0.6)]


# ------------------------------------------------------------------------------------ clamp
def test_clamp_to_spans_moves_each_word_into_its_nearest_ipu():
    spans = [(0.0, 0.5), (1.0, 2.0)]
    out = clamp_to_spans([w("over", 0.45, 0.6), w("gap", 0.7, 0.72), w("late", 1.9, 2.3)], spans, 0.02)
    # "gap" lands on the edge of the first IPU and keeps min_word of length
    assert times(out) == [("over", 0.45, 0.5), ("gap", 0.48, 0.5), ("late", 1.9, 2.0)]


def test_clamp_to_spans_a_word_never_outgrows_a_tiny_ipu():
    out = clamp_to_spans([w("a", 0.0, 0.1)], [(0.05, 0.06)], 0.02)
    assert times(out) == [("a", 0.05, 0.06)]


# ------------------------------------------------------------------------------------ joins, ends
def test_snap_joins_moves_a_shared_boundary_to_the_energy_dip():
    energy = np.zeros(125)
    energy[50] = -40.0  # the dip at 0.4 s
    words = [w("a", 0.1, 48 * HOP_S), w("b", 48 * HOP_S, 0.7)]
    snap_joins(words, energy, 0.0)
    assert times(words) == [("a", 0.1, 0.4), ("b", 0.4, 0.7)]


def test_snap_joins_leaves_words_that_do_not_touch():
    energy = np.zeros(125)
    energy[50] = -40.0
    words = [w("a", 0.1, 0.36), w("b", 0.38, 0.7)]  # 20 ms apart: a pause, not a join
    snap_joins(words, energy, 0.0)
    assert times(words) == [("a", 0.1, 0.36), ("b", 0.38, 0.7)]


def test_snap_joins_leaves_each_word_at_least_min_word():
    energy = np.zeros(125)
    energy[21] = -40.0  # the dip 8 ms after the first word's start: it would leave it 8 ms long
    words = [w("a", 20 * HOP_S, 26 * HOP_S), w("b", 26 * HOP_S, 0.7)]
    snap_joins(words, energy, 0.0, min_word=0.02)
    assert words[0]["end"] - words[0]["start"] >= 0.02 - 1e-9
    assert words[0]["end"] == words[1]["start"]
    snap_joins(plain := [w("a", 20 * HOP_S, 26 * HOP_S), w("b", 26 * HOP_S, 0.7)], energy, 0.0)
    assert plain[0]["end"] == 21 * HOP_S  # without min_word: the dip wins


def test_an_unplaced_word_between_touching_words_gets_time_from_them():
    words = [w("以", 0.2, 0.5), w("看", None, None), w("到", 0.5, 0.66)]
    out = interpolate(words, [(0.0, 1.0)], min_word=0.02)
    assert [x["interpolated"] for x in out if "interpolated" in x] == [True]
    starts, ends = [x["start"] for x in out], [x["end"] for x in out]
    assert all(b >= a - 1e-9 for a, b in zip(ends, starts[1:]))  # in order, no overlap
    assert ends[1] - starts[1] >= 0.02 - 1e-9 and ends[0] - starts[0] >= 0.02 and ends[2] - starts[2] >= 0.02
    assert clamp_to_spans(out, [(0.0, 1.0)], 0.02) == out  # nothing left for clamping to stretch


def test_extend_ends_carries_an_end_through_speech_to_a_real_pause():
    loud = np.zeros(125, bool)
    loud[10:38] = True  # speech to 0.304 s ...
    loud[44:50] = True  # ... a 48 ms gap (not a pause), more speech to 0.4 s, then silence
    words = [w("a", 0.1, 0.2), w("b", 0.8, 0.9)]
    extend_ends(words, [(0.0, 1.0)], loud, 0.0)
    assert times(words) == [("a", 0.1, 0.4), ("b", 0.8, 0.9)]


def test_extend_ends_stops_at_the_next_word_and_at_the_ipu_end():
    loud = np.ones(125, bool)
    words = [w("a", 0.1, 0.2), w("b", 0.32, 0.4)]
    extend_ends(words, [(0.0, 0.6)], loud, 0.0)
    assert times(words) == [("a", 0.1, 0.32), ("b", 0.32, 0.6)]


# ------------------------------------------------------------------------------------ place_words
def test_place_words_snaps_to_the_loud_frames_inside_the_ipu():
    energy = loud_between(125, (25, 75))  # speech 0.2 .. 0.6 s
    out = place_words([w("word", 0.1, 0.7)], [(0.05, 0.9)], energy, 0.0, -30.0, 0.02)
    assert times(out) == [("word", 0.2, 0.6)]
    assert out[0]["interpolated"] is False and out[0]["score"] == 0.9


def test_place_words_keeps_a_word_inside_the_ipu_it_overlaps_most():
    energy = np.zeros(250)  # loud everywhere: only the IPU edges cut
    out = place_words([w("a", 0.9, 1.4)], [(0.0, 1.0), (1.1, 1.8)], energy, 0.0, -30.0, 0.02)
    assert times(out) == [("a", 1.1, 1.8)]  # the end carried through the speech to the IPU end


def test_place_words_interpolates_collapsed_and_overtaken_words():
    energy = loud_between(125, (12, 50), (62, 100))  # speech 0.096 .. 0.4 and 0.496 .. 0.8 s
    words = [w("one", 0.1, 0.4), w("x", 0.2, 0.21), w("three", 0.3, 0.41), w("four", 0.5, 0.8)]
    out = place_words(words, [(0.0, 1.0)], energy, 0.0, -30.0, 0.02)
    # "x" collapsed below min_word; "three" is cut to the loud frames, then starts where "one" ends
    # and is left with nothing: both share the pause by length (1 : 5 characters), and "x" is then
    # given min_word of length
    assert [x["interpolated"] for x in out] == [False, True, True, False]
    assert times(out) == [("one", 0.1, 0.4), ("x", 0.4, 0.42), ("three", 0.416667, 0.5), ("four", 0.5, 0.8)]


def test_place_words_times_every_word_even_without_any_alignment():
    out = place_words([w("a", None, None), w("bb", None, None)], [(1.0, 1.3)], np.zeros(200), 0.0, -30.0, 0.02)
    assert times(out) == [("a", 1.0, 1.1), ("bb", 1.1, 1.3)]
    assert all(x["interpolated"] for x in out)


# ------------------------------------------------------------------------------------ to recording
def test_recording_words_places_in_clip_time_and_maps_back_through_the_packing():
    pad, gap = 0.1, 0.3
    plan = ClipPlan(0, 1, 9.9, 20.5, [(10.0, 10.5), (20.0, 20.4)], "en", None, packed=True)
    # clip: [0, 0.7) is 9.9 .. 10.6, a 0.3 s gap, [1.0, 1.6) is 19.9 .. 20.5; speech where the IPUs are
    audio = np.zeros(int(1.6 * RATE), np.float32)
    audio[int(0.1 * RATE): int(0.6 * RATE)] = 0.1
    audio[int(1.1 * RATE): int(1.5 * RATE)] = 0.1
    words = [w("hello", 0.05, 0.62, 0.8), w("world", 1.02, 1.55, 0.7)]
    out = recording_words(plan, audio, -60.0, "en", words, "asr", pad=pad, gap=gap, snap_floor_db=6.0, min_word=0.02)
    assert out == [
        {"channel": 1, "language": "en", "source": "asr", "word": "hello", "start": 10.0, "end": 10.5,
         "score": 0.8, "interpolated": False},
        {"channel": 1, "language": "en", "source": "asr", "word": "world", "start": 20.0, "end": 20.4,
         "score": 0.7, "interpolated": False},
    ]
    assert list(out[0]) == ["channel", "language", "source", "word", "start", "end", "score", "interpolated"]


def test_recording_words_of_nothing_is_nothing():
    plan = ClipPlan(0, 0, 0.0, 1.0, [(0.1, 0.9)], "en", None)
    assert recording_words(plan, np.zeros(RATE, np.float32), -60.0, "en", [], "asr", pad=0.1, gap=0.3,
                           snap_floor_db=6.0, min_word=0.02) == []
