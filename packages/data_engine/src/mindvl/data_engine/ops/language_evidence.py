"""Evidence about a text's language besides the statistical model: scripts and words.

* **Script.** ``language_priors.json`` names the Unicode script of a language's letters;
  a language is possible only if enough of the text's letters are in its script, and, for
  a language with a listed alphabet, none of the text's letters in that script is outside
  it (Cyrillic-script languages differ by a few letters: і, ї, ў, қ, ғ, ҳ, ...).
* **Function words** of a few Latin-script languages (closed-class words only), for the
  short-text prior of :mod:`.language_id`.
* **Word lists.** For a language with a shipped word list (``english_words.txt.gz``: SCOWL's
  American and British lists, built by ``bench/english_lexicon.py``), the share of the
  text's words found in it. A short text in another Latin-script language is made of words
  no English dictionary has ("Cabadaich", "Feeshanyn"), which a character n-gram model
  trained on sentences cannot tell from rare English words.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from importlib.resources import files

LATIN = "LATIN"
DATA = files("mindvl.data_engine.ops") / "data"
WORD_LISTS = {"en": "english_words.txt.gz"}
NON_WORD = re.compile(r"[\W\d_]+", re.UNICODE)
LETTER_RUN = re.compile(r"[^\W\d_]+", re.UNICODE)


def _load_priors() -> tuple[dict[str, str], dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    raw = json.loads((DATA / "language_priors.json").read_text(encoding="utf-8"))
    scripts = {lang: script for script, langs in raw["scripts"].items() for lang in langs.split()}
    words = {lang: frozenset(ws.split()) for lang, ws in raw["function_words"].items()}
    alphabets = {lang: frozenset(letters) for lang, letters in raw["alphabets"].items()}
    return scripts, words, alphabets


SCRIPTS, FUNCTION_WORDS, ALPHABETS = _load_priors()


def normalise(text: str) -> str:
    """Lowercased words only: no punctuation, digits or underscores."""
    return " ".join(NON_WORD.sub(" ", text.lower()).split())


def script_of(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    if not name:
        return None
    first = name.split()[0]
    if first == "CJK":
        return "HAN"
    if first in ("HIRAGANA", "KATAKANA"):
        return "KANA"
    return first


def script_shares(text: str) -> Counter:
    counts = Counter(script_of(ch) for ch in text if ch.isalpha())
    total = sum(counts.values()) or 1
    return Counter({k: v / total for k, v in counts.items()})


def script_allows(lang: str, shares: Counter) -> bool:
    """At least half of the letters in the language's script. Japanese counts kana and Han
    (a short Japanese label is often all Han, so the model decides between ja and zh);
    Chinese is Han with no kana."""
    script = SCRIPTS.get(lang)
    if script is None or not shares:
        return True
    if script == "JAPANESE":
        return shares["KANA"] + shares["HAN"] >= 0.5
    if script == "HAN":
        return shares["HAN"] >= 0.5 and shares["KANA"] == 0
    return shares[script] >= 0.5


def alphabet_allows(lang: str, text: str) -> bool:
    """No letter of the language's script outside its alphabet (languages with a listed
    alphabet only): "Қосымша" (Kazakh) is not Russian, whatever its n-grams say."""
    alphabet = ALPHABETS.get(lang)
    if alphabet is None:
        return True
    script = SCRIPTS[lang]
    return all(ch in alphabet for ch in text.lower() if ch.isalpha() and script_of(ch) == script)


@lru_cache(maxsize=len(WORD_LISTS))
def word_list(lang: str) -> frozenset[str]:
    """The shipped word list of ``lang`` (lowercased), loaded once per process."""
    text = gzip.decompress((DATA / WORD_LISTS[lang]).read_bytes()).decode("utf-8")
    return frozenset(w for w in text.splitlines() if w and not w.startswith("#"))


def known_share(text: str, lang: str) -> float | None:
    """Share of the text's words (letter runs) in ``lang``'s word list; None without a
    list for ``lang`` or without words."""
    if lang not in WORD_LISTS:
        return None
    words = [w.lower() for w in LETTER_RUN.findall(text)]
    if not words:
        return None
    known = word_list(lang)
    return sum(w in known for w in words) / len(words)
