"""Pure tensor functions that several layers share: batched, chunked model calls (``batching``), image fills for
baselines and replacements (``fills``) and map statistics (``stats``: Pearson, Spearman, SSIM)."""
