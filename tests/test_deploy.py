"""The found model: raw inputs in (preprocessing saved with it), predictions out, old checkpoints,
``archsearch predict`` on every input kind, and bad input that changes nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import archsearch
from archsearch.data import DATASETS
from archsearch.deploy.checkpoint import NoPreprocessingWarning
from archsearch.errors import ArchsearchError, DataError
from conftest import TINY_ARGS, tree_digest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """`archsearch search --budget 3 --epochs 1` with a short final training (the issue's run, tiny)."""
    from archsearch.cli import main

    out = str(tmp_path_factory.mktemp("deploy") / "run")
    args = ["search", "--out", out, "--budget", "3", *TINY_ARGS, "--set", "final.enabled=true",
            "--set", "final.epochs=6", "--seed", "3"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    return out


def test_the_model_takes_raw_digits_and_reproduces_the_test_accuracy_to_the_image(digits_run):
    model = archsearch.load_model(digits_run)
    assert isinstance(model, torch.nn.Module) and not model.training
    ckpt = model.info
    assert ckpt["format"] == "archsearch.checkpoint/2"
    assert ckpt["preprocess"]["kind"] == "image" and ckpt["preprocess"]["scale"] == 16.0
    assert ckpt["input_shape"] == [1, 8, 8] and ckpt["versions"]["torch"] == str(torch.__version__)
    assert ckpt["search"]["complete"] == 3 and ckpt["data"]["name"] == "digits"
    # the raw test split (values 0..16, as scikit-learn returns them), found again by the config's seed
    x, y = DATASETS.create("digits").raw_test(seed=3)
    assert x.max() > 1.0  # really raw, not normalised
    preds = model.predict(x)
    correct = int((preds.classes == y).sum())
    assert correct == round(ckpt["metrics"]["test_acc"] * len(y))
    # the same network without its preprocessing gets the raw inputs badly wrong (the bug this fixes)
    network, _ = archsearch.load_checkpoint(digits_run)
    with torch.no_grad():
        bare = network(torch.as_tensor(x)).argmax(1).numpy()
    assert (bare == y).sum() < correct
    # one image, (H, W) and channel-last inputs are accepted; probabilities sum to one
    one = model.predict(x[0, 0], top=3)
    assert one.classes[0] == preds.classes[0] and one.top_probs.shape == (1, 3)
    assert np.allclose(model.predict(x.transpose(0, 2, 3, 1)).classes, preds.classes)
    assert np.allclose(torch.softmax(torch.as_tensor(one.logits), 1).sum(), 1.0, atol=1e-5)


def test_predict_cli_on_the_run_npz_and_csv(digits_run, run_cli, tmp_path):
    code, out, err = run_cli("predict", digits_run)
    assert code == 0, err
    model = archsearch.load_model(digits_run)
    recorded = model.info["metrics"]["test_acc"]
    assert f"accuracy {recorded:.4f} against their labels" in " ".join(out.split())

    x, y = DATASETS.create("digits").raw_test(seed=3)
    npz = tmp_path / "raw.npz"
    np.savez(npz, x=x[:, 0], y=y)  # (N, H, W): the channel axis may be left out
    csv_path = tmp_path / "preds.csv"
    code, out, err = run_cli("predict", digits_run, str(npz), "--top", "3", "--out", str(csv_path))
    assert code == 0, err
    assert f"accuracy {recorded:.4f} against their labels" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0].split(",")[:7] == ["input", "class", "name", "probability", "class_2", "name_2", "probability_2"]
    assert len(lines) == len(y) + 1 and lines[0].endswith("label,correct")


def test_old_checkpoints_load_with_a_warning(digits_run, tmp_path):
    ckpt = torch.load(os.path.join(digits_run, "best_model.pt"), weights_only=True)
    old = {k: v for k, v in ckpt.items() if k in ("space", "space_options", "arch", "arch_json", "task", "config",
                                                  "metrics", "state_dict")}
    old["format"] = "archsearch.checkpoint/1"
    path = tmp_path / "old.pt"
    torch.save(old, path)
    network, loaded = archsearch.load_checkpoint(str(path))  # the old API still works
    assert loaded["arch"] == ckpt["arch"]
    with pytest.warns(NoPreprocessingWarning, match="without preprocessing"):
        model = archsearch.load_model(str(path))
    splits = archsearch.data.load_splits({"name": "digits"}, seed=3)
    with torch.no_grad():
        assert torch.equal(model(splits.test.x), network(splits.test.x))  # normalised inputs, as before


def test_an_image_folder_run_predicts_pngs_with_the_folder_names(tmp_path, run_cli):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for label, name in enumerate(["bars", "blank", "cross"]):
        (root / name).mkdir(parents=True)
        for i in range(30):
            img = rng.integers(0, 40, (10, 10)).astype(np.uint8)
            if name == "bars":
                img[:, ::3] = 250
            elif name == "cross":
                img[4:6, :] = 250
                img[:, 4:6] = 250
            Image.fromarray(img).save(root / name / f"{i}.png")
    out = str(tmp_path / "run")
    code, _, err = run_cli("search", "--dataset", f"image_folder:{root}", "--out", out, "--budget", "2", *TINY_ARGS,
                           "--set", "final.enabled=true", "--set", "final.epochs=8", "--set", "fidelity.data_fraction=1")
    assert code == 0, err
    model = archsearch.load_model(out)
    assert model.class_names == ("bars", "blank", "cross") and model.info["preprocess"]["dtype"] == "uint8"
    code, stdout, err = run_cli("predict", out, str(root / "cross" / "3.png"), "--top", "2")
    assert code == 0, err
    assert "cross" in stdout
    code, stdout, err = run_cli("predict", out, str(root))  # a folder: class sub-folders give the labels
    assert code == 0, err
    text = " ".join(stdout.split())
    assert "90 inputs" in text and "accuracy" in text
    accuracy = float(text.split("accuracy ")[1].split()[0])
    # PNG files are decoded as the data source decoded them for training: the same predictions
    raw = DATASETS.create("image_folder", path=str(root)).load_raw()
    assert accuracy == pytest.approx((model.predict(raw.x).classes == raw.y).mean(), abs=1e-4)
    x, y = DATASETS.create("image_folder", path=str(root)).raw_test(seed=0)
    assert round((model.predict(x).classes == y).mean() * len(y)) == round(model.info["metrics"]["test_acc"] * len(y))


def _bad(run_cli, *args):
    code, out, err = run_cli(*args)
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_input_is_one_line_and_exit_2_and_changes_nothing(digits_run, run_cli, tmp_path, monkeypatch):
    before = tree_digest(digits_run)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no best_model.pt" in _bad(run_cli, "predict", str(empty))
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    assert "not an archsearch checkpoint" in _bad(run_cli, "predict", str(other))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    assert "cannot load checkpoint" in _bad(run_cli, "export", str(corrupt))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 3, 8, 8), dtype=np.float32))
    assert "(N, 1, 8, 8)" in _bad(run_cli, "predict", digits_run, str(wrong))
    assert "not found" in _bad(run_cli, "predict", digits_run, str(tmp_path / "missing.png"))
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    assert "need a language model" in _bad(run_cli, "predict", digits_run, str(text))
    assert "unknown export format 'pdf' (valid: onnx, torchscript, code, all)" in _bad(
        run_cli, "export", digits_run, "--format", "pdf")
    assert "--top must be" in _bad(run_cli, "predict", digits_run, "--top", "0")
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    assert "pip install 'archsearch[export]'" in _bad(run_cli, "export", digits_run, "--format", "onnx")
    assert tree_digest(digits_run) == before


