"""Train a small byte-level BPE tokenizer with mindvl's special tokens.

Nothing downloads a tokenizer at run time: tests and the demo train one on their own corpus
in about a second; real runs point recipes and stage configs at a local pretrained one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from mindvl.common.chat import END_OF_TEXT, PAD, SPECIAL_TOKENS
from mindvl.common.errors import UserError

TEXT_COLUMNS = ("caption", "question", "answer", "text")


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path) -> Path:
    """Train and save a HF fast tokenizer (``tokenizer.json`` + config) to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END_OF_TEXT, pad_token=PAD)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out


def iter_texts(paths: Iterable[Path]) -> Iterator[str]:
    """Lines of ``.txt`` files and the text columns of ``.parquet`` files."""
    for path in paths:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            for col in TEXT_COLUMNS:
                if col in table.column_names:
                    yield from (
                        v for v in table.column(col).to_pylist() if isinstance(v, str) and v
                    )
        else:
            yield from path.read_text(encoding="utf-8", errors="replace").splitlines()


@click.group("tokenizer")
def tokenizer_group() -> None:
    """Train the small BPE tokenizers used by tests and the demo."""


@click.command("train")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--vocab-size", default=2048, show_default=True, type=click.IntRange(min=300))
@click.option("--out", required=True, type=click.Path(path_type=Path))
def train_command(files: tuple[Path, ...], vocab_size: int, out: Path) -> None:
    """Train on FILES (.txt lines, or caption/question/answer columns of .parquet)."""
    for f in files:
        if not f.is_file():
            raise UserError(f"not a file: {f}")
    path = train_bpe_tokenizer(iter_texts(files), vocab_size, out)
    click.echo(f"tokenizer written to {path}")


tokenizer_group.add_command(train_command)
