"""figkd.grid: the H x W grid policies of docs/method.md §3 and the logit <-> grid round trip."""

from __future__ import annotations

import warnings

import pytest
import torch

from figkd.grid import from_grid, grid_shape, to_grid

# docs/method.md §3 and figkd.grid's docstring: the pad policy's examples
PAD_EXAMPLES = {100: (10, 10), 200: (15, 14), 120: (11, 11), 67: (9, 8), 40: (7, 6)}
FACTOR_EXAMPLES = {200: (10, 20), 120: (10, 12), 100: (10, 10), 40: (5, 8), 1: (1, 1)}
# issue 14, point 4: the floor-based reading of footnote 1
PAD_FLOOR_EXAMPLES = {200: (14, 15), 120: (10, 12), 67: (8, 9), 40: (6, 7), 100: (10, 10), 2: (1, 2), 1: (1, 1)}


@pytest.mark.parametrize("num_classes, shape", PAD_EXAMPLES.items())
def test_pad_policy_examples(num_classes, shape):
    assert grid_shape(num_classes) == shape
    assert grid_shape(num_classes, "pad") == shape


def test_pad_policy_definition():
    for c in range(1, 1001):
        h, w = grid_shape(c)
        assert (h - 1) ** 2 < c <= h * h  # h = ceil(sqrt(c)), exactly
        assert w == -(-c // h) and h * w >= c and h * (w - 1) < c


@pytest.mark.parametrize("num_classes, shape", PAD_FLOOR_EXAMPLES.items())
def test_pad_floor_policy_examples(num_classes, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert grid_shape(num_classes, "pad_floor") == shape


def test_pad_floor_policy_definition():
    for c in range(1, 1001):
        h, w = grid_shape(c, "pad_floor")
        assert h * h <= c < (h + 1) ** 2  # h = floor(sqrt(c)), exactly
        assert w == -(-c // h) and h * w >= c and h * (w - 1) < c and h <= w
        logits = torch.arange(float(c))
        assert torch.equal(from_grid(to_grid(logits, "pad_floor"), c), logits)


@pytest.mark.parametrize("num_classes, shape", FACTOR_EXAMPLES.items())
def test_factor_policy_examples(num_classes, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert grid_shape(num_classes, "factor") == shape


def test_factor_policy_is_the_most_square_exact_factorisation():
    for c in range(2, 400):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h, w = grid_shape(c, "factor")
        assert h * w == c and h <= w
        assert not any(c % d == 0 for d in range(h + 1, w))  # no divisor strictly between


@pytest.mark.parametrize("num_classes", [67, 2, 101])
def test_factor_policy_warns_for_a_prime(num_classes):
    with pytest.warns(UserWarning, match=f"{num_classes} classes is prime.*1 x {num_classes}.*degenerates"):
        assert grid_shape(num_classes, "factor") == (1, num_classes)


def test_explicit_shape():
    assert grid_shape(67, (9, 8)) == (9, 8)
    assert grid_shape(67, [1, 67]) == (1, 67)
    assert grid_shape(100, (20, 5)) == (20, 5)
    with pytest.raises(ValueError, match=r"grid 8 x 8 holds 64 values, fewer than the 67 classes"):
        grid_shape(67, (8, 8))


def test_grid_shape_errors():
    with pytest.raises(ValueError, match="unknown grid policy 'square'.*pad, pad_floor, factor"):
        grid_shape(100, "square")
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        grid_shape(0)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        grid_shape(10.0)
    with pytest.raises(ValueError, match="grid height H must be >= 1"):
        grid_shape(10, (0, 20))
    with pytest.raises(TypeError, match="grid width W must be an int"):
        grid_shape(10, (5, 2.0))
    with pytest.raises(TypeError, match=r"an \(H, W\) tuple"):
        grid_shape(10, (2, 5, 1))


@pytest.mark.parametrize("num_classes", sorted(PAD_EXAMPLES))
def test_to_grid_pads_with_zeros_at_the_end_and_round_trips(num_classes):
    h, w = PAD_EXAMPLES[num_classes]
    logits = torch.randn(4, num_classes, dtype=torch.float64)
    grid = to_grid(logits, (h, w))
    assert grid.shape == (4, h, w) and grid.dtype == logits.dtype
    flat = grid.reshape(4, h * w)
    assert torch.equal(flat[:, :num_classes], logits)  # row-major: class k at (k // W, k % W)
    assert torch.equal(flat[:, num_classes:], torch.zeros(4, h * w - num_classes, dtype=torch.float64))
    assert torch.equal(from_grid(grid, num_classes), logits)
    assert torch.equal(to_grid(logits, "pad"), grid)  # a policy name is resolved by grid_shape


def test_any_leading_dims_and_explicit_shapes():
    logits = torch.randn(2, 3, 200)
    for shape in [(15, 14), (10, 20), (1, 200), (16, 16)]:
        grid = to_grid(logits, shape)
        assert grid.shape == (2, 3, *shape)
        assert torch.equal(from_grid(grid, 200), logits)
    assert to_grid(torch.randn(7), (3, 3)).shape == (3, 3)


def test_grid_ops_are_differentiable():
    logits = torch.randn(3, 67, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: to_grid(x, (9, 8)), (logits,), fast_mode=True)
    grid = torch.randn(3, 9, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: from_grid(g, 67), (grid,), fast_mode=True)
    # padding cells receive no gradient through the round trip
    (from_grid(grid, 67) ** 2).sum().backward()
    assert torch.equal(grid.grad.reshape(3, 72)[:, 67:], torch.zeros(3, 5, dtype=torch.float64))


def test_grid_errors():
    with pytest.raises(ValueError, match=r"grid 8 x 8 holds 64 values, fewer than the 67 classes"):
        to_grid(torch.randn(2, 67), (8, 8))
    with pytest.raises(ValueError, match=r"grid 8 x 8 holds 64 values, fewer than the 67 classes"):
        from_grid(torch.randn(2, 8, 8), 67)
    with pytest.raises(ValueError, match="last two axes"):
        from_grid(torch.randn(72), 67)
    with pytest.raises(ValueError, match="classes on the last axis"):
        to_grid(torch.tensor(1.0), (1, 1))
