"""Image augmentation (estimation/augment.py): seeded, shape-preserving crops and flips, used by
final training by default and by search trials only when asked."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from archsearch.config import Config
from archsearch.core import Fidelity
from archsearch.data import from_arrays
from archsearch.data.base import Split
from archsearch.errors import ConfigError
from archsearch.estimation import TrainingEvaluator, train_model
from archsearch.estimation.augment import Augment, default_padding, make_augment
from archsearch.spaces import create_space
from conftest import synthetic_images

ARCH = "conv:3:8:relu|conv:3:16:relu"


def dot_images(n: int, row: int, col: int, size: int = 28) -> torch.Tensor:
    """``n`` copies of a dark image with one bright pixel at (row, col)."""
    x = torch.zeros(n, 1, size, size)
    x[:, 0, row, col] = 1.0
    return x


def positions(batch: torch.Tensor) -> list[tuple[int, int] | None]:
    """Where each image's bright pixel ended up (None: cropped away)."""
    out: list[tuple[int, int] | None] = []
    for img in batch[:, 0]:
        hits = img.nonzero().tolist()
        assert len(hits) <= 1
        out.append(tuple(hits[0]) if hits else None)  # type: ignore[arg-type]
    return out


def test_padding_is_a_fourteenth_of_the_shorter_side_and_small_images_are_not_cropped():
    assert default_padding(28, 28) == 2 and default_padding(32, 32) == 2 and default_padding(16, 16) == 1
    assert default_padding(21, 21) == 2 and default_padding(64, 48) == 3 and default_padding(224, 224) == 16
    assert default_padding(8, 8) == 0 and default_padding(15, 64) == 0
    digits = torch.randn(16, 1, 8, 8)
    assert make_augment("crop", 0)(digits) is digits  # type: ignore[misc]  # 8x8: a pixel is an eighth
    mirrored = make_augment("crop+flip", 0)(digits)  # type: ignore[misc]
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(mirrored, digits))


def test_same_seed_gives_the_same_batch_and_another_seed_another():
    x = torch.randn(32, 3, 16, 16)
    a = Augment(torch.Generator().manual_seed(5), flip=True)(x)
    b = Augment(torch.Generator().manual_seed(5), flip=True)(x)
    c = Augment(torch.Generator().manual_seed(6), flip=True)(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    augment = Augment(torch.Generator().manual_seed(5))
    assert not torch.equal(augment(x), augment(x))  # the generator moves on: each batch draws afresh


def test_the_batched_gather_matches_a_per_sample_pad_crop_and_mirror():
    x = torch.randn(40, 3, 9, 11)
    out = Augment(torch.Generator().manual_seed(2), flip=True, padding=3)(x)
    g = torch.Generator().manual_seed(2)  # the same draws, in the documented order: rows, columns, mirrors
    oy, ox = torch.randint(0, 7, (40,), generator=g), torch.randint(0, 7, (40,), generator=g)
    mirror = torch.rand(40, generator=g) < 0.5
    for i in range(40):
        padded = torch.nn.functional.pad(x[i], (3, 3, 3, 3))
        crop = padded[:, oy[i] : oy[i] + 9, ox[i] : ox[i] + 11]
        assert torch.equal(out[i], crop.flip(-1) if mirror[i] else crop)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_gpu_the_same_seed_gives_the_cpu_result():
    x = torch.randn(64, 3, 32, 32)
    cpu = Augment(torch.Generator().manual_seed(4), flip=True)(x)
    gpu = Augment(torch.Generator().manual_seed(4), flip=True)(x.cuda())
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_shape_dtype_and_device_are_preserved(dtype):
    x = torch.randn(7, 3, 16, 20).to(dtype)
    out = Augment(torch.Generator().manual_seed(0), flip=True)(x)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert not torch.equal(out, x)


def test_crop_shifts_content_by_at_most_the_padding_and_pads_with_zeros():
    pad = default_padding(28, 28)
    out = Augment(torch.Generator().manual_seed(0))(dot_images(300, 14, 14))
    moves = [(r - 14, c - 14) for r, c in positions(out)]  # type: ignore[misc]  # a centre pixel stays inside
    assert all(abs(dr) <= pad and abs(dc) <= pad for dr, dc in moves)
    assert {dr for dr, _ in moves} == set(range(-pad, pad + 1))  # every offset occurs, each axis on its own
    assert {dc for _, dc in moves} == set(range(-pad, pad + 1))
    # a pixel at the corner is sometimes cropped away, never wrapped round to the far side (zero padding)
    corner = positions(Augment(torch.Generator().manual_seed(0))(dot_images(300, 0, 0)))
    assert None in corner
    assert all(p is None or (p[0] <= pad and p[1] <= pad) for p in corner)


def test_flip_only_when_asked():
    x, pad = dot_images(300, 14, 2), default_padding(28, 28)  # near the left edge: mirrored, near the right
    plain = positions(make_augment("crop", 0)(x))  # type: ignore[misc]
    assert all(p is None or p[1] <= 2 + pad for p in plain)
    flipped = positions(make_augment("crop+flip", 0)(x))  # type: ignore[misc]
    assert any(p is not None and p[1] >= 25 - pad for p in flipped)  # mirrored: 27 - 2 = 25, then shifted
    assert any(p is not None and p[1] <= 2 + pad for p in flipped)  # and about half kept as they were
    assert make_augment("none", 0) is None


def test_flip_without_padding_mirrors_exactly():
    x = torch.randn(64, 2, 5, 6)
    out = Augment(torch.Generator().manual_seed(1), flip=True, padding=0)(x)
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)


