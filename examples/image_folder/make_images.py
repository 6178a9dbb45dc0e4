"""Write a small demo image folder for the image-folder example: one subfolder of PNGs per class.

    python examples/image_folder/make_images.py /tmp/shapes                # 3 classes x 200 images, 32 x 32
    python examples/image_folder/make_images.py /tmp/tiny --per-class 20 --size 12

Each class is coloured noise around its own colour (red, green, blue) with a bright square at a random
place: easy enough to learn in a few epochs, noisy enough that the models differ. Takes about a second.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

COLOURS = {"red": (170, 60, 60), "green": (60, 170, 60), "blue": (60, 60, 170)}


def write_images(folder: str | Path, per_class: int = 200, size: int = 32, seed: int = 0) -> Path:
    """``folder/<class>/<i>.png`` for each class of :data:`COLOURS`; returns the folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(folder)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.array(colour) + rng.normal(0, 60, (size, size, 3))
            side = max(2, size // 4)
            top, left = rng.integers(0, size - side + 1, 2)
            pixels[top:top + side, left:left + side] += 60
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
