"""What is specific to masked-language modelling, apart from the spaCy
component (``pipeline/fill_mask.py``) and the torch head with HF's weight
names (``heads/masked_lm.py``): masking pieces for training and finding the
``<mask>`` pieces (``masking``), reading the logits of the masks into top-k
predictions as HF's fill-mask pipeline does (``predictions``) and the
masked-LM scores (``metrics``)."""