@pytest.mark.parametrize("x", [torch.randn(16, 10), torch.randint(0, 50, (16, 12)), torch.randn(4, 3, 8)],
                         ids=["tabular", "tokens", "3-D"])
def test_non_image_input_is_untouched(x):
    assert Augment(torch.Generator().manual_seed(0), flip=True)(x) is x


def _tiny_train(x: torch.Tensor, y: torch.Tensor, augment=None, seed: int = 0):
    torch.manual_seed(0)
    layers = [nn.Flatten(), nn.LazyLinear(3)] if x.dim() == 4 else [nn.Linear(x.shape[1], 3)]
    model = nn.Sequential(*layers)
    model(x[:2])  # materialise lazy weights before training
    generator = torch.Generator().manual_seed(seed)
    train_model(model, Split(x, y), 2, batch_size=16, lr=1e-2, weight_decay=0.0, optimizer="adamw",
                label_smoothing=0.0, generator=generator, device=torch.device("cpu"), augment=augment)
    return model.state_dict(), generator.get_state()


def test_augmentation_leaves_the_batch_order_and_non_image_training_unchanged():
    x, y = synthetic_images(64, size=16)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    plain, state = _tiny_train(x, y)
    same, same_state = _tiny_train(x, y, augment=lambda b: b)  # an identity augmenter: bit-identical training
    assert all(torch.equal(plain[k], same[k]) for k in plain) and torch.equal(state, same_state)
    cropped, cropped_state = _tiny_train(x, y, augment=make_augment("crop", 0))
    assert torch.equal(state, cropped_state)  # the batch order's generator drew exactly as without
    assert not all(torch.equal(plain[k], cropped[k]) for k in plain)
    again, _ = _tiny_train(x, y, augment=make_augment("crop", 0))
    assert all(torch.equal(cropped[k], again[k]) for k in cropped)
    table = torch.randn(64, 5)
    rows, _ = _tiny_train(table, y)
    rows_aug, _ = _tiny_train(table, y, augment=make_augment("crop+flip", 0))
    assert all(torch.equal(rows[k], rows_aug[k]) for k in rows)


@pytest.fixture
def images():
    x, y = synthetic_images(96, classes=3, size=16)
    return from_arrays(x, y)


@pytest.fixture
def space():
    return create_space("chain", layers=2, channels=[8, 16], stem_channels=8)


def _weights(result):
    return {k: v.clone() for k, v in result.model.state_dict().items()}


def test_final_training_augments_by_default_and_search_trials_do_not(images, space, monkeypatch):
    import archsearch.estimation.training as training

    seen: list[object] = []
    real = training.train_model

    def spy(*args, **kw):
        seen.append(kw["augment"])
        return real(*args, **kw)

    monkeypatch.setattr(training, "train_model", spy)
    arch, fid = space.parse(ARCH), Fidelity(epochs=1)
    default = TrainingEvaluator(images, batch_size=16, device="cpu")
    none = TrainingEvaluator(images, batch_size=16, device="cpu", augment="none")
    both = TrainingEvaluator(images, batch_size=16, device="cpu", augment_search=True)
    search, search_none = default.evaluate(space, arch, fid, seed=3), none.evaluate(space, arch, fid, seed=3)
    both.evaluate(space, arch, fid, seed=3)
    assert seen[0] is None and seen[1] is None  # search trials: not augmented unless augment_search
    assert isinstance(seen[2], Augment) and not seen[2].flip
    assert search.metrics["valid_acc"] == search_none.metrics["valid_acc"]
    assert search.metrics["train_loss"] == search_none.metrics["train_loss"]
    final = _weights(default.final(space, arch, fid, seed=3))
    final_again = _weights(default.final(space, arch, fid, seed=3))
    final_none = _weights(none.final(space, arch, fid, seed=3))
    assert isinstance(seen[3], Augment) and seen[5] is None
    assert all(torch.equal(final[k], final_again[k]) for k in final)  # seeded: the same weights again
    assert not all(torch.equal(final[k], final_none[k]) for k in final)  # the default crop really trained


def test_a_bad_augment_value_is_one_line_naming_the_option_and_the_choices():
    for make in (lambda: Config.from_dict({"evaluator": {"name": "train", "augment": "rotate"}}),
                 lambda: TrainingEvaluator(augment="rotate")):
        with pytest.raises(ConfigError) as err:
            make()
        message = str(err.value)
        assert "\n" not in message and "evaluator.augment" in message and "rotate" in message
        assert "none, crop, crop+flip" in message
    with pytest.raises(ConfigError, match="evaluator.augment_search"):
        TrainingEvaluator(augment_search="sometimes")
