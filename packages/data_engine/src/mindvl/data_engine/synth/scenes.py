"""Caption category: coloured shapes on a background, with counting and colour questions."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
from PIL import ImageDraw

from mindvl.data_engine.synth.canvas import (
    BACKGROUND_COLOURS,
    SHAPE_COLOURS,
    background,
    choose_size,
    random_style,
)
from mindvl.data_engine.synth.records import Rendered
from mindvl.data_engine.synth.shapes import (
    SHAPES,
    count_phrase,
    draw_shape,
    join_phrases,
    layout_boxes,
)

QUESTION_COUNT = "How many {shape}s are there?"
QUESTION_COLOUR = "What colour is the {shape}?"
QUESTION_BACKGROUND = "What colour is the background?"
QUESTION_TOTAL = "How many shapes are there?"
QUESTION_DESCRIBE = "Describe the image."


def render_scene(rng: np.random.Generator, min_side: int, max_side: int) -> Rendered:
    size = choose_size(rng, min_side, max_side)
    bg_names = sorted(BACKGROUND_COLOURS)
    bg_name = bg_names[int(rng.integers(len(bg_names)))]
    img = background(rng, size, BACKGROUND_COLOURS[bg_name], random_style(rng))
    draw = ImageDraw.Draw(img)

    k = int(rng.integers(1, 7))
    colours = sorted(SHAPE_COLOURS)
    kinds = [SHAPES[int(i)] for i in rng.integers(0, len(SHAPES), k)]
    paints = [colours[int(i)] for i in rng.integers(0, len(colours), k)]
    boxes = layout_boxes(rng, size, k)
    for shape, colour, box in zip(kinds, paints, boxes, strict=True):
        draw_shape(draw, shape, box, SHAPE_COLOURS[colour])

    groups = Counter(zip(paints, kinds, strict=True))
    order = sorted(groups, key=lambda g: (SHAPES.index(g[1]), g[0]))
    phrases = [count_phrase(groups[g], g[0], g[1]) for g in order]
    text = join_phrases(phrases)
    caption = f"{text[0].upper()}{text[1:]} on a {bg_name} background."

    shape_counts = Counter(kinds)
    options: list[tuple[str, str]] = [(QUESTION_BACKGROUND, bg_name), (QUESTION_TOTAL, str(k))]
    for shape in SHAPES:
        options.append((QUESTION_COUNT.format(shape=shape), str(shape_counts[shape])))
        if shape_counts[shape] == 1:
            colour = paints[kinds.index(shape)]
            options += [(QUESTION_COLOUR.format(shape=shape), colour)] * 2
    question, answer = options[int(rng.integers(len(options)))]
    # The other distinct questions, in an order that differs per image but draws nothing
    # from ``rng`` (later draws, and so existing corpora, stay as they were).
    more = sorted(
        set(options) - {(question, answer)},
        key=lambda qa: hashlib.sha256(f"{caption}\0{qa[0]}".encode()).digest(),
    )
    w, h = size
    # relative boxes (equal relative boxes of square shapes also mean equal aspect ratios)
    layout = tuple(v / d for box in boxes for v, d in zip(box, (w, h, w, h), strict=True))
    return Rendered(
        img, caption, question, answer, n_objects=k, more_qa=tuple(more),
        layout_key=caption, layout=layout,
    )  # fmt: skip
