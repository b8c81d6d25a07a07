"""How results are written, shared by every command: atomic files and resumable CSV (``files``), text tables
(``tables``) and PNG figures (``figures``). The lowest layer beside ``errors``: it knows nothing of models."""
