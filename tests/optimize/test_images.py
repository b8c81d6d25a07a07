"""Unlabeled training images: the builtin photographs exist, are RGB, are not NYU, and augmentation is seeded."""

import torch

from depthscope.optimize.images import augmented_batch, builtin_image_paths, image_paths, load_images


def test_builtin_images_are_rgb_photographs_not_nyu():
    paths = builtin_image_paths()
    assert len(paths) >= 6
    assert all("nyu" not in str(p).lower() and "kitti" not in str(p).lower() for p in paths)
    images = load_images(paths)
    assert all(im.shape[0] == 3 and min(im.shape[1:]) >= 300 for im in images)


def test_augmented_batches_are_seeded_and_varied():
    images = load_images(image_paths("builtin"))
    a, b, c = (augmented_batch(images, 4, (96, 128), s) for s in (1, 1, 2))
    assert a.shape == (4, 3, 96, 128) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sources_joined_by_commas(nyu_dir):
    import pytest

    from depthscope.errors import InputError

    nyu = sorted(nyu_dir.glob("image_[5-9].png"))
    assert len(nyu) == 5
    both = image_paths(f"builtin,{nyu_dir}/image_[5-9].png,{nyu_dir}/image_9.png")
    assert both == builtin_image_paths() + nyu  # each source in turn; image_9 named twice, taken once
    assert image_paths(f"{nyu_dir}/image_[5-9].png") == nyu
    with pytest.raises(InputError, match="an empty source between commas"):
        image_paths("builtin,,x")
    with pytest.raises(InputError, match=r"--train-images nowhere: not a directory or an image"):
        image_paths("builtin,nowhere")
