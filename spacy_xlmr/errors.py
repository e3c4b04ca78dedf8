"""Error and warning texts, each naming its fix.

As in ``spacy.errors``, the texts live here and the code raises them:
``raise ValueError(Errors.NO_ENCODER_OUTPUT.format(name=name, found=found))``.
The hints several texts give are written once (``ADD_ENCODER``,
``SAVE_AGAIN``). Texts are grouped by the layer that raises them.
"""

# Hints shared by several texts.
ADD_ENCODER = 'nlp.add_pipe("xlmr_transformer", name="transformer", first=True)'
SAVE_AGAIN = "Save the pipeline again, or copy the whole directory again."


class DamagedPipelineError(ValueError):
    """A file of a saved pipeline is missing, or can't be read."""


class CheckpointError(ValueError):
    """A model name or directory that can't be used as an XLM-R checkpoint."""


class Warnings:
    # -- encoder ------------------------------------------------------------
    MIXED_PRECISION_ON_CPU = (
        "mixed_precision = true needs a GPU (CUDA autocast and loss "
        "scaling): on CPU the encoder trains in fp32. Train with --gpu-id, "
        "or set mixed_precision = false to silence this. For faster CPU "
        "predictions, see inference_precision."
    )
    # -- pipeline -----------------------------------------------------------
    TRAINING_DATA_PROBLEM = (
        "[{component}] {count} of {n_examples} training examples: {problem}. "
        "The first: {first!r}"
    )
    HEAD_FROM_OTHER_CHECKPOINT = (
        "[{component}] The head comes from '{checkpoint}' but the encoder was "
        "loaded from '{name}'. Set the encoder's name to the same checkpoint "
        "unless this is intended."
    )
    # -- tasks: qa, mlm -----------------------------------------------------
    TARGET_NOT_IN_VOCAB = (
        "[{component}] Target '{target}' has no pieces in the vocabulary: "
        "ignored. Give pieces of the vocabulary as targets."
    )
    TARGET_NOT_A_PIECE = (
        "[{component}] Target '{target}' isn't a piece of the vocabulary: "
        "replaced by its first piece, '{piece}' (as HF's fill-mask pipeline "
        "does). Give pieces of the vocabulary as targets "
        "(tokenizer.tokenize(word) lists a word's pieces)."
    )


