"""Image filters read the images' features (computed where missing); the registry builds
them and names bad params."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from mindvl.common.errors import ConfigError
from mindvl.data_engine.ops.image_decode import ImageDecode
from mindvl.data_engine.ops.registry import OPERATORS, build_operator
from mindvl.data_engine.record import Candidate


def _encoded(size: tuple[int, int], fmt: str = "PNG", color=None) -> bytes:
    w, h = size
    img = Image.radial_gradient("L").resize((w, h)).convert("RGB") if color is None else None
    img = img or Image.new("RGB", (w, h), color)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def decoded(*sizes: tuple[int, int], fmt: str = "PNG", color=None) -> Candidate:
    images = [_encoded(size, fmt, color) for size in sizes]
    c = Candidate(key="k", source="s", category="caption", raw_id="r", images=images)
    assert build_operator("image_decode", {}, "r.yaml", 0)(c) is None
    return c


def op(name: str, **params):
    return build_operator(name, params, "recipe.yaml", 3)


def test_image_size() -> None:
    f = op("image_size", min_side=32, max_side=1000, max_pixels=500_000)
    assert f(decoded((64, 64), (40, 900))) is None
    assert f(decoded((64, 64), (31, 200))) == "too_small"
    assert f(decoded((1001, 64))) == "too_large"
    assert f(decoded((800, 700))) == "too_large"
    assert op("image_size", min_side=1, min_pixels=5000)(decoded((60, 60))) == "too_small"


def test_aspect_ratio() -> None:
    f = op("aspect_ratio", max_ratio=4)
    assert f(decoded((400, 100), (100, 400))) is None
    assert f(decoded((100, 100), (20, 401))) == "aspect_ratio"


def test_blur_and_low_information() -> None:
    flat = decoded((100, 100), color=(240, 240, 240))
    textured = decoded((100, 100))
    assert op("low_information", min_information=0.02)(flat) == "low_information"
    assert op("low_information", min_information=0.02)(textured) is None
    assert op("blur", min_variance=1.0)(flat) == "blurry"
    assert op("blur", min_variance=0.01)(textured) is None


def test_a_white_drawing_on_transparency_is_not_a_blank_image() -> None:
    """Flattened on white it is blank; its score is taken on black, where it shows (a white
    veil, blank on both grounds, still scores 0)."""
    drawing = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(drawing).ellipse((10, 10, 90, 90), outline=(255, 255, 255, 255), width=8)
    veil = Image.new("RGBA", (100, 100), (255, 255, 255, 90))
    found = []
    for img in (drawing, veil):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        c = Candidate(key="k", source="s", category="caption", raw_id="r", images=[buf.getvalue()])
        assert build_operator("image_decode", {}, "r.yaml", 0)(c) is None
        found.append(op("low_information", min_information=0.02)(c))
    assert found == [None, "low_information"]


def test_image_format_allow_list() -> None:
    jpg = decoded((64, 64), fmt="JPEG")
    assert op("image_format", allowed=["png"])(jpg) == "format_not_allowed"
    assert op("image_format", allowed=["png", "jpg"])(jpg) is None


@pytest.mark.parametrize(
    "name", ["image_size", "aspect_ratio", "blur", "low_information", "image_format"]
)
def test_filters_before_decode_compute_the_features(name: str) -> None:
    """Operator order is no trap: a filter that finds no features decodes the images itself,
    with the recipe's decode settings, and judges them as after ``image_decode``."""
    data = _encoded((64, 48), fmt="PNG")
    raw = Candidate(key="k", source="s", category="c", raw_id="r", images=[data])
    after = Candidate(key="k", source="s", category="c", raw_id="r", images=[data])
    ImageDecode().apply(after)
    assert op(name)(raw) == op(name)(after)
    assert raw.images[0].pixel_hash == after.images[0].pixel_hash
    broken = Candidate(key="k", source="s", category="c", raw_id="r", images=[b"\x89PNG..."])
    assert op(name)(broken) == "unknown_format"  # the decode's reason, from this filter
    assert op(name)(Candidate(key="k", source="s", category="c", raw_id="r")) is None  # no images


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("image_size", {"min_side": 0}, "min_side"),
        ("image_size", {"min_sid": 3}, "min_sid"),
        ("aspect_ratio", {"max_ratio": 0.5}, "max_ratio"),
        ("blur", {"min_variance": "high"}, "min_variance"),
        ("low_information", {"min_information": 0.9}, "min_information"),
        ("image_format", {"allowed": ["jpeg"]}, "allowed"),
        ("image_decode", {"max_pixels_cap": -1}, "max_pixels_cap"),
    ],
)
def test_bad_params_name_the_field(name: str, params: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"recipe\.yaml: operators\[3\]\.params\.{field}"):
        op(name, **params)


def test_every_registered_operator_loads() -> None:
    from mindvl.data_engine.ops.registry import operator_class

    for name in OPERATORS:
        assert operator_class(name).name == name