def test_model_predict_rejects_wrong_inputs(digits_run):
    model = archsearch.load_model(digits_run)
    with pytest.raises(DataError, match=r"expects raw images of shape \(N, 1, 8, 8\)"):
        model.predict(np.zeros((2, 9, 9)))
    with pytest.raises(DataError, match="numeric"):
        model.predict(np.array([["a"]]))


def test_the_end_of_a_search_names_the_model_and_the_next_commands(tmp_path):
    from archsearch.cli import _next_steps

    text = _next_steps(str(tmp_path))
    assert "best_model.pt" not in text and "final.enabled=false" in text
    (tmp_path / "best_model.pt").write_bytes(b"")
    text = _next_steps(str(tmp_path))
    for command in ("archsearch predict", "archsearch export", "archsearch show", "load_model"):
        assert command in text


def test_text_model_predicts_the_next_token_from_strings(tmp_path):
    from archsearch.deploy.model import FoundModel
    from archsearch.deploy.preprocess import Tokenizer

    vocab = ["<unk>", "<eos>", "the", "cat", "sat"]
    tok = Tokenizer(vocab, lowercase=True)
    assert tok.encode("The CAT flew") == [2, 3, 0]

    class Echo(torch.nn.Module):  # next token = the current one: logits one-hot on the input id
        def forward(self, x):
            return torch.nn.functional.one_hot(x, 5).float() * 10

    model = FoundModel(Echo(), torch.nn.Identity(), (4,), vocab, {"task": {"kind": "language_model"}}, tok)
    preds = model.predict(["the cat", "sat"])
    assert preds.names == ["cat", "sat"]
    with pytest.raises(DataError, match="no tokens"):
        model.predict([""])
    with pytest.raises(ArchsearchError, match="0..4"):
        model.predict(np.array([[7, 1]]))


def test_a_model_searched_at_a_lower_resolution_resizes_raw_inputs_itself(tmp_path):
    from archsearch.deploy.export import export_run
    from conftest import tiny_config

    run = str(tmp_path / "run")
    cfg = tiny_config(fidelity={"epochs": 1, "data_fraction": 0.3, "resolution": 6},
                      final={"enabled": True, "epochs": 3}, budget={"trials": 1})
    archsearch.run_search(cfg, run, quiet=True)
    model = archsearch.load_model(run)
    assert model.info["preprocess"]["resolution"] == 6 and model.info["task"]["input_shape"] == [1, 6, 6]
    assert model.input_shape == (1, 8, 8)  # it takes the raw 8x8 digits
    x, y = DATASETS.create("digits").raw_test(seed=0)
    correct = int((model.predict(x).classes == y).sum())
    assert correct == round(model.info["metrics"]["test_acc"] * len(y))
    report = export_run(run, ["onnx", "torchscript"], str(tmp_path / "export"))
    assert all(e.agree == e.total == len(y) and e.max_diff <= 1e-4 for e in report.exported)
