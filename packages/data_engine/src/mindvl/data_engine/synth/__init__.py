"""The corpus kit: synthetic image-text corpora with known truth.

``mindvl data synth`` renders scenes, OCR text, grounding boxes and charts, writes them in
the four raw formats the data engine reads (llava, webdataset, parquet, folder), plants
faults, duplicates and hard negatives at a known rate, and records everything it did in
``truth.parquet`` so filter and dedup precision/recall can be measured.

Entry point: :func:`mindvl.data_engine.synth.kit.generate_corpus`.
"""
