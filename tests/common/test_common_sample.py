import json

import pytest
from pydantic import ValidationError

from mindvl.common.sample import (
    ImageRef,
    Sample,
    TokenCounts,
    Turn,
    detect_image_format,
    image_member,
    make_key,
    validate_key,
)


def _img(i=0, fmt="jpg"):
    return ImageRef(
        member=image_member(i, fmt), format=fmt, width=64, height=32, sha256="0" * 64, tokens=4
    )


def test_make_key_is_dot_free_stable_and_distinguishes_collisions():
    a = make_key("coco", "img.0001.jpg")
    assert "." not in a and validate_key(a) == a
    assert make_key("coco", "img.0001.jpg") == a
    # two raw ids that sanitise to the same text still get different keys
    assert make_key("src", "a b") != make_key("src", "a/b")


@pytest.mark.parametrize("bad", ["a.b", "", "x" * 201, "sp ace", "ü"])
def test_invalid_keys_rejected(bad):
    with pytest.raises(ValueError):
        validate_key(bad)


@pytest.mark.parametrize(
    "data,fmt",
    [
        (b"\xff\xd8\xff\xe0....", "jpg"),
        (b"\x89PNG\r\n\x1a\n....", "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a..", "gif"),
        (b"hello", None),
        (b"", None),
    ],
)
def test_detect_image_format_from_magic_bytes(data, fmt):
    assert detect_image_format(data) == fmt


def test_conversation_placeholders_must_match_images():
    conv = [Turn(role="user", content="<image>\nWhat?"), Turn(role="assistant", content="red")]
    s = Sample(
        key="k1",
        source="s",
        category="c",
        conversation=conv,
        images=[_img()],
        tokens=TokenCounts(image=4, text=9),
    )
    assert s.tokens.total == 13
    with pytest.raises(ValidationError, match="placeholders"):
        Sample(
            key="k1",
            source="s",
            category="c",
            conversation=conv,
            images=[],
            tokens=TokenCounts(image=0, text=9),
        )


def test_multi_image_and_text_only_samples_are_representable():
    conv = [Turn(role="user", content="<image><image>Same?"), Turn(role="assistant", content="no")]
    two = Sample(
        key="m",
        source="s",
        category="c",
        conversation=conv,
        images=[_img(0), _img(1, "png")],
        tokens=TokenCounts(image=8, text=5),
    )
    assert [i.member for i in two.images] == ["img0.bin", "img1.bin"]
    text_only = Sample(
        key="t",
        source="s",
        category="c",
        conversation=[Turn(role="user", content="hi"), Turn(role="assistant", content="hello")],
        tokens=TokenCounts(image=0, text=6),
    )
    assert text_only.images == []


def test_exactly_one_of_caption_and_conversation():
    with pytest.raises(ValidationError, match="exactly one"):
        Sample(key="k", source="s", category="c", tokens=TokenCounts(image=0, text=0))
    with pytest.raises(ValidationError, match="exactly one"):
        Sample(
            key="k",
            source="s",
            category="c",
            caption="x",
            conversation=[],
            tokens=TokenCounts(image=0, text=0),
        )


def test_json_bytes_are_canonical_and_round_trip():
    s = Sample(
        key="k",
        source="s",
        category="c",
        caption="Ein Hund.",
        images=[_img()],
        tokens=TokenCounts(image=4, text=3),
        meta={"b": 1, "a": "x"},
    )
    b = s.to_json_bytes()
    assert b == s.to_json_bytes()
    assert b"Ein Hund." in b and b": " not in b
    assert list(json.loads(b)) == sorted(json.loads(b))
    assert Sample.from_json_bytes(b) == s


def test_unknown_fields_rejected():
    with pytest.raises(ValidationError, match="Extra inputs"):
        Sample.model_validate(
            {
                "key": "k",
                "source": "s",
                "category": "c",
                "caption": "x",
                "tokens": {"image": 0, "text": 1},
                "colour": "red",
            }
        )
