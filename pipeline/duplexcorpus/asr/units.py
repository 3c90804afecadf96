"""Contract units: the aligner's words (dicts with `word`, `start`, `end`, `score`) -> the rows
`words.parquet` promises: one English word, one Mandarin (Han) character, or one number each.

Whisper's tokens on a Mandarin clip are often several characters ('时间', '只是') and carry the
punctuation it wrote ('呃。', '首先,'); an English word inside Mandarin can come as several BPE pieces
('D', 'esp', 'ac', 'ito'). `contract_units` makes every row one unit:

- full-width and compatibility forms are NFKC-normalised ('２０２３' -> '2023', 'ＡＢＣ' -> 'ABC');
- punctuation never sits inside a word: it becomes the `punct` of the unit before it (the segment text
  keeps it that way); punctuation before the first unit of a clip is dropped;
- each Han character is its own row, language "zh";
- a Latin word (letters, digits, inner apostrophes/hyphens) is one row, language "en"; pieces of one
  Latin word that the tokenizer cut apart are joined again (with the clip's text: no space between
  them there; without the text the pieces stay apart: a time gap or a lower-case start cannot tell
  a cut word from two words, and gluing "he must be home" into one row is worse);
- a number ('2023', '3.5', '10%') is one row with its time, language of the clip;
- a token holding several units has no timing inside it (cross-attention gives one span per token):
  its span is divided by the units' spoken length (a Han character or a digit one syllable, a Latin
  word by its letters) and those units are flagged `interpolated`; the caller's timing then moves
  the boundaries between them to the energy dips (`timing.snap_joins`).

Words of a clip in another language than Mandarin are left exactly as they are (English rows keep
their text, punctuation included) unless they hold Han characters.
"""
from __future__ import annotations

import re
import unicodedata

HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_HAN_RE = re.compile(rf"[{HAN}]")
_NUMBER = r"[0-9]+(?:[.,:][0-9]+)*%?"
_LETTER = r"[A-Za-z\u00c0-\u024f]"  # Latin letters (accented ones too)
_LATIN = rf"{_LETTER}+(?:['’\-]{_LETTER}+)*"
# a Latin word may hold digits ("MP3", "4G"); a number is digits alone
_PIECE = re.compile(rf"(?P<han>[{HAN}])|(?P<word>[0-9]*{_LATIN}(?:[0-9]|{_LATIN})*|{_NUMBER})|(?P<other>\S)")


def has_han(text: str) -> bool:
    return bool(_HAN_RE.search(text))


def _is_punct(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "PS"


def pieces(text: str, language: str) -> list[tuple[str, str, str]]:
    """(unit, language, punctuation after it) of one token's text, NFKC-normalised. A leading
    punctuation mark (nothing before it in the token) comes back as unit "" to attach upstream."""
    text = unicodedata.normalize("NFKC", text)
    out: list[list[str]] = []
    for m in _PIECE.finditer(text):
        tok = m.group(0)
        if m.group("han"):
            out.append([tok, "zh", ""])
        elif m.group("word"):
            lang = "en" if re.search(_LETTER, tok) else language
            out.append([tok, lang, ""])
        elif _is_punct(tok) or not tok.strip():
            if not out:
                out.append(["", language, ""])
            out[-1][2] += tok
        else:  # another script (kana, hangul...): one unit per character
            out.append([tok, language, ""])
    return [(u, lang, p) for u, lang, p in out]


def _syllables(unit: str) -> float:
    if _HAN_RE.fullmatch(unit):
        return 1.0
    if re.fullmatch(_NUMBER, unit):
        return float(max(1, sum(ch.isdigit() for ch in unit)))
    return max(1.0, len(unit) / 3.0)


def _joins(prev: dict, piece: str, start, gaps_text: list[bool] | None, k: int) -> bool:
    """Does Latin `piece` continue the Latin unit `prev` (one word the tokenizer cut)?"""
    if not prev or prev.get("language") != "en" or prev.get("punct") or not piece:
        return False
    if not re.match(rf"{_LETTER}|[0-9]", piece) or not re.search(rf"{_LETTER}$|[0-9]$", prev["word"]):
        return False
    # without the clip's text nothing tells "he"+"must" (two words) from "esp"+"ac" (one cut word):
    # the pieces stay apart rather than glue an English sentence into one row
    return gaps_text is not None and not gaps_text[k]


def _space_before(words: list[dict], text: str) -> list[bool]:
    """For each word, does a new word start with it in `text` (whitespace or punctuation before it,
    the first word, or a word not found there)?"""
    text = unicodedata.normalize("NFKC", text)
    words_n = [unicodedata.normalize("NFKC", w["word"]).strip() for w in words]
    out, pos = [], 0
    for wd in words_n:
        i = text.find(wd, pos) if wd else pos
        if i < 0:  # not in the text (another spelling): a new word
            out.append(True)
            continue
        between = text[pos:i]
        out.append(pos == 0 or any(ch.isspace() for ch in between) or bool(between.strip()))
        pos = i + len(wd)
    return out


def contract_units(words: list[dict], language: str, text: str | None = None) -> list[dict]:
    """The aligner's words of one clip (in order) -> contract rows: dicts with the input's keys and
    `word`, `start`, `end`, `score`, `language` (per unit), `punct` (the punctuation written after
    it, or None) and `split` (True where its time is a share of a longer token's span). `text`: the
    clip's text the words came from (tells which Latin pieces were one word)."""
    zh = language == "zh"
    gaps = _space_before(words, text) if (text and zh) else None
    out: list[dict] = []
    for k, w in enumerate(words):
        if not zh and not has_han(w["word"]):
            out.append(dict(w, language=language, punct=None, split=False))
            continue
        units = pieces(w["word"], language)
        if units and units[0][0] == "":  # punctuation before the first unit: the previous unit's
            if out and units[0][2]:
                out[-1]["punct"] = (out[-1]["punct"] or "") + units[0][2]
            units = units[1:]
        if not units:
            continue
        s, e = w["start"], w["end"]
        n = len(units)
        weights = [_syllables(u) for u, _, _ in units]
        edges = [sum(weights[:i]) / sum(weights) for i in range(n + 1)]
        for i, (unit, lang, punct) in enumerate(units):
            a, b = s, e
            if n > 1 and s is not None and e is not None:
                a, b = s + (e - s) * edges[i], s + (e - s) * edges[i + 1]
            if i == 0 and lang == "en" and _joins(out[-1] if out else None, unit, a, gaps, k):
                prev = out[-1]  # a Latin piece continuing the previous word (cut by the tokenizer)
                prev["word"] += unit
                prev["punct"] = punct or None
                if b is not None and prev["end"] is not None:
                    prev["end"] = max(prev["end"], b)
                elif prev["end"] is not None:  # one piece unplaced: the joined word is too
                    prev.update(start=None, end=None)
                prev["score"] = min(prev["score"], w["score"])
                prev["split"] = prev["split"] or n > 1
                continue
            out.append(dict(w, word=unit, start=a, end=b, language=lang, punct=punct or None, split=n > 1))
    return out
