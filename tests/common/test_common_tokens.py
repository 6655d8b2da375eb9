import pytest

from mindvl.common.chat import IM_END, render_sample
from mindvl.common.sample import Turn
from mindvl.common.text_tokens import TextTokenizer
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.common.tokens import FACTOR, ImageTokenRule, image_tokens, patch_grid, smart_resize


@pytest.mark.parametrize(
    "w,h", [(640, 480), (1000, 30), (28, 28), (5, 7), (4000, 3000), (333, 777)]
)
def test_smart_resize_multiples_of_28_within_bounds(w, h):
    lo, hi = 4 * 784, 256 * 784
    rw, rh = smart_resize(w, h, lo, hi)
    assert rw % FACTOR == 0 and rh % FACTOR == 0
    assert lo <= rw * rh <= hi
    # aspect ratio kept up to rounding to the 28 grid
    assert abs(rw / rh - w / h) / (w / h) < 0.35 or min(rw, rh) == FACTOR


def test_image_tokens_one_per_28x28_area():
    assert image_tokens(280, 280, 4 * 784, 1_000_000) == 100
    assert image_tokens(56, 28, 1, 1_000_000) == 2
    # a large image is capped by max_pixels
    assert image_tokens(4000, 4000, 784, 64 * 784) == 64
    assert patch_grid(280, 140, 784, 1_000_000) == (1, 10, 20)


def test_aspect_ratio_and_bounds_rejected():
    with pytest.raises(ValueError, match="aspect"):
        smart_resize(10000, 10, 784, 10**6)
    with pytest.raises(ValueError):
        ImageTokenRule(min_pixels=10_000, max_pixels=1_000)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = [
        "A red circle and two blue squares.",
        "How many circles are there?",
        "What text is written?",
    ] * 30
    path = train_bpe_tokenizer(texts, 400, tmp_path_factory.mktemp("tok"))
    return TextTokenizer.from_path(path)


def test_special_tokens_are_single_ids(tokenizer):
    assert len(tokenizer.encode(IM_END)) == 1
    assert len(tokenizer.encode("<|image_pad|>")) == 1


def test_sample_tokens_sum_of_pieces_and_loss_only_on_answers(tokenizer):
    conv = [
        Turn(role="user", content="<image>\nHow many circles are there?"),
        Turn(role="assistant", content="2"),
    ]
    rule = ImageTokenRule(min_pixels=784, max_pixels=64 * 784)
    counts = tokenizer.sample_tokens(conv, None, [(280, 140)], rule)
    assert counts.image == rule.tokens(280, 140) == 50
    pieces = render_sample(conv, None, 1)
    assert counts.text == sum(len(tokenizer.encode(p.text)) for p in pieces if p.text is not None)
    trained = "".join(p.text for p in pieces if p.train)
    assert trained == "2" + IM_END
    cap = render_sample(None, "A red circle.", 1)
    assert [p.image for p in cap if p.image is not None] == [0]
    assert "".join(p.text for p in cap if p.train) == "A red circle.<|endoftext|>"


def test_tokenizer_without_specials_is_refused(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from mindvl.common.errors import UserError

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        ["just words here"] * 5, trainers.BpeTrainer(vocab_size=50, special_tokens=["[UNK]"])
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path)
    with pytest.raises(UserError, match="special tokens"):
        TextTokenizer.from_path(tmp_path)
