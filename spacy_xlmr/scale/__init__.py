"""Scale-out on existing engines: data-parallel training on torch.distributed
(``training``) and corpus annotation on Ray Data / Spark (``annotate``)."""
