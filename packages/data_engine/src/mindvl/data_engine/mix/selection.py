"""Which samples a stage takes from each category, and how many times.

Every sample gets a rank from a keyed hash of ``(seed, key)``; a category (or, with
``mixture.source_targets``, each source inside it) is consumed from the top of that ranking,
so the choice depends only on the seed and the set of keys, never on input order or
partitioning. A stream that runs dry continues with whole extra passes over the same
ranking (repeat ``r`` of ``key`` becomes ``{key}-r{r}``) up to ``max_repeat`` copies per
sample. Categories are drawn by weighted fair queueing on the unit (samples or tokens):
the next pick goes to the category whose share would stay furthest behind its target, so
every category ends within about one sample of its target. A stream that is still needed
after its last allowed copy is a shortfall: ``fail`` raises a one-line error,
``rebalance`` retires it and lets the others keep their relative ratios.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from mindvl.common.errors import UserError
from mindvl.common.recipe import MixtureSpec


@dataclass(frozen=True)
class Item:
    """What selection needs to know about one kept sample."""

    key: str
    source: str
    category: str
    image_tokens: int
    text_tokens: int

    @property
    def tokens(self) -> int:
        return self.image_tokens + self.text_tokens


@dataclass(frozen=True)
class Pick:
    """One selected copy of an item; ``repeat`` 0 is the original."""

    item: Item
    repeat: int = 0

    @property
    def key(self) -> str:
        return self.item.key if self.repeat == 0 else f"{self.item.key}-r{self.repeat}"

    @property
    def origin_key(self) -> str | None:
        return None if self.repeat == 0 else self.item.key


def rank_key(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).digest()


def ranked(items: list[Item], seed: int) -> list[Item]:
    return sorted(items, key=lambda it: (rank_key(seed, it.key), it.key))


class ShortfallError(UserError):
    pass


@dataclass
class _Stream:
    """Ranked items of one source or category, with up to ``max_repeat`` copies each."""

    label: str
    items: list[Item]
    max_repeat: float
    pos: int = 0

    @property
    def capacity(self) -> int:
        return math.floor(len(self.items) * self.max_repeat + 1e-9)

    def peek(self) -> Pick | None:
        if self.pos >= self.capacity or not self.items:
            return None
        n = len(self.items)
        return Pick(self.items[self.pos % n], self.pos // n)

    def take(self) -> Pick:
        pick = self.peek()
        assert pick is not None
        self.pos += 1
        return pick


def fair_choice(
    names: list[str], consumed: dict[str, float], weight: dict[str, float], nxt: dict[str, float]
) -> str:
    """Weighted fair queueing: the name whose finish time ``(consumed+next)/weight`` is least."""
    return min(names, key=lambda n: ((consumed[n] + nxt[n]) / weight[n], n))


@dataclass
class _Merged:
    """A fair merge of child streams by weight; exhausted children fail or are retired."""

    label: str
    children: dict[str, _Stream | _Merged]
    weight: dict[str, float]
    amount: Callable[[Item], float]
    on_shortfall: Callable[[str, str], None]  # (label, child) -> raise or record
    consumed: dict[str, float] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)
    _next: str | None = None

    def __post_init__(self) -> None:
        self.consumed = {n: 0.0 for n in self.children}

    def _estimate(self, name: str) -> float:
        child = self.children[name]
        pick = child.peek()
        if pick is not None:
            return self.amount(pick.item)
        items = _all_items(child)
        return sum(self.amount(i) for i in items) / len(items) if items else 1.0

    def _choose(self) -> str | None:
        while True:
            names = [
                n for n in self.children if self.weight.get(n, 0) > 0 and n not in self.retired
            ]
            if not names:
                return None
            nxt = {n: self._estimate(n) for n in names}
            name = fair_choice(names, self.consumed, self.weight, nxt)
            if self.children[name].peek() is not None:
                return name
            self.on_shortfall(self.label, name)  # raises in "fail" mode
            self.retired.add(name)

    def peek(self) -> Pick | None:
        if self._next is None:
            self._next = self._choose()
        return None if self._next is None else self.children[self._next].peek()

    def take(self) -> Pick:
        if self.peek() is None:
            raise AssertionError("take from an exhausted stream")
        name = self._next
        assert name is not None
        pick = self.children[name].take()
        self.consumed[name] += self.amount(pick.item)
        self._next = None
        return pick


def _all_items(s: _Stream | _Merged) -> list[Item]:
    if isinstance(s, _Stream):
        return s.items
    return [i for c in s.children.values() for i in _all_items(c)]


@dataclass
class Selection:
    picks: dict[str, list[Pick]]  # category -> picks in draw order
    rebalanced: bool
    available: dict[str, list[Item]]  # category -> every kept item


def select(items: list[Item], spec: MixtureSpec, seed: int) -> Selection:
    """Draw the stage's picks per category (see the module docstring)."""
    by_cat: dict[str, list[Item]] = {}
    for it in items:
        by_cat.setdefault(it.category, []).append(it)
    tokens_unit = spec.unit == "tokens"

    def amount(it: Item) -> float:
        return float(it.tokens) if tokens_unit else 1.0

    state = {"rebalanced": False}

    def shortfall(label: str, child: str) -> None:
        if spec.shortfall == "rebalance":
            state["rebalanced"] = True
            return
        raise ShortfallError(_shortfall_message(label, child, by_cat, spec))

    categories: dict[str, _Stream | _Merged] = {}
    for cat in sorted(by_cat):
        cat_items = by_cat[cat]
        fractions = spec.source_targets.get(cat)
        if fractions:
            children: dict[str, _Stream | _Merged] = {
                src: _Stream(
                    src, ranked([i for i in cat_items if i.source == src], seed), spec.max_repeat
                )
                for src in sorted(fractions)
            }
            categories[cat] = _Merged(cat, children, dict(fractions), amount, shortfall)
        else:
            categories[cat] = _Stream(cat, ranked(cat_items, seed), spec.max_repeat)
    for cat in spec.targets:
        categories.setdefault(cat, _Stream(cat, [], spec.max_repeat))
    top = _Merged("", categories, dict(spec.targets), amount, shortfall)

    picks: dict[str, list[Pick]] = {c: [] for c in sorted(categories)}
    total = 0.0
    while total < spec.budget:
        pick = top.peek()
        if pick is None:
            break
        a = amount(pick.item)
        if tokens_unit and total + a > spec.budget:
            break
        top.take()
        picks[pick.item.category].append(pick)
        total += a
    return Selection(picks=picks, rebalanced=state["rebalanced"], available=by_cat)


