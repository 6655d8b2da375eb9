"""The corpus kit: synthetic image-text corpora with known truth.

``mindvl data synth`` renders scenes, OCR text, grounding boxes and charts, writes them in
the four raw formats the data engine reads, plants faults, duplicates and hard negatives at
a known rate, and records what it did in ``truth.parquet`` so filter and dedup
precision/recall can be measured. Entry point: :func:`.kit.generate_corpus`.

Notes for reader authors (the layout itself is in :mod:`.writers`):

* ``image_format`` / extensions are ``jpg``, ``png`` or ``webp`` (as in
  ``mindvl.common.sample.IMAGE_FORMATS``); a ``huge_header`` fault is always ``.png``.
* Captions may be invalid UTF-8 on purpose (``non_utf8_caption``): in ``data.jsonl`` the
  raw bytes sit inside the JSON string, so read lines as bytes and decode with
  ``errors="surrogateescape"`` (or "replace"); ``.txt`` sidecars likewise. Parquet holds
  valid strings only, so there the fault is U+FFFD-heavy garbage.
* ``missing_image`` (llava, folder only): the referenced image file does not exist.
* ``huge_header`` PNGs claim 100000x100000: PIL's ``Image.open`` raises
  ``DecompressionBombError`` unless ``Image.MAX_IMAGE_PIXELS`` is lifted.
* ``zero_byte`` images are empty files/members/values, so they share one sha256.
* Hard negatives carry ``faults == ["low_info"]`` and ``low_info == True``: they are NOT
  drops; a dedup must keep them apart (except their own recorded near duplicates).
* Empty categories (tiny ``--n``) get an empty ``data.jsonl`` / no shards or parts.
"""
