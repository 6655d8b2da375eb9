"""Grounding category: distinct coloured objects; the question asks for one object's box."""

from __future__ import annotations

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
    PlacedShape,
    draw_shape,
    join_phrases,
    layout_boxes,
    to_thousandths,
)

QUESTION_WHERE = "Where is the {colour} {shape}? Answer as [x0, y0, x1, y1] in 0-1000 coordinates."


def render_grounding(rng: np.random.Generator, min_side: int, max_side: int) -> Rendered:
    size = choose_size(rng, min_side, max_side)
    bg_names = sorted(BACKGROUND_COLOURS)
    bg_name = bg_names[int(rng.integers(len(bg_names)))]
    img = background(rng, size, BACKGROUND_COLOURS[bg_name], random_style(rng))
    draw = ImageDraw.Draw(img)

    k = int(rng.integers(2, 6))
    colours = sorted(SHAPE_COLOURS)
    combos = [(c, s) for c in colours for s in SHAPES]
    picks = rng.choice(len(combos), size=k, replace=False)  # each (colour, shape) at most once
    objects = []
    for pick, box in zip(picks, layout_boxes(rng, size, k), strict=True):
        colour, shape = combos[int(pick)]
        draw_shape(draw, shape, box, SHAPE_COLOURS[colour])
        objects.append(PlacedShape(shape, colour, box))

    phrases = []
    for obj in objects:
        article = "an" if obj.colour[0] in "aeiou" else "a"
        phrases.append(f"{article} {obj.colour} {obj.shape} at {to_thousandths(obj.box, size)}")
    text = join_phrases(phrases)
    caption = f"{text[0].upper()}{text[1:]} on a {bg_name} background."

    target = objects[int(rng.integers(k))]
    question = QUESTION_WHERE.format(colour=target.colour, shape=target.shape)
    return Rendered(img, caption, question, to_thousandths(target.box, size), n_objects=k)
