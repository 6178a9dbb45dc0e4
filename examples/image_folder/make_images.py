"""Write a small demo image folder for the image-folder example: one subfolder of PNGs per class.

    python examples/image_folder/make_images.py /tmp/shapes                # 3 classes x 200 images, 32 x 32
    python examples/image_folder/make_images.py /tmp/tiny --per-class 20 --size 12

Every image is noise on a background of a random colour with a small square at a random place; the
class is the square's colour (red, green or blue), so a model must find the square rather than average
the picture. Takes about a second.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COLOURS = {"red": (200, 50, 50), "green": (50, 200, 50), "blue": (50, 50, 200)}


def write_images(folder: str | Path, per_class: int = 200, size: int = 32, seed: int = 0) -> Path:
    """``folder/<class>/<i>.png`` for each class of :data:`COLOURS`; returns the folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(folder)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.uniform(40, 215, 3) + rng.normal(0, 40, (size, size, 3))
            side = max(2, size // 5)
            top, left = rng.integers(0, size - side + 1, 2)
            pixels[top:top + side, left:left + side] = np.array(colour) + rng.normal(0, 40, (side, side, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name / f"{i:04d}.png")
    return root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="where to write the class folders")
    p.add_argument("--per-class", type=int, default=200, help="images per class (default: %(default)s)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    root = write_images(args.folder, args.per_class, args.size, args.seed)
    print(f"wrote {args.per_class * len(COLOURS)} images ({', '.join(COLOURS)}) to {root}")


if __name__ == "__main__":
    main()
