import pytest
import torch
from click.testing import CliRunner

from mindvl.common.cli import cli
from mindvl.common.errors import UserError
from mindvl.trainer.averaging import average_checkpoints
from mindvl.trainer.model.checkpoint_io import load_mindvl, save_mindvl
from mindvl.trainer.model.mindvl import MindVL
from mindvl.trainer.model.tiny import tiny_config
from mindvl.trainer.provenance import read_provenance, write_provenance


def _save(model, path, parent=None, **details):
    save_mindvl(model, path)
    write_provenance(path, parent=parent, **details)
    return path


@pytest.fixture()
def family(tmp_path):
    torch.manual_seed(0)
    base = MindVL(tiny_config(vocab_size=64, image_pad_token_id=5))
    root = _save(base, tmp_path / "root", stage="warmup")
    children = []
    for i, seq_len in enumerate((256, 512)):
        child = MindVL(base.config)
        child.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in child.parameters():
                p.add_(torch.randn_like(p) * 0.01 * (i + 1))
        children.append(
            _save(
                child,
                tmp_path / f"mt{seq_len}",
                parent=root,
                stage="multitask",
                trained={"seq_len": seq_len},
            )
        )
    return tmp_path, root, children


def test_average_is_weighted_mean_and_keeps_ties(family):
    tmp, _, (a, b) = family
    record = average_checkpoints([a, b], tmp / "avg", weights=[3, 1])
    ma, mb, avg = load_mindvl(a), load_mindvl(b), load_mindvl(tmp / "avg")
    for (name, pa), pb, pv in zip(
        ma.named_parameters(), mb.parameters(), avg.parameters(), strict=True
    ):
        torch.testing.assert_close(pv, 0.75 * pa + 0.25 * pb, atol=1e-6, rtol=1e-5, msg=name)
    # tied input/output embeddings stay tied after the round trip
    assert (
        avg.llm.get_input_embeddings().weight.data_ptr()
        == avg.llm.get_output_embeddings().weight.data_ptr()
    )
    assert [i["weight"] for i in record["averaged_from"]] == [0.75, 0.25]
    weights, config = tmp / "avg" / "model.safetensors", tmp / "avg" / "config.json"
    assert weights.stat().st_mode & 0o777 == config.stat().st_mode & 0o777
    prov = read_provenance(tmp / "avg")
    assert prov["averaged_from"][0]["trained"] == {"seq_len": 256}
    assert read_provenance(a)["id"] in prov["ancestors"]


def test_refuses_unrelated_and_mismatched(family, tmp_path):
    tmp, _, (a, _) = family
    torch.manual_seed(1)
    stranger = _save(
        MindVL(tiny_config(vocab_size=64, image_pad_token_id=5)), tmp / "stranger", stage="warmup"
    )
    with pytest.raises(UserError, match="share no ancestor"):
        average_checkpoints([a, stranger], tmp / "x")
    bigger = _save(MindVL(tiny_config(vocab_size=80, image_pad_token_id=5)), tmp / "bigger")
    with pytest.raises(UserError, match="architectures differ at llm.vocab_size: 64 vs 80"):
        average_checkpoints([a, bigger], tmp / "y")


def test_cli_average_and_errors(family):
    tmp, _, (a, b) = family
    runner = CliRunner()
    res = runner.invoke(cli, ["ckpt", "average", str(a), str(b), "-o", str(tmp / "cli")])
    assert res.exit_code == 0, res.output
    assert "x0.500" in res.output and (tmp / "cli" / "model.safetensors").exists()
    res = runner.invoke(
        cli, ["ckpt", "average", str(a), str(b), "-o", str(tmp / "z"), "--weights", "1,x"]
    )
    assert res.exit_code == 2 and "--weights must be" in res.output


def test_same_checkpoint_twice_is_named_as_such(family):
    import shutil

    tmp, _, (a, _) = family
    shutil.copytree(a, tmp / "copy")
    for pair in ([a, a], [a, tmp / "copy"]):
        res = CliRunner().invoke(cli, ["ckpt", "average", *map(str, pair), "-o", str(tmp / "o")])
        assert res.exit_code == 2
        assert "are the same checkpoint (identical weights)" in res.output
        assert "share no ancestor" not in res.output
