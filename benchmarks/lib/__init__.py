"""The benchmarks' shared library: what more than one script in
``benchmarks/`` needs, so that each script holds only its own question.

The scripts run as ``python benchmarks/<script>.py``: Python puts
``benchmarks/`` first on ``sys.path``, so ``import lib`` finds this package.

* ``env``: repository paths, versions and machine, thread environment,
  logged subprocesses, git state, exporting a revision of spacy_xlmr.
* ``memory``: resident memory and its peak (``/proc/self/status``,
  ``ru_maxrss``), resetting the peak.
* ``timing``: the inference timing protocol (warm-up, timed passes, CPU
  time of this process and of the others, waiting for idle CPUs, counting
  the positions the encoder computes).
* ``train_hooks``: the batcher wrapper and step loggers the training
  configs use (the file passed to ``spacy train --code``).
* ``training``: ``spacy train`` command lines, step statistics, the options
  and set-up the training comparisons share.
* ``corpora``: the benchmark corpora, read with ``spacy_xlmr.convert``.
* ``checkpoints``: the random checkpoints (tiny, base-sized, HF task heads).
* ``results``: the results JSON header, number formats, writing
  ``results.json`` / ``results.md``.
* ``systems``: the systems tables' row type.
* ``speed_texts``, ``speed_systems``, ``speed_report``, ``fidelity``: the
  parts of ``speed.py`` (text sets, what each system runs, tables and
  comparisons, reduced-precision fidelity models).
"""
