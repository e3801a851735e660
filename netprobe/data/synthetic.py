"""The embedded synthetic data set: 10 classes of coloured motifs placed at random on cluttered backgrounds.

Each class is one fixed 7x7 colour pattern (the same for every seed, so a model trained with one seed is
evaluated on the same task with another). An image shows its class's motif at a random position and scale
(35-55% of the width) over a smooth random background, partly covering a smaller distractor motif of
another class, with pixel noise. The class is where the motif is and what it looks like, not its mean
colour, so a linear classifier on pixels does poorly while a CNN, translation invariant by construction,
learns it in a few CPU epochs. Images are rendered directly at the requested size (bilinear sampling of
the motifs), 5,000 train / 1,000 test up to 64x64 pixels, 500 / 100 above that (3x224x224: 290 MB).
Generation is vectorised and depends only on `seed`: train and test come from separate seeded streams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NUM_CLASSES = 10
MOTIF_SEED = 20160610  # fixed: the class patterns do not change with the seed
MOTIF_CELLS = 7
SMALL_PIXELS = 64 * 64  # up to this many pixels per image: the full-size set


def sizes(height: int, width: int) -> tuple[int, int]:
    """(train, test) sample counts for images of this size."""
    return (5000, 1000) if height * width <= SMALL_PIXELS else (500, 100)


def motifs() -> torch.Tensor:
    """The class patterns, (10, 3, 7, 7) colours in [0, 1]."""
    g = torch.Generator().manual_seed(MOTIF_SEED)
    return torch.rand(NUM_CLASSES, 3, MOTIF_CELLS, MOTIF_CELLS, generator=g)


def _cells(length: int, scale: torch.Tensor, start: torch.Tensor):
    """Motif cell of each pixel along one axis, (N, length), and whether the pixel is on the motif."""
    u = (torch.arange(length) + 0.5) / length  # pixel centres in [0, 1]
    cell = ((u[None, :] - start[:, None]) / scale[:, None] * MOTIF_CELLS).floor_().long()
    inside = (cell >= 0) & (cell < MOTIF_CELLS)
    return cell.clamp_(0, MOTIF_CELLS - 1), inside


def _paste(image: torch.Tensor, patterns: torch.Tensor, scale: torch.Tensor, top: torch.Tensor, left: torch.Tensor):
    """Paste `patterns` (N, 3, 7, 7) into `image` (N, 3, H, W) in place: side `scale`, corner (top, left), in widths."""
    n, channels, height, width = image.shape
    # Axis-aligned nearest sampling is separable: gather the columns, then the rows (two cheap gathers
    # instead of a grid_sample; generation stays well under a second at 32x32).
    rows, row_in = _cells(height, scale, top)
    cols, col_in = _cells(width, scale, left)
    wide = torch.gather(patterns, 3, cols[:, None, None, :].expand(n, channels, MOTIF_CELLS, width))
    full = torch.gather(wide, 2, rows[:, None, :, None].expand(n, channels, height, width))
    mask = (row_in[:, :, None] & col_in[:, None, :]).unsqueeze(1)  # (N, 1, H, W)
    torch.where(mask, full, image, out=image)


def _render(n: int, height: int, width: int, generator: torch.Generator):
    """`n` images (N, 3, H, W) in [0, 1] and balanced labels (N,)."""
    bank = motifs()
    y = (torch.arange(n) % NUM_CLASSES)[torch.randperm(n, generator=generator)]
    other = (y + torch.randint(1, NUM_CLASSES, (n,), generator=generator)) % NUM_CLASSES

    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(*shape, generator=generator)

    def ramp(length):  # a smooth random profile per image and channel: 4 knots, linearly interpolated
        return F.interpolate(uniform(0.05, 0.45, n, 3, 4), size=length, mode="linear", align_corners=True)

    image = ramp(height)[:, :, :, None] + ramp(width)[:, :, None, :]  # smooth clutter, (N, 3, H, W)
    for pattern, low, high in ((bank[other], 0.2, 0.3), (bank[y], 0.35, 0.55)):  # distractor under the motif
        scale = uniform(low, high, n)
        _paste(image, pattern, scale, uniform(0, 1, n) * (1 - scale), uniform(0, 1, n) * (1 - scale))
    image.add_(torch.randn(image.shape, generator=generator), alpha=0.1)
    return image.clamp_(0, 1), y


def generate(size: tuple[int, int, int], seed: int = 0):
    """((x_train, y_train), (x_test, y_test)) as 3-channel images in [0, 1] at size's height and width."""
    _, height, width = size
    n_train, n_test = sizes(height, width)
    train = _render(n_train, height, width, torch.Generator().manual_seed(2 * seed))
    test = _render(n_test, height, width, torch.Generator().manual_seed(2 * seed + 1))
    return train, test