def _shortfall_message(
    label: str, child: str, by_cat: dict[str, list[Item]], spec: MixtureSpec
) -> str:
    if label:  # a source inside a category
        cat, src = label, child
        have = [i for i in by_cat.get(cat, []) if i.source == src]
        frac = spec.targets[cat] * spec.source_targets[cat][src]
        what = f"source {src!r} of category {cat!r}"
    else:
        cat = child
        have = by_cat.get(cat, [])
        frac = spec.targets[cat]
        what = f"category {cat!r}"
    cap = math.floor(len(have) * spec.max_repeat + 1e-9)
    need = frac * spec.budget
    if spec.unit == "tokens":
        toks = sum(i.tokens for i in have)
        has = f"{len(have)} samples / {toks} tokens ({math.floor(toks * spec.max_repeat)} with max_repeat {spec.max_repeat:g})"
        needs = f"{need:.0f} tokens"
    else:
        has = f"{len(have)} samples ({cap} with max_repeat {spec.max_repeat:g})"
        needs = f"{math.ceil(need - 1e-9)} samples"
    return (
        f"mixture shortfall: {what} has {has} but needs {needs} (fraction {frac:g} of budget "
        f"{spec.budget}); raise mixture.max_repeat, lower the budget or set mixture.shortfall: rebalance"
    )


def interleave(picks: dict[str, list[Pick]], unit: str) -> list[Pick]:
    """One stream of all picks in which every prefix keeps about the global mixture.

    Fair queueing again, with each category weighted by its achieved total, so shards cut
    from consecutive runs of the stream each carry close to the stage's ratios."""

    def amount(p: Pick) -> float:
        return float(p.item.tokens) if unit == "tokens" else 1.0

    names = [c for c in sorted(picks) if picks[c]]
    weight = {c: sum(amount(p) for p in picks[c]) or 1.0 for c in names}
    consumed = {c: 0.0 for c in names}
    pos = {c: 0 for c in names}
    out: list[Pick] = []
    while names:
        nxt = {c: amount(picks[c][pos[c]]) for c in names}
        c = fair_choice(names, consumed, weight, nxt)
        p = picks[c][pos[c]]
        out.append(p)
        consumed[c] += nxt[c]
        pos[c] += 1
        if pos[c] == len(picks[c]):
            names.remove(c)
    return out
