"""Optional pretrained encoders from a local folder (`--vision_model`, `--text_model`),
tested with tiny randomly initialised ViT and RoBERTa models saved to a temp dir.
Skipped when `transformers` is not installed (it is optional)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from training.batches import collate  # noqa: E402
from training.config import ModelConfig  # noqa: E402
from training.data import PageDataset  # noqa: E402
from training.evaluate import main as evaluate_main  # noqa: E402
from training.losses import LossWeights, closure_losses  # noqa: E402
from training.model import build_model, sample_mpm_mask  # noqa: E402
from training.synthetic import SyntheticCorpus  # noqa: E402
from training.train_cli import main as train_main  # noqa: E402


@pytest.fixture(scope="module")
def local_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(ViT folder, RoBERTa folder with its tokenizer): random weights, nothing downloaded."""
    root = tmp_path_factory.mktemp("hf")
    vit = transformers.ViTModel(
        transformers.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    vit.save_pretrained(root / "vit")
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for word in [
        "where",
        "did",
        "go",
        "the",
        "run",
        "now",
        "we",
        "have",
        "to",
        "find",
        "!",
        "?",
        ".",
        ",",
    ]:
        vocab.setdefault(word, len(vocab))
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = tokenizers.normalizers.Lowercase()
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    roberta = transformers.RobertaModel(
        transformers.RobertaConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=72,
            pad_token_id=1,
        )
    )
    roberta.save_pretrained(root / "roberta")
    fast.save_pretrained(root / "roberta")
    return str(root / "vit"), str(root / "roberta")


def test_pretrained_encoders_train(corpus: SyntheticCorpus, local_models: tuple[str, str]) -> None:
    vit, roberta = local_models
    cfg = ModelConfig(
        image_size=48,
        dim=32,
        num_heads=2,
        max_tokens=32,
        context_layers=1,
        vision_model=vit,
        text_model=roberta,
    )
    model = build_model(cfg)
    ds = PageDataset(corpus.pages[:4], image_root=str(corpus.image_root), config=cfg)
    batch = collate([ds[i] for i in range(4)], cfg.max_panels)
    mask = sample_mpm_mask(batch.panel_mask, 0.25, torch.Generator().manual_seed(0))
    losses = closure_losses(model(batch, mask), batch, LossWeights())
    losses["total"].backward()
    for part in (model.atomizer.vision.model, model.atomizer.text.model):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_train_and_evaluate_with_local_models(
    corpus: SyntheticCorpus, local_models: tuple[str, str], tmp_path: Path
) -> None:
    vit, roberta = local_models
    out = tmp_path / "run"
    argv = [
        "--json_dir",
        str(corpus.pages_dir),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(out),
        "--epochs",
        "1",
        "--max_samples",
        "8",
        "--image_size",
        "32",
        "--dim",
        "32",
        "--num_heads",
        "2",
        "--num_workers",
        "0",
        "--no_progress",
        "--vision_model",
        vit,
        "--text_model",
        roberta,
    ]
    assert train_main(argv) == 0
    report = tmp_path / "r.json"
    assert (
        evaluate_main(
            [
                "--checkpoint",
                str(out / "latest.pt"),
                "--json_dir",
                str(corpus.pages_dir),
                "--image_root",
                str(corpus.image_root),
                "--max_samples",
                "4",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    assert json.loads(report.read_text())["pages"] == 4


def test_a_missing_local_model_is_a_clear_error(
    corpus: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [
        "--json_dir",
        str(corpus.pages_dir),
        "--output_dir",
        str(tmp_path),
        "--epochs",
        "1",
        "--vision_model",
        str(tmp_path / "nope"),
        "--no_progress",
        "--num_workers",
        "0",
    ]
    assert train_main(argv) == 1
    assert "not a local model folder" in capsys.readouterr().err
