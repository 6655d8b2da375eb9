import textwrap

import pytest

from mindvl.common.errors import ConfigError
from mindvl.common.recipe import load_recipe

GOOD = """
name: warmup-demo
stage: warmup
seed: 7
tokenizer: ${out}/tokenizer
sources:
  - {name: scenes, path: "${data}/caption", format: webdataset, category: caption, license: cc-by-4.0}
  - {name: ocr, path: "${data}/ocr", format: parquet, category: ocr, weight: 2.0}
operators:
  - {op: image_decode}
  - {op: image_size, params: {min_side: 32}}
dedup: {near: {max_hamming: 5}}
mixture:
  unit: tokens
  budget: 100000
  targets: {caption: 0.6, ocr: 0.4}
shards: {max_samples: 500}
"""


def write(tmp_path, text):
    p = tmp_path / "recipe.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_recipe_loads_with_variables(tmp_path):
    r = load_recipe(write(tmp_path, GOOD), {"data": "/d", "out": "/o"})
    assert r.sources[0].path == "/d/caption" and r.tokenizer == "/o/tokenizer"
    assert r.dedup.near.max_hamming == 5 and r.dedup.exact is True
    assert r.mixture.unit == "tokens" and r.mixture.targets["ocr"] == 0.4
    assert r.operators[1].params == {"min_side": 32}


def test_unknown_key_names_file_path_and_allowed(tmp_path):
    p = write(tmp_path, GOOD.replace("license: cc-by-4.0", "licence: cc-by-4.0"))
    with pytest.raises(ConfigError) as e:
        load_recipe(p, {"data": "/d", "out": "/o"})
    msg = e.value.format_message()
    assert str(p) in msg
    assert "sources[0].licence: unknown field" in msg
    assert "allowed: name, path, format, category, license, weight, options" in msg


def test_nested_unknown_key_and_bad_enum(tmp_path):
    p = write(
        tmp_path,
        GOOD.replace("max_hamming: 5", "max_haming: 5").replace("format: parquet", "format: csv"),
    )
    with pytest.raises(ConfigError) as e:
        load_recipe(p, {"data": "/d", "out": "/o"})
    msg = e.value.format_message()
    assert "dedup.near.max_haming: unknown field (allowed: enabled, max_hamming" in msg
    assert "sources[1].format:" in msg and "'llava'" in msg


def test_fractions_must_sum_to_one_and_name_real_categories(tmp_path):
    p = write(tmp_path, GOOD.replace("ocr: 0.4}", "ocr: 0.3}"))
    with pytest.raises(ConfigError, match="mixture: .*sum to 0.9"):
        load_recipe(p, {"data": "/d", "out": "/o"})
    p = write(tmp_path, GOOD.replace("{caption: 0.6, ocr: 0.4}", "{caption: 0.6, charts: 0.4}"))
    with pytest.raises(ConfigError, match="no source: charts"):
        load_recipe(p, {"data": "/d", "out": "/o"})


def test_unknown_variable_and_missing_file(tmp_path):
    with pytest.raises(
        ConfigError, match=r"\$\{data\} \(in sources\[0\].path, sources\[1\].path\)"
    ):
        load_recipe(write(tmp_path, GOOD), {"out": "/o"})
    with pytest.raises(ConfigError, match="config file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_every_missing_variable_in_one_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_recipe(write(tmp_path, GOOD), {})
    msg = str(e.value)
    assert "unknown variables ${out} (in tokenizer), ${data} (in sources[0].path" in msg
    assert msg.endswith("given: none given; pass --var out=VALUE --var data=VALUE")


def test_duplicate_source_names(tmp_path):
    p = write(tmp_path, GOOD.replace("name: ocr", "name: scenes"))
    with pytest.raises(ConfigError, match="repeated: scenes"):
        load_recipe(p, {"data": "/d", "out": "/o"})
