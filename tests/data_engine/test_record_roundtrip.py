import dataclasses

from mindvl.data_engine.record import ROW_COLUMNS, Candidate


def test_every_field_survives_a_row_round_trip():
    c = Candidate(
        key="k",
        source="s",
        category="c",
        raw_id="r",
        images=[b"\xff\xd8\xffx"],
        caption="cap",
        conversation=None,
        image_formats=["jpg"],
        widths=[4],
        heights=[3],
        phashes=["0" * 16],
        pixel_hashes=["a" * 64],
        signatures=["ab" * 96],
        information=[0.2],
        blur=[12.5],
        quality=0.7,
        meta={"dup_group": 3},
    )
    assert set(ROW_COLUMNS) == {f.name for f in dataclasses.fields(Candidate)}
    assert Candidate.from_row(c.to_row()) == c


def test_drop_releases_images_but_keeps_identity():
    c = Candidate(key="k", source="s", category="c", raw_id="r", images=[b"x"])
    c.drop("filter", "blur", "blurry")
    back = Candidate.from_row(c.to_row())
    assert (
        back.images == []
        and back.dropped
        and (back.drop_stage, back.drop_op, back.drop_reason) == ("filter", "blur", "blurry")
    )
