"""The data path: shard verification, rank/worker split, tokenisation vs manifest counts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mindvl.common.chat import END_OF_TEXT
from mindvl.common.errors import UserError
from mindvl.common.sample import Sample
from mindvl.trainer.data.encode import IGNORE, DropCounter, encode_sample
from mindvl.trainer.data.loader import PackedLoader
from mindvl.trainer.data.packing import PackBudget
from mindvl.trainer.data.shards import (
    iter_groups,
    read_group,
    streams_of_rank,
    streams_of_shards,
    streams_of_worker,
)
from mindvl.trainer.data.stream import StageData, StreamSettings
from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    d = tmp_path_factory.mktemp("loader")
    tok = train_test_tokenizer(d / "tok")
    write_stage(d / "stage", tok, n_samples=60, n_shards=4, long_tail=200)
    return StageData.open(d / "stage")


def _all_raw(stage):
    for i in range(len(stage.manifest.shards)):
        yield from iter_groups(stage.shard_path(i), i)


def test_token_counts_equal_the_manifest(stage):
    rule = stage.manifest.image_tokens
    pad = stage.tokenizer.image_pad_id
    n = 0
    for raw, _ in _all_raw(stage):
        sample = Sample.from_json_bytes(raw.members["json"])
        enc = encode_sample(
            raw.members, raw.shard, raw.offset, stage.tokenizer, rule, 10**6, 10**6, DropCounter()
        )
        image = sum(1 for t in enc.input_ids if t == pad)
        assert image == sample.tokens.image
        assert enc.length - image == sample.tokens.text
        n += 1
    assert n == 60


def test_labels_cover_only_trained_pieces(stage):
    rule = stage.manifest.image_tokens
    eos = stage.tokenizer.encode(END_OF_TEXT)
    seen = set()
    for raw, _ in _all_raw(stage):
        sample = Sample.from_json_bytes(raw.members["json"])
        enc = encode_sample(
            raw.members, raw.shard, raw.offset, stage.tokenizer, rule, 10**6, 10**6, DropCounter()
        )
        trained = [t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE]
        assert all(lab in (IGNORE, t) for t, lab in zip(enc.input_ids, enc.labels, strict=True))
        if sample.caption is not None:
            assert trained == stage.tokenizer.encode(sample.caption) + eos
            seen.add("caption")
        else:
            answers = [t.content for t in sample.conversation if t.role == "assistant"]
            expect = sum(
                (stage.tokenizer.encode(a) + stage.tokenizer.encode("<|im_end|>") for a in answers),
                [],
            )
            assert trained == expect
            seen.add("conversation")
    assert seen == {"caption", "conversation"}


def test_truncation_keeps_images_and_drops_are_counted(stage):
    rule = stage.manifest.image_tokens
    raws = [r for r, _ in _all_raw(stage)]
    long = max(
        (r for r in raws if Sample.from_json_bytes(r.members["json"]).tokens.image > 0),
        key=lambda r: Sample.from_json_bytes(r.members["json"]).tokens.text,
    )
    s = Sample.from_json_bytes(long.members["json"])
    budget = s.tokens.total - 5
    drops = DropCounter()
    enc = encode_sample(long.members, 0, 0, stage.tokenizer, rule, budget, 10**6, drops)
    assert enc.length == budget and drops.truncated == 1  # cut in text after the images
    assert sum(t == stage.tokenizer.image_pad_id for t in enc.input_ids) == s.tokens.image
    with_image = next(r for r in raws if Sample.from_json_bytes(r.members["json"]).tokens.image > 8)
    image_tokens = Sample.from_json_bytes(with_image.members["json"]).tokens.image
    assert (
        encode_sample(with_image.members, 0, 0, stage.tokenizer, rule, image_tokens, 10**6, drops)
        is None
    )
    assert drops.dropped["image tokens exceed seq_len"] == 1
    assert encode_sample(with_image.members, 0, 0, stage.tokenizer, rule, 10**6, 1, drops) is None
    assert drops.dropped["images exceed the ViT patch budget"] == 1


def test_read_group_at_offset_matches_stream(stage):
    raws = list(iter_groups(stage.shard_path(1), 1))
    for raw, _ in raws:
        assert read_group(stage.shard_path(1), 1, raw.offset) == raw
    resumed = [r.key for r, _ in iter_groups(stage.shard_path(1), 1, raws[2][1])]
    assert resumed == [r.key for r, _ in raws[3:]]


def test_shards_split_by_rank_then_worker():
    streams = streams_of_shards(10, 4)
    assert streams[1] == [1, 5, 9]
    assert streams_of_rank(4, 1, 2) == [1, 3]
    assert streams_of_worker([1, 3], 1, 2) == [3]
    # shard i -> rank i % world with the default streams = world * workers
    for shard in range(10):
        stream = shard % 4
        assert stream in streams_of_rank(4, shard % 2, 2)
    with pytest.raises(UserError, match="multiple of the world size"):
        streams_of_rank(3, 0, 2)


def test_mismatched_shard_is_a_one_line_error(tmp_path, stage):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(stage.root, d)
    p = d / stage.manifest.shards[2].name
    data = bytearray(p.read_bytes())
    data[700] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(UserError) as err:
        StageData.open(d)
    msg = err.value.format_message()
    assert "mismatched shard sft-00002.tar" in msg and "\n" not in msg


def test_workers_give_the_in_process_batches(stage):
    cfg = StreamSettings(PackBudget(512, 2048), buffer_size=8, max_epochs=1)
    inproc = [b.sample_keys for b in PackedLoader(stage, cfg, n_streams=2)]
    workers = [b.sample_keys for b in PackedLoader(stage, cfg, n_streams=2, num_workers=2)]
    assert workers == inproc
    keys = [k for b in inproc for k in b]
    assert len(keys) == len(set(keys)) == 60


# a daemon thread inside torch's C++ with the GIL released (a worker's queue thread sharing
# a batch's storage with the parent) while the process shuts down
_SHARING_AT_EXIT = """
import sys, threading, time, torch
from mindvl.trainer.data.loader import leave_without_finalizing
if sys.argv[1] == "init":
    leave_without_finalizing()
def share():
    while True:
        torch.empty(1 << 16).untyped_storage()._share_fd_cpu_()
threading.Thread(target=share, daemon=True).start()
time.sleep(0.3)
print("done", flush=True)
"""


def test_a_worker_stopped_while_sharing_a_batch_exits_cleanly():
    """What ``PackedLoader`` gives its workers (``worker_init_fn``): a worker stopped while its
    queue thread is still inside torch's C++ leaves with code 0 and its output, instead of
    aborting in ``std::terminate`` (Python 3.11 unwinds such a daemon thread at shutdown;
    without the init this process dies of SIGABRT)."""
    run = subprocess.run([sys.executable, "-c", _SHARING_AT_EXIT, "init"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "done"
