"""Scale-out on existing engines: data-parallel training on torch.distributed
(``training``, which runs ``loop`` on every rank) and corpus annotation on
Ray Data / Spark (``annotate``)."""
