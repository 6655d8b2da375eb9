"""Recaptioning mechanics without a model: checks, policies, cache, batching, isolation.

The backend here is a test double standing in for a model (the model itself is exercised
in test_caption_hf.py); everything else is the real runner, cache and checks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mindvl.common.recipe import CaptionChecks, CaptionSpec
from mindvl.common.sample import CaptionProvenance
from mindvl.data_engine.caption import (
    ERROR_META,
    PROVENANCE_META,
    CaptionRunner,
    count_outcomes,
    funnel_entries,
)
from mindvl.data_engine.caption.cache import CaptionCache, sha256_text
from mindvl.data_engine.caption.checks import CaptionChecker, repetition
from mindvl.data_engine.caption.policy import apply_caption, original_text
from mindvl.data_engine.device import (
    actor_resources,
    pick_cluster_device,
    pick_device,
)
from mindvl.data_engine.record import Candidate


class EchoBackend:
    """Captions an image as "a picture number <n>" where the image bytes are b"img<n>"."""

    model_id = "echo"
    weights_digest = "0" * 64

    def __init__(self, fail_on: set[bytes] = frozenset(), text: str | None = None) -> None:
        self.calls: list[int] = []  # batch size of every generate call
        self.batches: list[list[bytes]] = []
        self.fail_on = set(fail_on)
        self.text = text

    def generate(self, images, prompts, generation):
        self.calls.append(len(images))
        self.batches.append(list(images))
        if any(im in self.fail_on for im in images):
            raise MemoryError("simulated out-of-memory on a bad image")
        return [
            self.text or f"  a picture number {im.decode()[3:]} ({p})  "
            for im, p in zip(images, prompts, strict=True)
        ]


def spec(policy: str = "replace", batch_size: int = 4, **checks) -> CaptionSpec:
    return CaptionSpec(
        enabled=True,
        model="unused",
        categories={"caption": {"prompt": "Describe. Was: {original}", "policy": policy}},
        generation={"max_new_tokens": 8},
        batch_size=batch_size,
        checks=CaptionChecks(**checks),
    )


def cand(i: int, category: str = "caption", **kw) -> Candidate:
    kw.setdefault("caption", f"old caption {i}")
    return Candidate(
        key=f"k{i}",
        source="src",
        category=category,
        raw_id=str(i),
        images=[f"img{i}".encode()],
        **kw,
    )


def prov(c: Candidate) -> CaptionProvenance:
    return CaptionProvenance.model_validate_json(c.meta[PROVENANCE_META])


def test_replace_records_provenance_and_batches(tmp_path: Path) -> None:
    backend = EchoBackend()
    cands = [cand(i) for i in range(10)]
    CaptionRunner(spec(batch_size=4), backend, CaptionCache(tmp_path)).run(cands)
    assert backend.calls == [4, 4, 2]
    assert cands[3].caption == "a picture number 3 (Describe. Was: old caption 3)"
    p = prov(cands[3])
    assert p.accepted and p.reason is None
    assert p.original == "old caption 3"
    assert (p.model_id, p.weights_digest, p.policy) == ("echo", "0" * 64, "replace")
    assert p.prompt_digest == sha256_text("Describe. Was: {original}")
    assert p.generation == {"max_new_tokens": 8}


def test_cache_second_run_makes_no_model_calls(tmp_path: Path) -> None:
    first = EchoBackend()
    CaptionRunner(spec(), first, CaptionCache(tmp_path)).run([cand(i) for i in range(6)])
    assert sum(first.calls) == 6
    again = EchoBackend()
    cands = [cand(i) for i in range(6)]
    runner = CaptionRunner(spec(), again, CaptionCache(tmp_path))  # a fresh process's view
    runner.run(cands)
    assert again.calls == []
    assert runner.stats.cache_hits == 6
    assert cands[5].caption.startswith("a picture number 5")
    # a different prompt or generation setting is a different key
    other = EchoBackend()
    changed = spec()
    changed.generation = {"max_new_tokens": 9}
    CaptionRunner(changed, other, CaptionCache(tmp_path)).run([cand(0)])
    assert other.calls == [1]


def test_cache_survives_a_torn_line(tmp_path: Path) -> None:
    cache = CaptionCache(tmp_path, writer="a")
    cache.put_many({"k1": "one", "k2": "two"})
    cache.close()
    with (tmp_path / "part-a.jsonl").open("a") as fh:
        fh.write('{"k": "k3", "t": "thr')  # crash mid-write
    again = CaptionCache(tmp_path)
    assert (again.get("k1"), again.get("k2"), again.get("k3")) == ("one", "two", None)


def test_failing_image_is_isolated_by_halving(tmp_path: Path) -> None:
    backend = EchoBackend(fail_on={b"img5"})
    cands = [cand(i) for i in range(8)]
    runner = CaptionRunner(spec(batch_size=8), backend, CaptionCache(tmp_path))
    runner.run(cands)
    # 8 fails -> 4 ok + 4 fails -> 2 fails + 2 ok -> 1 ok + 1 fails
    assert backend.calls == [8, 4, 4, 2, 1, 1, 2]
    assert cands[5].caption == "old caption 5"
    assert cands[5].meta[ERROR_META] == "error:MemoryError"
    assert PROVENANCE_META not in cands[5].meta
    assert all(c.caption.startswith("a picture") for i, c in enumerate(cands) if i != 5)
    assert runner.stats.failed == 1
    counts = count_outcomes(cands)
    assert counts[("src", "accepted")] == 7
    assert counts[("src", "error:MemoryError")] == 1
    (entry,) = funnel_entries(counts)
    assert (entry.stage, entry.reason, entry.count) == (
        "caption",
        "kept_original:error:MemoryError",
        1,
    )


def test_rejected_caption_keeps_original(tmp_path: Path) -> None:
    backend = EchoBackend(text="cat cat cat cat cat cat cat cat cat cat")
    cands = [cand(0)]
    CaptionRunner(spec(), backend, CaptionCache(tmp_path)).run(cands)
    assert cands[0].caption == "old caption 0"
    p = prov(cands[0])
    assert (p.accepted, p.reason, p.original) == (False, "repetition", "old caption 0")
    assert count_outcomes([c.to_row() for c in cands]) == {("src", "rejected:repetition"): 1}


def test_dropped_other_category_and_imageless_rows(tmp_path: Path) -> None:
    dropped = cand(0)
    dropped.drop("filter", "image_size", "too_small")
    other = cand(1, category="ocr")
    textonly = cand(2)
    textonly.images = []
    backend = EchoBackend()
    CaptionRunner(spec(), backend, CaptionCache(tmp_path)).run([dropped, other, textonly])
    assert backend.calls == []
    assert dropped.meta == {} and other.meta == {} and other.caption == "old caption 1"
    assert textonly.meta == {ERROR_META: "no_image"}


def test_already_captioned_rows_are_not_captioned_twice(tmp_path: Path) -> None:
    c = cand(0, caption=None, conversation=[{"role": "user", "content": "<image>\nhi"}])
    runner = CaptionRunner(spec("add_turn"), EchoBackend(), CaptionCache(tmp_path))
    runner.run([c])
    runner.run([c])
    assert len(c.conversation) == 3


def test_similar_sizes_are_batched_together(tmp_path: Path) -> None:
    cands = [cand(i) for i in range(6)]
    for i, c in enumerate(cands):
        c.images[0].width, c.images[0].height = 1000 if i % 2 else 50, 100
    backend = EchoBackend()
    CaptionRunner(spec(batch_size=3), backend, CaptionCache(tmp_path)).run(cands)
    assert backend.batches == [[b"img0", b"img2", b"img4"], [b"img1", b"img3", b"img5"]]
    assert [c.key for c in cands] == [f"k{i}" for i in range(6)]  # order of rows unchanged


def test_duplicate_images_generate_once(tmp_path: Path) -> None:
    backend = EchoBackend()
    a, b = cand(1), cand(1)
    CaptionRunner(spec(), backend, CaptionCache(tmp_path)).run([a, b])
    assert backend.calls == [1] and a.caption == b.caption


CONV = [
    {"role": "user", "content": "<image>\nWhat is it?"},
    {"role": "assistant", "content": "a ball"},
    {"role": "user", "content": "Colour?"},
    {"role": "assistant", "content": "red"},
]


def conv_cand() -> Candidate:
    return Candidate(
        key="c", source="s", category="caption", raw_id="c", conversation=[dict(t) for t in CONV]
    )


def test_policy_replace_conversation_last_assistant() -> None:
    c = conv_cand()
    assert original_text(c) == "red"
    apply_caption(c, "replace", "Describe.", "NEW")
    assert c.conversation[:3] == CONV[:3]
    assert c.conversation[3] == {"role": "assistant", "content": "NEW"}


def test_policy_add_turn() -> None:
    c = conv_cand()
    apply_caption(c, "add_turn", "Describe.", "NEW")
    assert c.conversation == [
        *CONV,
        {"role": "user", "content": "Describe."},
        {"role": "assistant", "content": "NEW"},
    ]
    cap = Candidate(key="k", source="s", category="caption", raw_id="k", caption="old")
    apply_caption(cap, "add_turn", "Describe.", "NEW")
    assert cap.caption is None
    assert [t["content"] for t in cap.conversation] == ["<image>", "old", "Describe.", "NEW"]
    bare = Candidate(key="k", source="s", category="caption", raw_id="k")
    apply_caption(bare, "add_turn", "Describe.", "NEW")
    assert [t["content"] for t in bare.conversation] == ["<image>\nDescribe.", "NEW"]


def test_policy_keep_original() -> None:
    c = Candidate(key="k", source="s", category="caption", raw_id="k", caption="old")
    apply_caption(c, "keep_original", "Describe.", "NEW")
    assert c.caption == "old" and c.meta["caption_generated"] == "NEW"


def test_checks() -> None:
    check = CaptionChecker(CaptionChecks(min_chars=5, max_chars=20, max_repetition=0.5))
    assert check("   ") == "empty"
    assert check("a cat") is None
    assert check("cat") == "too_short"
    assert check("x" * 21 + " y") == "too_long"
    assert check("go go go go go go go") == "repetition"
    assert repetition("a red ball on a green field") == 0.0
    assert repetition("ababababababab") > 0.5


def test_language_check_uses_the_language_id_operator() -> None:
    check = CaptionChecker(CaptionChecks(languages=["en"]))
    assert check("A small brown dog is sleeping on a red sofa in the living room.") is None
    reason = check("Un petit chien brun dort sur un canapé rouge dans le salon.")
    assert reason is not None and reason.startswith("language:") and "en" not in reason


def test_device_choice_and_resources() -> None:
    assert pick_device("cpu") == "cpu"
    assert pick_device("npu") == "npu"
    assert pick_device("auto") in ("cpu", "cuda", "npu")
    with pytest.raises(ValueError):
        pick_device("tpu")
    assert pick_cluster_device("auto", {"CPU": 8, "GPU": 2}) == "cuda"
    assert pick_cluster_device("auto", {"CPU": 8, "NPU": 8}) == "npu"
    assert pick_cluster_device("auto", {"CPU": 8}) == "cpu"
    assert pick_cluster_device("cpu", {"GPU": 2}) == "cpu"
    assert actor_resources("cuda") == {"num_gpus": 1}
    assert actor_resources("npu") == {"resources": {"NPU": 1}}
    assert actor_resources("cpu") == {"num_cpus": 1}


def test_provenance_json_round_trips_into_sample_field(tmp_path: Path) -> None:
    c = cand(0)
    CaptionRunner(spec(), EchoBackend(), CaptionCache(tmp_path)).run([c])
    row = c.to_row()
    meta = json.loads(row["meta"])
    assert CaptionProvenance.model_validate_json(meta[PROVENANCE_META]).original == "old caption 0"
    assert hashlib.sha256(b"img0").hexdigest() not in row["meta"]  # keys stay in the cache
