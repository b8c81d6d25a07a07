"""Meta-evaluation: which assessment scores to trust for a model (``depthscope meta-evaluate``): every metric's
noise resilience and adversarial reactivity (MetaQuantus-style intra- and inter-consistency) and the reliability of
the method rankings it gives (Krippendorff's alpha across images, Cronbach's alpha across metrics)."""

from depthscope.meta.consistency import got_worse, order_kept, paired_p
from depthscope.meta.perturbations import TESTS, MetaTest, Perturbed, inverted_map, register_test, shuffled_map
from depthscope.meta.reliability import cronbach_alpha, krippendorff_alpha
from depthscope.meta.run import (
    CONTROL_METHODS,
    DEFAULT_META_METHODS,
    MetaConfig,
    MetaResult,
    display_meta,
    meta_evaluate,
)

__all__ = [
    "CONTROL_METHODS", "DEFAULT_META_METHODS", "TESTS", "MetaConfig", "MetaResult", "MetaTest", "Perturbed",
    "cronbach_alpha", "display_meta", "got_worse", "inverted_map", "krippendorff_alpha", "meta_evaluate",
    "order_kept", "paired_p", "register_test", "shuffled_map",
]  # fmt: skip
