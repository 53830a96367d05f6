"""LayerWeighting and pooling: each clip is weighted and pooled on its own."""

import torch

from modeling_audiocap import LayerWeighting, mean_pool
from modeling_audiocap.modeling_audiocap import AttentivePooling, reduce_time, window_starts


def test_one_hot_weights_select_exactly_one_layer():
    hidden = torch.randn(3, 5, 7, 4)  # (batch, layers, frames, width)
    weighting = LayerWeighting(5)
    for layer in range(5):
        with torch.no_grad():
            weighting.weight.zero_()
            weighting.weight[0, layer, 0] = 1.0
            weighting.bias.zero_()
        torch.testing.assert_close(weighting(hidden), hidden[:, layer])


def test_clips_never_mix_across_the_batch():
    torch.manual_seed(1)
    weighting = LayerWeighting(4)
    hidden = torch.randn(6, 4, 9, 3)
    batched = weighting(hidden)
    for b in range(6):
        torch.testing.assert_close(batched[b], weighting(hidden[b : b + 1])[0])
    # Changing one clip changes only that clip's output.
    changed = hidden.clone()
    changed[2] += 10.0
    out = weighting(changed)
    torch.testing.assert_close(out[[0, 1, 3, 4, 5]], batched[[0, 1, 3, 4, 5]])
    assert not torch.allclose(out[2], batched[2])


def test_layer_axis_is_checked():
    weighting = LayerWeighting(4)
    try:
        weighting(torch.randn(4, 3, 2, 2))  # (layers, batch, ...) mistaken for (batch, layers, ...)
    except ValueError as err:
        assert "4 layers" in str(err)
    else:
        raise AssertionError("a wrong layer axis must raise")


def test_mean_pool_ignores_padding_frames():
    hidden = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    padded = hidden.clone()
    padded[0, 3:] = 1e6
    pooled = mean_pool(padded, mask)
    torch.testing.assert_close(pooled[0], hidden[0, :3].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1].mean(0))
    # With a layer axis: (B, L, T, D) and a (B, T) mask.
    stacked = torch.randn(2, 3, 6, 4)
    torch.testing.assert_close(mean_pool(stacked, mask)[0], stacked[0, :, :3].mean(1))


def test_attention_pooling_ignores_padding_frames():
    pool = AttentivePooling(4)
    hidden = torch.randn(1, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0]], dtype=torch.bool)
    noisy = hidden.clone()
    noisy[0, 2:] = torch.randn(3, 4) * 100
    torch.testing.assert_close(pool(noisy, mask), pool(hidden[:, :2], None))


def test_reduce_time_averages_valid_frames_in_groups():
    hidden = torch.arange(10, dtype=torch.float32).reshape(1, 5, 2)
    reduced, mask = reduce_time(hidden, torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool), stride=2)
    torch.testing.assert_close(reduced, torch.tensor([[[1.0, 2.0], [5.0, 6.0], [0.0, 0.0]]]))
    assert mask.tolist() == [[True, True, False]]


def test_windows_cover_the_whole_input_without_padding():
    assert window_starts(100, 100) == [0]
    assert window_starts(50, 100) == [0]
    assert window_starts(250, 100) == [0, 100, 150]
    assert window_starts(300, 100) == [0, 100, 200]
