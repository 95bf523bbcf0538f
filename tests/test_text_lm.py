"""Text corpora (``text:DIR``), language-model training and metrics, and the rnn_cell CLI path."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from archsearch.core import Fidelity, Task, TrialState
from archsearch.data import load_splits
from archsearch.data.text import EOS, UNK, TextCorpus
from archsearch.errors import ConfigError, DataError
from archsearch.estimation import TrainingEvaluator, evaluate_model, run_trial, train_model
from archsearch.experiment import load_checkpoint
from archsearch.spaces import create_space
from conftest import journal_rows as trials

SUBJECTS, VERBS, OBJECTS = ["the cat", "a dog", "the bird"], ["sees", "eats", "likes"], ["fish", "seeds", "milk"]


def toy_sentences(n: int, seed: int) -> list[str]:
    """A seeded toy grammar: subject verb object, with a verb-dependent object (learnable)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = int(rng.integers(3))
        out.append(f"{SUBJECTS[int(rng.integers(3))]} {VERBS[v]} {OBJECTS[v] if rng.random() < 0.9 else 'milk'}")
    return out


def write_corpus(folder, prefix: str = "", n: int = 200, extra_valid: str = "") -> str:
    os.makedirs(folder, exist_ok=True)
    for split, count, seed in (("train", n, 0), ("valid", n // 4, 1), ("test", n // 4, 2)):
        lines = toy_sentences(count, seed) + ([extra_valid] if split == "valid" and extra_valid else [])
        with open(os.path.join(folder, f"{prefix}{split}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return str(folder)


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "toy", prefix="toy.", n=240)


# -- the dataset --------------------------------------------------------------------
def test_word_corpus_vocabulary_unknowns_eos_and_shifted_windows(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "train.txt").write_text("b a b\n\nc a b\n", encoding="utf-8")
    (folder / "valid.txt").write_text("a zebra b\n", encoding="utf-8")
    (folder / "test.txt").write_text("c c c c\n", encoding="utf-8")
    splits = TextCorpus(path=str(folder), seq_len=2).load()
    # <unk>, <eos>, then by count: b (3), a (2), c (1); the blank line is skipped
    assert splits.vocab == (UNK, EOS, "b", "a", "c") and splits.num_classes == 5
    assert splits.task == Task((2,), 5, kind="language_model")
    # train stream: b a b <eos> c a b <eos> = 2 3 2 1 4 3 2 1 -> 3 windows of 2 (+ next token)
    assert splits.train.x.tolist() == [[2, 3], [2, 1], [4, 3]]
    assert splits.train.y.tolist() == [[3, 2], [1, 4], [3, 2]]
    assert splits.train.x.dtype == splits.train.y.dtype == torch.int64
    # valid: a zebra b <eos> -> 'zebra' is <unk> (0)
    assert splits.valid.x.tolist() == [[3, 0]] and splits.valid.y.tolist() == [[0, 2]]
    # capped vocabulary and min_count map rare words to <unk>
    capped = TextCorpus(path=str(folder), seq_len=2, max_vocab=4).load()
    assert capped.vocab == (UNK, EOS, "b", "a") and 0 in capped.train.x.tolist()[2]
    assert TextCorpus(path=str(folder), seq_len=2, min_count=2).load().vocab == (UNK, EOS, "b", "a")


def test_char_level_and_lowercase(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "train.txt").write_text("Ab a\n", encoding="utf-8")
    (folder / "valid.txt").write_text("abba\n", encoding="utf-8")
    (folder / "test.txt").write_text("baab\n", encoding="utf-8")
    splits = TextCorpus(path=str(folder), level="char", seq_len=3).load()
    assert splits.vocab == (UNK, EOS, " ", "A", "a", "b")  # counts all 1: sorted
    assert splits.train.x.tolist() == [[3, 5, 2]] and splits.train.y.tolist() == [[5, 2, 4]]
    lower = TextCorpus(path=str(folder), level="char", seq_len=3, lowercase=True).load()
    assert lower.vocab == (UNK, EOS, "a", " ", "b")


def test_prefixed_file_names_and_the_registry(corpus):
    splits = load_splits({"name": "text", "path": corpus, "seq_len": 7})
    assert splits.task.kind == "language_model" and splits.train.x.shape[1] == 7
    assert set(splits.vocab) == {UNK, EOS, "the", "a", "cat", "dog", "bird", *VERBS, *OBJECTS}


@pytest.mark.parametrize("setup, match", [
    (lambda d: None, r"expected exactly one train file \(train.txt or NAME.train.txt\), found none"),
    (lambda d: [(d / n).write_text("a b\n") for n in ("train.txt", "x.train.txt")],
     r"expected exactly one train file .*found 2: train.txt, x.train.txt"),
    (lambda d: [(d / f"{s}.txt").write_text("" if s == "valid" else "a b c\n") for s in ("train", "valid", "test")],
     r"valid.txt: the file is empty"),
    (lambda d: [(d / f"{s}.txt").write_text(" \n\t\n" if s == "test" else "a b c\n") for s in ("train", "valid", "test")],
     r"test.txt: the file is empty"),
    (lambda d: [(d / f"{s}.txt").write_bytes(b"a \xff b\n" if s == "train" else b"a b c\n")
                for s in ("train", "valid", "test")], r"train.txt: not UTF-8 text \(invalid byte 0xff at offset 2\)"),
    (lambda d: [(d / f"{s}.txt").write_text("a b\n") for s in ("train", "valid", "test")],
     r"3 tokens, too few for one window of seq_len=35"),
])
def test_bad_corpora_are_one_line_data_errors(tmp_path, setup, match):
    folder = tmp_path / "bad"
    folder.mkdir()
    setup(folder)
    with pytest.raises(DataError, match=match) as info:
        TextCorpus(path=str(folder)).load()
    assert "\n" not in str(info.value)


def test_bad_options_and_paths(tmp_path):
    with pytest.raises(ConfigError, match="dataset.level must be one of: word, char"):
        TextCorpus(path=str(tmp_path), level="byte")
    with pytest.raises(ConfigError, match="dataset.seq_len"):
        TextCorpus(path=str(tmp_path), seq_len=0)
    with pytest.raises(ConfigError, match="needs a folder"):
        TextCorpus(path=None)
    with pytest.raises(DataError, match="text corpus folder not found"):
        TextCorpus(path=str(tmp_path / "missing")).load()


# -- training and metrics -----------------------------------------------------------
def test_a_language_model_trains_and_its_perplexity_drops(corpus):
    space = create_space("rnn_cell", hidden=16)
    ev = TrainingEvaluator({"name": "text", "path": corpus, "seq_len": 8}, lr=1e-2, batch_size=16)
    assert ev.objective == "neg_valid_ppl" and ev.clip_norm() == 0.25
    vocab = ev.task().num_classes
    r = run_trial(ev, space, space.parse("LSTM"), Fidelity(epochs=4), seed=0)
    assert r.status is TrialState.COMPLETE, r.error
    ppl = [p["valid_ppl"] for p in r.curve]
    assert ppl[-1] < ppl[0] and ppl[-1] < vocab / 2  # well below a uniform guess over the vocabulary
    m = r.metrics
    assert m["valid_ppl"] == pytest.approx(math.exp(m["valid_loss"])) and m["neg_valid_ppl"] == -m["valid_ppl"]
    assert 0 < m["valid_acc"] <= 1 and m["flops"] > 0
    final = ev.final(space, space.parse("LSTM"), Fidelity(epochs=1), seed=0, train_on_valid=False)
    fm = final.result.metrics
    assert fm["test_ppl"] == pytest.approx(math.exp(fm["test_loss"])) and "valid_ppl" in fm


def test_the_objective_follows_the_task_and_clipping_is_an_option(corpus):
    assert TrainingEvaluator({"name": "digits"}).objective == "valid_acc"
    assert TrainingEvaluator({"name": "digits"}).clip_norm() is None
    assert TrainingEvaluator({"name": "text", "path": corpus}, grad_clip=0).clip_norm() is None
    assert TrainingEvaluator({"name": "digits"}, grad_clip=2).clip_norm() == 2.0
    with pytest.raises(ConfigError, match="evaluator.grad_clip"):
        TrainingEvaluator({"name": "digits"}, grad_clip=-1)


def test_gradient_clipping_bounds_each_step(corpus):
    splits = load_splits({"name": "text", "path": corpus, "seq_len": 8})
    space = create_space("rnn_cell", leaves=2, hidden=8)
    moved = {}
    for clip in (None, 1e-6):
        torch.manual_seed(0)
        model = space.build(space.sample(np.random.default_rng(0)), splits.task)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        train_model(model, splits.train, 1, batch_size=64, lr=0.5, weight_decay=0.0, optimizer="sgd",
                    label_smoothing=0.0, generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                    grad_clip=clip)
        moved[clip] = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()
    steps = math.ceil(len(splits.train) / 64)
    assert moved[1e-6] <= 0.5 * 1e-6 * steps * 10 < moved[None]  # lr * clip * steps (* momentum gain)


# -- the CLI ------------------------------------------------------------------------
LM_ARGS = ["--set", "space.leaves=2", "--set", "space.hidden=8", "--set", "dataset.seq_len=8", "--epochs", "1",
           "--quiet"]



@pytest.mark.parametrize("strategy", ["random", "grid", "evolution", "local_search", "tpe", "reinforce", "bananas"])
def test_cli_search_on_a_text_corpus_with_every_multi_trial_strategy(run_cli, corpus, tmp_path, strategy):
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--space", "rnn_cell", "--dataset", f"text:{corpus}", "--strategy", strategy,
                           "--budget", "3", "--out", out, "--set", "final.enabled=false", *LM_ARGS)
    assert code == 0, err
    rows = trials(out)
    assert len(rows) == 3 and all(r["state"] == "complete" for r in rows)
    for r in rows:
        metrics = json.loads(r["metrics"])
        assert r["reward"] == pytest.approx(-metrics["valid_ppl"]) and metrics["valid_ppl"] > 1


def test_cli_final_checkpoint_rebuilds_the_language_model(run_cli, corpus, tmp_path):
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--space", "rnn_cell", "--dataset", f"text:{corpus}", "--budget", "2",
                           "--out", out, "--set", "final.enabled=true", "--set", "final.epochs=1", *LM_ARGS)
    assert code == 0, err
    best = json.load(open(os.path.join(out, "best.json")))
    model, ckpt = load_checkpoint(os.path.join(out, "best_model.pt"))
    assert ckpt["task"]["kind"] == "language_model" and ckpt["space"] == "rnn_cell"
    splits = load_splits({"name": "text", "path": corpus, "seq_len": 8})
    _, loss = evaluate_model(model, splits.test, torch.device("cpu"))
    assert math.exp(loss) == pytest.approx(best["metrics"]["test_ppl"], rel=1e-5)


def test_cli_rnn_cell_on_digits_is_sequence_classification(run_cli, tmp_path):
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--space", "rnn_cell", "--budget", "2", "--epochs", "1", "--data-fraction", "0.3",
                           "--set", "space.leaves=2", "--set", "space.hidden=16", "--set", "final.enabled=false",
                           "--out", out, "--quiet")
    assert code == 0, err
    rows = trials(out)
    assert [r["state"] for r in rows] == ["complete", "complete"]
    assert all(r["reward"] == json.loads(r["metrics"])["valid_acc"] for r in rows)


def test_cli_describe_the_lstm(run_cli):
    code, out, err = run_cli("describe", "--space", "rnn_cell", "--arch", "LSTM", "--input-shape", "1,8,8")
    assert code == 0, err
    assert "space   rnn_cell" in out and "[Add, Identity" in out and "RNNStack" in out
    code, _, err = run_cli("describe", "--space", "rnn_cell", "--arch", "[Add, Tanh]")
    assert code == 2 and "expected 4 * leaves + 2 comma-separated tokens" in err


def test_a_folder_of_train_valid_test_text_files_is_detected_as_text(corpus, tmp_path):
    from archsearch.data import detect_format

    assert detect_format(corpus) == "text"
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "train.txt").write_text("a b\n")  # no valid/test: not a corpus
    with pytest.raises(DataError, match="train/valid/test .txt files"):
        detect_format(str(tmp_path / "partial"))
