"""depthscope: evaluate, explain and profile monocular depth estimation models."""