class Errors:
    # -- storage: saved pipelines -------------------------------------------
    FILE_MISSING = (
        "[{component}] The saved pipeline is damaged: '{path}' is missing. "
        + SAVE_AGAIN
    )
    FILE_UNREADABLE = (
        "[{component}] The saved pipeline is damaged: '{path}' can't be loaded "
        "({error_type}: {error}). It is corrupt, or doesn't match this "
        "component's settings in config.cfg. " + SAVE_AGAIN
    )
    SAVED_WITH_OTHER_ENCODER = (
        "[{component}] The saved pipeline is damaged: this component was saved "
        "with other encoder weights than the pipeline's encoder has (an "
        "interrupted nlp.to_disk over an older pipeline mixes old and new "
        "components). Save the pipeline again, with spacy_xlmr.save_pipeline "
        "to save all or nothing."
    )
    CFG_NOT_AN_OBJECT = "expected a JSON object, found {type_name}"
    # -- encoder ------------------------------------------------------------
    # data.py
    NO_HIDDEN_STATES = "This encoder output has no hidden states (an empty doc)."
    # listener.py
    OTHER_BATCH = (
        "The listener was called on other docs than the encoder "
        "component sent it (batch id {batch_id} vs {sent})."
    )
    NO_ENCODER_OUTPUT = (
        "A component listening to the XLM-R encoder '{name}' got a doc without "
        "its output ({found}). Run the encoder first: keep '{name}' in the "
        "pipeline and enabled (spacy.load(..., disable=[...]) or exclude=[...] "
        "must not name it), or add it with " + ADD_ENCODER + " for a component "
        "that was never trained. A component sourced from a trained pipeline "
        "needs that pipeline's encoder: source it too, or give the component "
        "its own copy there first with nlp.replace_listeners. When training "
        "with a frozen encoder, list it in [training] annotating_components."
    )
    LISTENS_TO_SOURCE_ENCODER = (
        "[{component}] This component listens to the encoder of the "
        "pipeline it comes from, not to '{encoder}' here: it would run on "
        "other weights than it was trained with. Source the encoder too, before "
        'it (nlp.add_pipe("{encoder}", source=other_nlp), or [components.'
        "{encoder}] source = ... in a config), or give the component its own "
        'copy of the encoder first: other_nlp.replace_listeners("{origin}", '
        '"{component}", ["model.tok2vec"]) (in a config: '
        'replace_listeners = ["model.tok2vec"] next to source).'
    )
    NOT_CONNECTED = (
        "This head isn't connected to an xlmr_transformer encoder. Add it "
        "after the encoder in the pipeline: " + ADD_ENCODER + "."
    )
    # model.py
    FROZEN_LAYERS_NEGATIVE = "frozen_layers must be 0 or more, got {frozen_layers}."
    BATCH_SMALLER_THAN_WINDOW = (
        "max_batch_pieces ({max_batch_pieces}) must hold at least one full "
        "window ({positions} positions with <s> and </s>): raise it, or "
        "lower window_size (at most 510 for XLM-R checkpoints)."
    )
    NOTHING_LEFT_TO_TRAIN = (
        "frozen_layers ({frozen_layers}) leaves nothing of the encoder to train "
        "(it has {n_layers} layers). To freeze the whole encoder, list its "
        "component in [training] frozen_components (and annotating_components)."
    )
    ENCODER_NOT_LOADED = (
        "The XLM-R encoder has no weights yet. Call nlp.initialize() to "
        "load '{name}', or load a trained pipeline."
    )
    # module.py
    TOKENS_WITHOUT_EMBEDDING = (
        "[xlmr_transformer] The tokenizer of '{source}' has {n_ids} tokens, but "
        "the encoder's embedding matrix has {n_rows} rows: {n_beyond} "
        "token(s) past the last row ({shown}) have no embedding, and a text "
        "containing one would crash the encoder. "
        "Tokens added with tokenizer.add_tokens() need "
        "model.resize_token_embeddings(len(tokenizer)) (and training): resize "
        "the embeddings and save the model and the tokenizer again with "
        "save_pretrained, or use the tokenizer without the added tokens."
    )
    # precision.py
    UNKNOWN_PRECISION = "Unknown inference_precision '{precision}'. Choose one of: {choices}."
    FP16_ON_CPU = "inference_precision = fp16 needs a GPU; on CPU use bf16 (or int8)."
    INT8_ON_GPU = (
        "inference_precision = int8 (dynamic quantization) runs on CPU only; "
        "on GPU use fp16 or bf16."
    )
    # torch_module.py
    NOT_A_TORCH_WRAPPER = "The layer '{layer}' isn't a PyTorch wrapper."
    NO_TORCH_MODULE_YET = "The layer '{layer}' wraps no torch module yet."
    # windows.py
    WINDOW_SETTING_NOT_AN_INT = (
        "[xlmr_transformer] model.{option} = {value!r} is not an integer: "
        "set it to a number of pieces, e.g. {example}."
    )
    WINDOW_SIZE_OUT_OF_RANGE = (
        "[xlmr_transformer] model.window_size = {window_size} is "
        "{too}: {reason}. Set "
        "2 <= window_size <= {most}, e.g. {example}."
    )
    STRIDE_OUT_OF_RANGE = (
        "[xlmr_transformer] model.stride = {stride} is out of range: it must be "
        "positive and smaller than window_size = {window_size}, so that windows "
        "overlap. Set 1 <= stride <= {most}, e.g. "
        "{example}."
    )
    # -- pipeline -----------------------------------------------------------
    # drop_in.py
    NOT_AN_XLMR_ENCODER = (
        "[{component}] xlmr_transformer needs the model "
        '@architectures = "spacy-xlmr.Encoder.v1", not '
        "'{model}'. spacy-transformers' TransformerModel settings map to "
        "it so: name -> name; get_spans (strided_spans window/stride, in "
        "tokens) -> window_size/stride (in pieces); mixed_precision and "
        "grad_scaler_config keep their names; tokenizer_config and "
        "transformer_config have no equivalent (the fast tokenizer and the "
        "checkpoint's config are always used)."
    )
    MAX_BATCH_ITEMS_CONFLICT = (
        "[{component}] max_batch_items ({max_batch_items}) is "
        "spacy-transformers' name for the encoder model's max_batch_pieces, "
        "which the config sets to {own}: keep one of them."
    )
    MAX_BATCH_ITEMS_TOO_SMALL = (
        "[{component}] max_batch_items ({max_batch_items}), the encoder's "
        "max_batch_pieces, must hold at least one full window ({positions} "
        "positions with <s> and </s>): raise it, or lower the model's window_size."
    )
    # encoder_links.py
    NO_SUCH_UPSTREAM = (
        "[{component}] Its listener's upstream is '{upstream}', but the "
        "pipeline has no encoder component of that name (encoders: "
        '{listened}). Set upstream to one of them, or to "*" for the '
        "nearest encoder before the component."
    )
    UPSTREAM_AFTER_COMPONENT = (
        "[{component}] Its listener's upstream, '{upstream}', comes after "
        "it in the pipeline (encoders before it: {before}). Move "
        "'{component}' after '{upstream}', or listen to an encoder before it."
    )
    TRF_DATA_OF_OTHER_ENCODER = (
        "[{component}] spacy-transformers' listener reads doc._.trf_data, which "
        "holds the output of the nearest encoder before '{component}' "
        "('{nearest}'), not of its upstream '{upstream}'. Use "
        '@architectures = "spacy-xlmr.TransformerListener.v1" (same '
        "arguments), which reads the output of the encoder it names, or "
        "move '{component}' right after '{upstream}'."
    )
    # entity_tags.py (UNKNOWN_DECODER also ner.py)
    UNKNOWN_TAG_SCHEME = "Unknown tag scheme '{scheme}'. Use one of: {choices}."
    IOBES_TAG = (
        "Tag '{tag}' is from the IOBES scheme, which isn't supported: "
        "rename S- to U- and E- to L- (the same tags in BILUO) and use "
        'scheme = "BILUO".'
    )
    UNKNOWN_TAG = (
        "Unknown tag '{tag}': expected 'O' or B-/I-/L-/U- followed by "
        "an entity label (BIO or BILUO scheme), e.g. 'B-PER'."
    )
    UNKNOWN_DECODER = "Unknown decoder '{decoder}'. Use one of: {choices}."
    # fill_mask.py
    TOP_K_TOO_SMALL = "top_k must be at least 1, got {top_k}."
    MASK_PROBABILITY_OUT_OF_RANGE = (
        "mask_probability must be between 0 and 1, got {mask_probability} "
        "(BERT and XLM-R were pretrained with 0.15)."
    )
    FILL_MASK_NO_LABELS = "[{component}] Fill-mask has no labels."
    TOKENIZER_WITHOUT_MASK = (
        "[{component}] The encoder's tokenizer {problem}, so no '{mask}' "
        "in a text would be predicted (every doc would get []). Save the "
        "tokenizer with its mask token, AutoTokenizer.from_pretrained(path, "
        'mask_token="{mask}").save_pretrained(path), or use the '
        "checkpoint's original tokenizer."
    )
    # head_pipe.py
    LABEL_NOT_A_STRING = "Labels must be strings, got {label!r}."
    TAKES_NO_LABELS = (
        "[{component}] This component has no labels: remove labels "
        "from [initialize.components.{component}]."
    )
    LABELS_DIFFER_FROM_CHECKPOINT = (
        "[{component}] The labels given or added ({labels}) differ from those "
        "of '{checkpoint}' ({checkpoint_labels}). Leave labels unset to use "
        "the checkpoint's."
    )
    NO_TRAINING_DATA = (
        "[{component}] The training data is empty: no examples to read "
        "the labels from. Check the training corpus ([paths.train], "
        "[corpora.train]), or give labels in "
        "[initialize.components.{component}]."
    )
    NO_LABELS = (
        "[{component}] No labels: the examples have none. Give labels in "
        "[initialize.components.{component}] or add them with add_label()."
    )
    ENCODER_LEFT_OUT = (
        "[{component}] This component listens to the XLM-R encoder "
        "component 'transformer' (xlmr_transformer), but the pipeline it is "
        "loaded into has none: the encoder was excluded "
        '(spacy.load(..., exclude=["transformer"])) or isn\'t part of the saved '
        "pipeline. Load the encoder too: don't exclude 'transformer' (to skip "
        "it for a while, use disable=[...] and nlp.enable_pipe). To load "
        "'{component}' without it, give it its own copy of the encoder before "
        'saving: nlp.replace_listeners("transformer", "{component}", '
        '["model.tok2vec"]) (the path of its listener in the component\'s config).'
    )
    ENCODER_WIDTH_UNKNOWN = (
        "[{component}] Can't find the width of the encoder this component "
        "listens to. Initialize the pipeline with the encoder in front of it "
        "(nlp.initialize()), or add one with " + ADD_ENCODER + ". An encoder in "
        "[training] frozen_components isn't initialized by spacy train: source "
        "it from a trained pipeline ([components.transformer] source = ...)."
    )
    # ner.py
    GOLD_TAG_UNKNOWN = (
        "[{component}] Gold tag '{tag}' isn't one of this "
        "component's tags. Add the label with "
        "add_label('{label}') or initialize with all labels."
    )
    POOLING_NOT_FIRST_PIECE = (
        "[{component}] Hugging Face token-classification heads read "
        "each word's first piece, but this component pools pieces "
        "differently. Set [components.{component}.model.tok2vec.pooling] "
        '@layers = "spacy-xlmr.reduce_first.v1" to import a checkpoint.'
    )
    NO_ENTITY_LABELS = (
        "'{checkpoint}' has no entity labels (its config's id2label only "
        "has LABEL_0, LABEL_1, ...). Import a checkpoint fine-tuned for "
        "token classification with BIO labels such as 'B-PER'."
    )
    # qa.py
    ASK_NEEDS_DOC = "[{component}] Pass a Doc: this component has no tokenizer."
    ASK_BAD_DOC_TYPE = (
        "[{component}] ask() takes a Doc or a str to answer about, got {type_name}."
    )
    ASK_BAD_QUESTION_TYPE = (
        "[{component}] ask() takes questions as strings or dicts with "
        "'id' and 'question', got {type_name}."
    )
    QA_NO_LABELS = "[{component}] Question answering has no labels."
    # textcat.py
    THRESHOLD_OUT_OF_RANGE = "threshold must be between 0 and 1, got {threshold}."
    PROBLEM_TYPE_MISMATCH = (
        "[{component}] '{checkpoint}' is a {problem_type} model; "
        "set exclusive_classes = {wanted} for this component to import it."
    )
    # -- hf: checkpoints and head import ------------------------------------
    # hf.py
    CHECKPOINT_DIR_UNLOADABLE = (
        "Could not load an XLM-R checkpoint from the directory '{name}': {error}\n"
        "The directory must hold what `save_pretrained` writes: config.json, "
        "model.safetensors (or pytorch_model.bin) and the tokenizer files "
        "(tokenizer.json or sentencepiece.bpe.model)."
    )
    CHECKPOINT_NOT_FOUND = (
        "Could not load '{name}': there is no such local directory (relative "
        "to {cwd}) and the Hugging Face Hub could not provide it "
        "({error_type}: {error}).\n"
        "If it is a hub model and this machine is offline, download it where "
        "there is network (`huggingface-cli download "
        "{name} --local-dir ./{dir_name}`), copy the directory here "
        "and set the component's `name` to its path, e.g. "
        '`name = "./{dir_name}"`. If it is a directory you meant '
        "to build, e.g. a tiny test encoder: `spacy-xlmr build-checkpoint "
        "{name}`."
    )
    UNSAFE_PICKLE = (
        "A weights file in '{name}' pickles objects other than tensors, so it "
        "was refused without being loaded (unpickling it could run code). If "
        "you trust its source, load it with transformers and save it again as "
        "safetensors (`save_pretrained(dir, safe_serialization=True)`); then "
        "use that directory."
    )
    NOT_XLMR_CHECKPOINT = (
        "'{name}' is a '{model_type}' checkpoint, not XLM-RoBERTa. "
        "spacy-xlmr components need an XLM-R model (model_type "
        "{supported}), e.g. 'xlm-roberta-base' "
        "or a directory saved from XLMRobertaModel / XLMRobertaFor*."
    )
    NO_FAST_TOKENIZER = (
        "'{name}' has no fast tokenizer and it could not be converted. "
        "Install `sentencepiece` and `protobuf`, or save the checkpoint "
        "with a tokenizer.json."
    )
    NO_VOCABULARY = (
        "'{name}' has no tokenizer vocabulary: {what}. Without one, every "
        "word would be encoded as <unk>. Add {files} "
        "of the model it was trained from (e.g. save its tokenizer there with "
        "save_pretrained)."
    )
    WEIGHTS_UNREADABLE = (
        "The weights in '{name}' could not be read ({error_type}: "
        "{error}). The file is damaged or incomplete: save the checkpoint "
        "again with save_pretrained, or download it again."
    )
    WEIGHTS_MISMATCH = (
        "The weights in '{name}' don't match the encoder ({problems}). "
        "Loading them would leave the missing weights random. The file is "
        "incomplete or from another model: save the checkpoint or pipeline "
        "again, or copy it again. To load only the matching weights on "
        "purpose, call spacy_xlmr.hf.load_encoder(path, strict=False)."
    )
    WRONG_HEAD_CLASS = (
        "[{component}] '{name}' is a {found} checkpoint, but this component "
        "imports {expected} heads: {fix}."
    )
    NO_HEAD_WEIGHTS = (
        "'{name}' holds no weights for this head (no keys starting with "
        "{prefixes}): it isn't a checkpoint fine-tuned for this "
        "component's task. Give one saved from the matching XLMRobertaFor* "
        "class, or leave hf_checkpoint unset to train the head."
    )
    ID2LABEL_ID_NOT_A_NUMBER = (
        "[{component}] The id2label of '{name}' (config.json) has an id that "
        "isn't a number ({error}). Its keys must be the output ids 0, 1, 2, …"
    )
    ID2LABEL_IDS_NOT_CONSECUTIVE = (
        "[{component}] The id2label of '{name}' (config.json) must number its "
        "{n_outputs} outputs 0 … {last}, but {missing} missing and {extra} extra. "
        "Fix id2label (and label2id) in its config.json."
    )
    ID2LABEL_REPEATED_LABEL = (
        "[{component}] The id2label of '{name}' (config.json) gives a label to "
        "more than one output ({listed}): their scores would be merged. Give "
        "each output its own label in id2label (and label2id)."
    )
    # checkpoints.py
    NO_TEXT_FILES = (
        "No *.txt files in {text_dir}. Pass a directory of plain-text "
        "files (one sentence per line) to train the tokenizer on."
    )
    UNKNOWN_SIZE = "Unknown size '{size}'. Choose one of: {choices}."
    # load.py
    UNKNOWN_TASK = "Unknown task '{task}'. Supported: {choices}."
    # -- heads: torch heads and losses --------------------------------------
    # masked_lm.py
    MLM_HEAD_TRAINED_ON_TEXT = (
        "The masked-LM head trains on masked copies of the docs "
        "(masked_lm_logits), not on the encoder's output of the text."
    )
    # question_answering.py
    QA_MODEL_GIVEN_DOCS = (
        "The question-answering model reads question/context pairs: call the "
        "xlmr_qa component (or its ask() method), not its model."
    )
    # sequence_classification.py
    UNKNOWN_POOLING = "Unknown pooling '{pooling}'. Use one of: {poolings}."
    # torch_head.py
    HEAD_NOT_BUILT = (
        "The {head_name} isn't built yet: initialize the component "
        "(nlp.initialize()) or load a trained pipeline."
    )
    HEAD_STATE_MISMATCH = (
        "The checkpoint's head doesn't fit this component: expected parameters "
        "{expected}, the checkpoint has {got}. Check that the checkpoint was "
        "fine-tuned for this task and that the labels match."
    )
    # -- tasks: qa, mlm -----------------------------------------------------
    # qa/data.py
    QA_ANSWER_NOT_A_DICT = (
        "{where}: an answer must be a dict with exactly the keys 'text' and "
        "'answer_start', got {answer!r}"
    )
    QA_ANSWER_TEXT_EMPTY = (
        "{where}: 'text' must be a non-empty string, got {answer_text!r}: "
        "leave an answer out rather than giving an empty one"
    )
    QA_ANSWER_START_NOT_AN_INT = "{where}: 'answer_start' must be an integer, got {start!r}"
    QA_ANSWER_OUT_OF_RANGE = (
        "{where}: answer_start {start} + len(text) {length} is out of range for a "
        "doc.text of {text_length} characters: 'answer_start' must be the "
        "character offset of the answer in doc.text"
    )
    QA_ANSWER_TEXT_MISMATCH = (
        "{where}: doc.text[{start}:{end}] is {found!r}, but 'text' is "
        "{answer_text!r}: 'answer_start' must be the character offset of the "
        "answer in doc.text"
    )
    QA_QUESTIONS_NOT_A_LIST = (
        "doc._.{extension} must be a list of question dicts or None, got "
        "{type_name}: wrap the questions in a list"
    )
    QA_QUESTION_NOT_A_DICT = "{where}: expected a dict with the keys {keys}, got {type_name}"
    QA_QUESTION_UNKNOWN_KEYS = "{where}: unknown key(s) {unknown}; the keys are {keys}"
    QA_QUESTION_FIELD_EMPTY = "{where}: {key!r} must be a non-empty string, got {value!r}"
    QA_DUPLICATE_ID = "{where}: duplicate id: give every question its own id"
    QA_ANSWERS_NOT_A_LIST = "{where}: 'answers' must be a list of answer dicts, got {type_name}"
    QA_IMPOSSIBLE_NOT_A_BOOL = "{where}: 'is_impossible' must be a bool, got {impossible!r}"
    QA_IMPOSSIBLE_WITH_ANSWERS = (
        "{where}: an unanswerable question has no answers: set 'answers' to [] "
        "or 'is_impossible' to False"
    )
    # qa/settings.py
    QA_SETTING_NOT_AN_INT = (
        "[{component}] {option} = {value!r} is not an integer: set {option} to a "
        "whole number of pieces (or answers, for top_k)."
    )
    QA_SETTING_BELOW_ONE = (
        "[{component}] {option} = {value} is out of range: set {option} >= 1."
    )
    QA_MAX_QUESTION_LEN_OUT_OF_RANGE = (
        "[{component}] max_question_len = {max_question_len} is out of range: set "
        "1 <= max_question_len <= {highest}, so that a question leaves the context "
        "at least 1 of the {positions} positions the encoder takes (4 go to <s> "
        "and </s>)."
    )
    QA_MAX_SEQ_LEN_OUT_OF_RANGE = (
        "[{component}] max_seq_len = {max_seq_len} is out of range: set {allowed}. "
        "The encoder takes at most {takes}; 4 positions go to <s> and </s>, and a "
        "question of max_question_len = {max_question_len} pieces must leave the "
        "context at least 1."
    )
    QA_DOC_STRIDE_OUT_OF_RANGE = (
        "[{component}] doc_stride = {doc_stride} is out of range: the overlap of "
        "context windows must be at least 0 and smaller than the room a question "
        "of max_question_len = {max_question_len} pieces leaves for the context "
        "in max_seq_len = {max_seq_len} positions ({context_room}; 4 positions go "
        "to <s> and </s>). Set {fixes}."
    )
    # qa/pairs.py
    QA_OVERLAP_TOO_LARGE = (
        "The overlap of context windows ({overlap} pieces) must be smaller than "
        "the room left for the context ({window_size} pieces): lower doc_stride, "
        "or raise max_seq_len."
    )
    QA_QUESTION_TOO_LONG = (
        "A question of {n_pieces} pieces leaves no room for the context in "
        "max_seq_len = {max_seq_len}: raise max_seq_len or lower max_question_len."
    )
    # qa/metrics.py
    QA_METRICS_DUPLICATE_ID = "duplicate question id {qid!r}"
    QA_METRICS_NO_QUESTIONS = "no questions to score"
    # mlm/predictions.py
    MLM_NO_TARGET_IN_VOCAB = (
        "[{component}] None of the targets {targets} has a piece in the "
        "vocabulary: give pieces of the vocabulary as targets, or leave targets "
        "unset to predict from the whole vocabulary."
    )
    # -- convert: data readers ----------------------------------------------
    # several readers
    INVALID_JSON = "{path}: invalid JSON: {error}"
    JSON_NOT_AN_OBJECT = "{where}: expected an object, got {type_name}"
    LIMIT_NEGATIVE = "limit must be at least 0, got {limit}"
    # textcat.py
    TEXTCAT_JSON_ARRAY = (
        "{path}:1: a JSON array is not supported: write one JSON object per line (JSONL)"
    )
    TEXTCAT_LABELS_FILE_DUPLICATE = "{path}:{line_no}: duplicate label {label!r}"
    TEXTCAT_EMPTY_TABLE = "{path}:1: empty file, expected a header line"
    TEXTCAT_MISSING_COLUMNS = "{path}:1: missing column(s) {missing}; the header has {header}"
    TEXTCAT_COLUMN_COUNT = (
        "{where}: expected {n_columns} {delimiter_name}-separated columns, got {n_found}"
    )
    TEXTCAT_EMPTY_LABEL = "{where}: empty label in column {label_column!r}"
    TEXTCAT_MALFORMED_CSV = "{path}:{line_no}: malformed CSV: {error}"
    TEXTCAT_BAD_LABEL = "{where}: {key!r} must hold non-empty strings, got {label!r}"
    TEXTCAT_LABELS_NOT_A_LIST = "{where}: 'labels' must be a list of strings, got {type_name}"
    TEXTCAT_DUPLICATE_LABEL = "{where}: duplicate label in 'labels': {labels}"
    TEXTCAT_CATS_NOT_AN_OBJECT = (
        "{where}: 'cats' must be an object of label: number, got {type_name}"
    )
    TEXTCAT_CATS_NOT_A_NUMBER = "{where}: non-numeric cats value for {label!r}: {score!r}"
    TEXTCAT_CATS_OUT_OF_RANGE = (
        "{where}: cats value for {label!r} must be between 0 and 1, got {score!r}"
    )
    TEXTCAT_INVALID_JSON_LINE = "{where}: invalid JSON: {message} (column {column})"
    TEXTCAT_LINE_NOT_AN_OBJECT = "{where}: expected a JSON object, got {type_name}"
    TEXTCAT_MISSING_TEXT_KEY = "{where}: missing key {text_key!r}"
    TEXTCAT_TEXT_NOT_A_STRING = "{where}: {text_key!r} must be a string, got {type_name}"
    TEXTCAT_LABEL_KEYS = (
        "{where}: expected exactly one of 'cats', 'label', 'labels', got {keys}"
    )
    TEXTCAT_LABELS_IS_A_STRING = "labels must be a list of labels, not a string"
    TEXTCAT_LABELS_EMPTY = "labels is empty"
    TEXTCAT_LABELS_NOT_STRINGS = "labels must be non-empty strings, got {label!r}"
    TEXTCAT_LABELS_DUPLICATES = "duplicate labels: {duplicates}"
    TEXTCAT_NOT_NLP_OR_VOCAB = "expected a spaCy Language or Vocab, got {type_name}"
    TEXTCAT_UNKNOWN_LABELS = (
        "{path}:{line_no}: label(s) {unknown} not in the label set {labels}"
    )
    TEXTCAT_UNKNOWN_FORMAT = "unknown format {fmt!r}; expected one of {formats}"
    TEXTCAT_LABEL_COLUMN_FOR_JSONL = (
        "label_column does not apply to JSONL, whose labels are under "
        "'cats', 'label' or 'labels'"
    )
    # char_spans.py
    CHAR_SPANS_TEXT_NOT_A_STRING = "{where}: 'text' must be a string, got {text!r}"
    CHAR_SPANS_ENTITIES_NOT_A_LIST = "{where}: 'entities' must be a list, got {entities!r}"
    CHAR_SPANS_ENTITY_NOT_AN_OBJECT = "{where}: expected an object, got {entity!r}"
    CHAR_SPANS_BAD_SPAN = "{where}: 'span' must be [start, end] integers, got {span!r}"
    CHAR_SPANS_BAD_TYPE = "{where}: 'type' must be a non-empty string, got {label!r}"
    CHAR_SPANS_SPAN_OUT_OF_RANGE = (
        "{where}: span {span} out of range for a text of {n_chars} characters"
    )
    CHAR_SPANS_NAME_MISMATCH = "{where}: text at span {span} is {found!r}, but 'name' is {name!r}"
    CHAR_SPANS_NOT_A_LIST = "{path}: expected a JSON list of items, got {type_name}"
    # squad.py
    SQUAD_WRONG_TYPE = "{where}: {key!r} must be a {kind}, got {value!r}"
    # iob2.py
    IOB2_COMMENT_IN_SENTENCE = "{where}: comment line inside a sentence: {line!r}"
    IOB2_COLUMN_COUNT = (
        "{where}: expected {n_columns} tab-separated columns "
        "(id, token, tag, -, annotator), got {n_found}: {line!r}"
    )
    IOB2_BAD_TOKEN_ID = "{where}: expected token id {expected}, got {token_id!r}"
    IOB2_EMPTY_TOKEN = "{where}: empty token"
    IOB2_BAD_TAG = "{where}: invalid IOB2 tag {tag!r} (expected O, B-<label> or I-<label>)"
    IOB2_N_SENTS = "n_sents must be at least 1, got {n_sents}"
    # text_files.py
    NOT_UTF8 = (
        "{path}: {found}. The converters read UTF-8; re-encode the file, "
        "e.g. iconv -f {encoding} -t UTF-8 '{path}' > '{utf8_path}'"
    )
    # -- scale: training, annotation ----------------------------------------
    # annotate.py
    NO_PIPELINE_AT = (
        "Can't find a spaCy pipeline at '{pipeline}': pass a directory written by "
        "nlp.to_disk() or spacy train (it has a config.cfg) or the name of an "
        "installed pipeline package."
    )
    QUESTIONS_NOT_A_LIST = "questions must be a list, got {type_name}"
    BAD_QUESTION = (
        "questions[{i}] must be a string or a dict with string 'id' and "
        "'question', got {item!r}"
    )
    ANNOTATE_BAD_INPUT_FORMAT = (
        "Annotator takes a pyarrow Table, a pandas DataFrame or a dict of columns, "
        "got {type_name}"
    )
    NO_TEXT_COLUMN = (
        "The batch has no column '{text_key}' (columns: {columns}): pass "
        "text_key= with the text column"
    )
    # apply.py
    UNKNOWN_ENGINE = "Unknown engine '{engine}': use {choices}"
    APPLY_SIZES_TOO_SMALL = "shard_size, batch_size and workers must be at least 1"
    NO_RAY_CLUSTER = (
        "No Ray cluster at {target} ({error}): start one with `ray start --head` "
        "or pass the address of its head node"
    )
    RAY_ROWS_OUT_OF_ORDER = "Ray Data returned shard {shard}'s rows out of order"
    INPUT_CHANGED = (
        "Shard {shard}: {n_read} input rows, not {n_rows}: the input changed "
        "during the job"
    )
    # collectives.py
    RANKS_DIFFER = "Rank(s) {ranks} have other {what} than rank 0. {fix}"
    # corpus_io.py
    UNKNOWN_INPUT_SUFFIX = "Can't read {paths}: input files must end in {suffixes}"
    NO_INPUT_FILES = "No {suffixes} files at '{spec}'"
    NO_TEXT_KEY = (
        "{path}: no '{text_key}' in the first row (it has {names}): "
        "pass --text-key with the name of the text field"
    )
    UNKNOWN_OUTPUT_FORMAT = "Unknown output format '{format}': use {choices}"
    OUTPUT_SUFFIX_CONFLICT = (
        "OUTPUT {output} is a .{format} file but the format is {fmt}: "
        "drop --format or change the file name"
    )
    SHARDS_OF_OTHER_JOB = (
        "{directory} holds the shards of another job (different {differ}): "
        "write to a new OUTPUT or delete {directory} to start over"
    )
    NOT_APPLY_OUTPUT = (
        "{directory} exists and isn't the output of spacy-xlmr apply (no "
        "{manifest}): write to a new OUTPUT or empty the directory"
    )
    # training.py
    NO_GPU_FOR_RANK = (
        "Local rank {local_rank} has no GPU: this machine has {n_gpus} visible "
        "GPU(s). Start at most {n_gpus} processes per node (torchrun "
        "--nproc-per-node {n_procs}), or train on CPU without --gpu-id."
    )
    CANT_JOIN_PROCESS_GROUP = (
        "Rank {rank} could not join the process group at "
        "{address} ({backend}): {error}. Check that every node can reach that "
        "address (torchrun --rdzv-endpoint / --master-addr) and that all "
        "ranks were started."
    )
    # cli.py
    NO_EXAMPLES = "No examples in {path}."
