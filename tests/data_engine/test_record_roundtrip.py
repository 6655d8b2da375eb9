import dataclasses

from mindvl.data_engine.record import IMAGE_COLUMNS, ROW_COLUMNS, Candidate, ImageRecord


def test_every_field_survives_a_row_round_trip():
    c = Candidate(
        key="k",
        source="s",
        category="c",
        raw_id="r",
        images=[
            ImageRecord(b"\xff\xd8\xffx", "jpg", 4, 3, "0" * 16, "a" * 64, "ab" * 96, 0.2, 12.5),
            ImageRecord(b"\x89PNGy", "png", 5, 6, "1" * 16, "b" * 64, "cd" * 96, 0.3, 1.5),
        ],
        caption="cap",
        conversation=None,
        quality=0.7,
        meta={"dup_group": 3},
    )
    fields = {f.name for f in dataclasses.fields(Candidate)} - {"images"}
    assert set(ROW_COLUMNS) == fields | set(IMAGE_COLUMNS)
    assert set(IMAGE_COLUMNS.values()) == {f.name for f in dataclasses.fields(ImageRecord)}
    row = c.to_row()
    assert row["widths"] == [4, 5] and row["images"] == [b"\xff\xd8\xffx", b"\x89PNGy"]
    assert Candidate.from_row(row) == c


def test_a_feature_not_computed_is_an_empty_column():
    c = Candidate(key="k", source="s", category="c", raw_id="r", images=[b"a", b"b"])
    c.images[0].blur = 3.0  # one image only: the column stays empty, as in a build
    row = c.to_row()
    assert row["blur"] == [] and row["widths"] == []
    back = Candidate.from_row(row)
    assert [im.data for im in back.images] == [b"a", b"b"] and back.images[0].blur is None


def test_drop_releases_images_but_keeps_identity():
    c = Candidate(key="k", source="s", category="c", raw_id="r", images=[b"x"])
    c.drop("filter", "blur", "blurry")
    back = Candidate.from_row(c.to_row())
    assert (
        back.images == []
        and back.dropped
        and (back.drop_stage, back.drop_op, back.drop_reason) == ("filter", "blur", "blurry")
    )
