"""Extractive question answering apart from the spaCy component
(``pipeline/qa.py``) and its torch head (``heads/question_answering.py``):
questions and gold answers on a Doc (``data.py``), question/context pair
windows (``pairs.py``), the allowed settings (``settings.py``), answer
decoding and answer spans (``answers.py``), training targets and loss
(``gold.py``), and the SQuAD metrics (``metrics.py``).
"""
