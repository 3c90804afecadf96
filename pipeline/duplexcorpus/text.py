"""Text rules shared by ASR, transcript import, lexical events and scoring (en and zh).

- `units`: what a transcript is measured in: English words, Mandarin characters (code-switched text
  gives both: Latin runs are words, CJK characters count one by one);
- `error_rate`: WER/CER with jiwer on normalised units;
- lexicons of fillers and backchannels (Full-Duplex-Bench-style listener tokens), and the
  hallucination phrases Whisper is known to emit on silence, noise or music;
- `repetition_loop`: a decoder stuck repeating an n-gram.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNIT = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_PUNCT = re.compile(r"[^\w\s'" + _CJK + "]")

FILLERS = {
    "en": {"uh", "um", "umm", "uhm", "er", "erm", "ah", "hmm", "hm", "mm", "mmm", "eh"},
    "zh": {"嗯", "呃", "啊", "额", "哦", "噢", "唔", "那个", "这个", "就是"},
}
BACKCHANNELS = {
    "en": {"yeah", "yes", "yep", "uh-huh", "uh", "huh", "mm-hmm", "mhm", "mm", "hmm", "right", "okay", "ok",
           "sure", "i", "see", "oh", "wow", "really", "nice", "true", "exactly", "cool", "alright", "got", "it",
           "mmhmm", "mm-hm", "uhhuh", "hm", "ah"},
    "zh": {"嗯", "对", "是", "好", "哦", "噢", "啊", "呃", "行", "嗯嗯", "对对", "是的", "对的", "好的", "没错", "真的", "哇", "嗯哼"},
}
# Whole-segment outputs Whisper produces on silence/noise/music (from community reports on
# Whisper's training data: subtitle credits, channel outros). Matched after normalisation.
HALLUCINATIONS = {
    "en": {"thank you for watching", "thanks for watching", "please subscribe", "subscribe to my channel",
           "thank you so much for watching", "like and subscribe", "see you next time", "see you in the next video",
           "subtitles by the amara org community", "transcribed by", "translated by", "music", "applause",
           "silence", "thank you", "bye", "you"},
    "zh": {"请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", "请不吝点赞订阅转发打赏支持明镜与点点栏目", "字幕由amara org社区提供",
           "谢谢观看", "感谢观看", "谢谢大家", "优优独播剧场 youku originals", "中文字幕", "字幕", "字幕by索兰娅",
           "明镜与点点栏目", "点赞订阅转发打赏", "点赞订阅转发", "请点赞订阅转发", "谢谢"},
}
# phrases that are hallucinations only when the audio is weak evidence (short or low confidence)
WEAK_ONLY = {"thank you", "bye", "you", "谢谢", "字幕"}


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def normalise(text: str) -> str:
    """Lower case, simplified Chinese, no punctuation (apostrophes and hyphens kept in words)."""
    text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text).lower().replace("-", " ")
    return re.sub(r"\s+", " ", _PUNCT.sub(" ", text)).strip()


# spellings of one listener token that should not count as recognition errors
CANONICAL = {"mhm": "mm hmm", "mmhmm": "mm hmm", "mmhm": "mm hmm", "mm hm": "mm hmm", "uhhuh": "uh huh",
             "uhuh": "uh huh", "ok": "okay", "yeah yeah": "yeah yeah"}


def units(text: str) -> list[str]:
    """English words and Mandarin characters of a (normalised) text."""
    out: list[str] = []
    for tok in _UNIT.findall(normalise(text)):
        out += CANONICAL.get(tok, tok).split()
    return out


def is_cjk(token: str) -> bool:
    return bool(re.fullmatch(rf"[{_CJK}]+", token))


def error_rate(reference: str | list[str], hypothesis: str | list[str]) -> dict:
    """Unit error rate (WER for words, CER for characters; mixed text counts both as units)."""
    import jiwer

    ref = units(reference) if isinstance(reference, str) else list(reference)
    hyp = units(hypothesis) if isinstance(hypothesis, str) else list(hypothesis)
    if not ref:
        return {"rate": float(len(hyp) > 0), "errors": len(hyp), "units": 0}
    out = jiwer.process_words(" ".join(ref), " ".join(hyp) if hyp else "")
    errors = out.substitutions + out.deletions + out.insertions
    return {"rate": errors / len(ref), "errors": errors, "units": len(ref),
            "substitutions": out.substitutions, "deletions": out.deletions, "insertions": out.insertions}


def lexicon_language(token: str) -> str:
    return "zh" if is_cjk(token) else "en"


def is_filler(token: str) -> bool:
    t = normalise(token)
    return t in FILLERS[lexicon_language(t)] if t else False


def is_backchannel_text(text: str, max_units: int = 3) -> bool:
    """At most `max_units` units, every one a listener token (Full-Duplex-Bench rule, bilingual)."""
    toks = units(text)
    if not toks or len(toks) > max_units:
        return False
    joined = normalise(text).replace(" ", "")
    if joined in BACKCHANNELS["zh"]:
        return True
    return all(t in BACKCHANNELS[lexicon_language(t)] or t in FILLERS[lexicon_language(t)] for t in toks)


def hallucination_phrase(text: str, language: str, weak: bool) -> str | None:
    """The known hallucination `text` is (whole segment), or None."""
    t = normalise(text)
    compact = t.replace(" ", "")
    for phrase in HALLUCINATIONS.get(language, set()) | HALLUCINATIONS["en"]:
        if t == phrase or (language == "zh" and compact == phrase.replace(" ", "")):
            if phrase in WEAK_ONLY and not weak:
                continue
            return phrase
    return None


def repetition_loop(tokens: list[str], max_ngram: int = 4, min_repeats: int = 4) -> tuple[int, int] | None:
    """(start, length) of the first n-gram repeated back to back `min_repeats`+ times, else None."""
    n_tok = len(tokens)
    for n in range(1, max_ngram + 1):
        for i in range(0, n_tok - n * min_repeats + 1):
            gram = tokens[i:i + n]
            reps = 1
            while tokens[i + reps * n: i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= min_repeats:
                return i, n
    return None


def join_text(words: list[str]) -> str:
    """Words back into text: spaces between Latin words, none around CJK characters."""
    out = ""
    for w in words:
        if out and not (is_cjk(w[:1]) or is_cjk(out[-1:])):
            out += " "
        out += w
    return out


_ZH_DIGITS = "零一二三四五六七八九"


def spell_digits_zh(text: str) -> str:
    """Each digit (ASCII or full-width) as its Chinese digit: '2023' -> '二零二三'."""
    text = re.sub(r"[０-９]", lambda m: unicodedata.normalize("NFKC", m.group()), text)
    return re.sub(r"[0-9]", lambda m: _ZH_DIGITS[int(m.group())], text)


def cer_units(text: str) -> list[str]:
    """Units for Mandarin CER as the real-data dev set scores it: traditional -> simplified, no
    punctuation, Latin lower case, digits spelled as Chinese digits; Han characters one by one and
    whole English words (no listener-token canonicalisation, unlike `units`)."""
    return _UNIT.findall(normalise(spell_digits_zh(unicodedata.normalize("NFKC", text))))


def mandarin_cer(reference: str, hypothesis: str) -> dict:
    """CER over Han characters plus whole English words (`cer_units`), as `error_rate` reports it."""
    return error_rate(cer_units(reference), cer_units(hypothesis))


def join_words(words) -> str:
    """Word rows (dicts, or records with `word`) back into text with the punctuation written after
    each (`punct`, words table 1.3.0): '你好' + '。' -> '你好。' (what a segment's text should hold)."""
    def get(w, key):
        return w.get(key) if isinstance(w, dict) else getattr(w, key, None)

    return join_text([get(w, "word") + (get(w, "punct") or "") for w in words])
