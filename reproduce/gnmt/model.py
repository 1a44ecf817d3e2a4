"""GNMT v2, as in NVIDIA DeepLearningExamples PyTorch/Translation/GNMT (the common PyTorch GNMT).

Sources: that repository's README ("Default configuration") and seq2seq/models/{encoder,decoder,
attention,gnmt}.py; the same description is the MLPerf Training reference's (mlcommons/training,
rnn_translator/README.md, "4. Model"). Written here from those descriptions, not copied:

- one embedding shared by encoder and decoder (``share_embedding`` default True in train.py);
- encoder: ``num_layers`` LSTMs of width ``hidden_size``; the first is bidirectional (so the second
  reads 2 x hidden), the others unidirectional; residual connections from the third layer on;
  dropout on the input of every LSTM layer;
- decoder: ``num_layers`` unidirectional LSTMs. The first layer's output queries the attention;
  the attention context is concatenated to the input of every later layer (the "gnmt_v2"
  attention of tensorflow/nmt); residual connections from the third layer on; dropout on the input
  of every LSTM layer; a linear classifier over the vocabulary on the last layer's output;
- normalized Bahdanau attention (Bahdanau et al. 2015; normalization of Salimans and Kingma 2016,
  as tf.contrib.seq2seq.BahdanauAttention(normalize=True)): score = g * v/|v| . tanh(W_q q + W_k k
  + b), with g initialized to 1/sqrt(hidden_size) and b to zero;
- LSTM states start at zero (the decoder's too, not the encoder's final state);
- every weight uniform(-0.1, 0.1), except the LSTMs' hidden-hidden biases, which start at zero
  (seq2seq/utils.py ``init_lstm_``), at the reference's width 1024. At other widths the range is
  scaled by sqrt(1024 / hidden_size) (``init_range_for``), so that a layer's pre-activations have
  the reference's scale: a sum over hidden_size inputs grows as sqrt(hidden_size). With the fixed
  range 0.1 at width 64 the encoder outputs differ 12x less between source positions and W_k k is
  16x smaller than at width 1024; the attention's score gradients, a product of the two, start
  near 1e-7 (the query's near 1e-10: in tanh's linear range the query only shifts every score
  equally), and a reduced-width model learned neither copy nor reverse in 1,400 steps, while the
  same model with the scaled range learned copy in 600 (tests/test_gnmt_tasks.py).

Tensors are batch-first here (the reference defaults to time-first); the arithmetic is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .subword import PAD

#: Range of the uniform initializer of every weight (reference: ``init_weight=0.1``) ...
INIT_RANGE = 0.1
#: ... at the reference's width (README: "hidden size 1024").
REFERENCE_WIDTH = 1024


def init_range_for(hidden_size: int, width_scaled: bool = True) -> float:
    """The reference's range at width 1024, scaled by sqrt(1024 / hidden_size) at other widths
    (module docstring); the fixed 0.1 with ``width_scaled=False``."""
    if not width_scaled:
        return INIT_RANGE
    return INIT_RANGE * math.sqrt(REFERENCE_WIDTH / hidden_size)


def init_lstm(lstm: nn.LSTM, init_range: float = INIT_RANGE) -> None:
    """Weights and input-hidden biases uniform(-r, r); hidden-hidden biases zero (reference)."""
    for name, parameter in lstm.named_parameters():
        if name.startswith("bias_hh"):
            nn.init.zeros_(parameter)
        else:
            nn.init.uniform_(parameter, -init_range, init_range)


class NormalizedBahdanauAttention(nn.Module):
    """Additive attention with a weight-normalized score vector; keys are the encoder outputs."""

    def __init__(self, hidden_size: int, init_range: float = INIT_RANGE) -> None:
        super().__init__()
        self.query = nn.Linear(hidden_size, hidden_size, bias=False)
        self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        self.score_vector = nn.Parameter(torch.empty(hidden_size))
        self.score_gain = nn.Parameter(torch.full((1,), 1.0 / math.sqrt(hidden_size)))
        self.score_bias = nn.Parameter(torch.zeros(hidden_size))
        for parameter in (self.query.weight, self.key.weight, self.score_vector):
            nn.init.uniform_(parameter, -init_range, init_range)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """W_k k for every encoder position: computed once per source, reused at every step."""
        return self.key(keys)

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        projected_keys: torch.Tensor,
        source_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, Tq, H), keys and projected keys (B, S, H), source_mask (B, S) true on real
        tokens. Returns (contexts (B, Tq, H), attention weights (B, Tq, S))."""
        direction = self.score_gain * self.score_vector / self.score_vector.norm()
        energy = torch.tanh(
            self.query(queries).unsqueeze(2) + projected_keys.unsqueeze(1) + self.score_bias
        )
        scores = energy.matmul(direction)  # (B, Tq, S)
        scores = scores.masked_fill(~source_mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return weights.bmm(keys), weights


@dataclass
class DecoderState:
    """What the decoder carries from one step to the next during generation."""

    hidden: list[tuple[torch.Tensor, torch.Tensor] | None]  # (h, c) per layer, (1, N, H) each

    def select(self, index: torch.Tensor) -> DecoderState:
        """The states of rows ``index`` (beam search reorders hypotheses with this)."""
        return DecoderState(
            [
                None if state is None else (state[0][:, index], state[1][:, index])
                for state in self.hidden
            ]
        )


@dataclass
class EncodedSource:
    """The encoder's output for a batch of sources, as the decoder reads it."""

    keys: torch.Tensor  # (B, S, H) encoder outputs
    projected_keys: torch.Tensor  # (B, S, H) W_k keys
    mask: torch.Tensor  # (B, S) true on real tokens
    lengths: torch.Tensor  # (B,)

    def select(self, index: torch.Tensor) -> EncodedSource:
        return EncodedSource(
            self.keys[index], self.projected_keys[index], self.mask[index], self.lengths[index]
        )


class GNMT(nn.Module):
    """GNMT v2: encoder, attention decoder, classifier; sizes from the config."""

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 1024,
        num_layers: int = 4,
        dropout: float = 0.2,
        label_smoothing: float = 0.1,
        init_range: float | None = None,
    ) -> None:
        """``init_range`` None: ``init_range_for(hidden_size)`` (the reference's at width 1024)."""
        super().__init__()
        if num_layers < 2:
            raise ValueError(
                f"GNMT needs num_layers >= 2 (a bidirectional first layer), got {num_layers}"
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.label_smoothing = label_smoothing
        if init_range is None:
            init_range = init_range_for(hidden_size)
        self.embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=PAD)
        nn.init.uniform_(self.embedding.weight, -init_range, init_range)
        self.dropout = nn.Dropout(dropout)
        encoder = [nn.LSTM(hidden_size, hidden_size, batch_first=True, bidirectional=True)]
        encoder.append(nn.LSTM(2 * hidden_size, hidden_size, batch_first=True))
        encoder += [
            nn.LSTM(hidden_size, hidden_size, batch_first=True) for _ in range(num_layers - 2)
        ]
        self.encoder_layers = nn.ModuleList(encoder)
        decoder = [nn.LSTM(hidden_size, hidden_size, batch_first=True)]
        decoder += [
            nn.LSTM(2 * hidden_size, hidden_size, batch_first=True) for _ in range(num_layers - 1)
        ]
        self.decoder_layers = nn.ModuleList(decoder)
        for lstm in (*self.encoder_layers, *self.decoder_layers):
            init_lstm(lstm, init_range)
        self.attention = NormalizedBahdanauAttention(hidden_size, init_range)
        self.classifier = nn.Linear(hidden_size, vocab_size)
        nn.init.uniform_(self.classifier.weight, -init_range, init_range)
        nn.init.uniform_(self.classifier.bias, -init_range, init_range)

    # ----------------------------------------------------------------------------------------
    # encoder
    # ----------------------------------------------------------------------------------------

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> EncodedSource:
        """source (B, S) token ids padded with PAD, lengths (B,) real lengths (>= 1)."""
        x = self.dropout(self.embedding(source))
        # The bidirectional layer reads each source only up to its length, so that the backward
        # direction starts at the real last token, not at padding (pack_padded_sequence).
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        x, _ = self.encoder_layers[0](packed)
        x, _ = pad_packed_sequence(x, batch_first=True, total_length=source.shape[1])
        x, _ = self.encoder_layers[1](self.dropout(x))
        for layer in self.encoder_layers[2:]:
            x = x + layer(self.dropout(x))[0]
        mask = torch.arange(source.shape[1], device=source.device) < lengths.unsqueeze(1)
        return EncodedSource(x, self.attention.project_keys(x), mask, lengths)

    # ----------------------------------------------------------------------------------------
    # decoder
    # ----------------------------------------------------------------------------------------

    def decode(
        self, inputs: torch.Tensor, encoded: EncodedSource, state: DecoderState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """inputs (N, T) target ids (BOS first). Returns (logits (N, T, V), attention weights
        (N, T, S), the state after the last position)."""
        hidden = state.hidden if state is not None else [None] * self.num_layers
        new_hidden = []
        x = self.dropout(self.embedding(inputs))
        x, carried = self.decoder_layers[0](x, hidden[0])
        new_hidden.append(carried)
        context, weights = self.attention(x, encoded.keys, encoded.projected_keys, encoded.mask)
        for index, layer in enumerate(self.decoder_layers[1:], start=1):
            output, carried = layer(self.dropout(torch.cat((x, context), dim=2)), hidden[index])
            new_hidden.append(carried)
            # residual connections from the third layer on (index 2 is the third layer)
            x = output + x if index >= 2 else output
        return self.classifier(x), weights, DecoderState(new_hidden)

    def forward(
        self, source: torch.Tensor, source_lengths: torch.Tensor, target_inputs: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) for ``target_inputs`` (the target shifted right)."""
        logits, _, _ = self.decode(target_inputs, self.encode(source, source_lengths))
        return logits


def parameter_count(vocab_size: int, hidden_size: int, num_layers: int) -> int:
    """The parameter count of GNMT(vocab_size, hidden_size, num_layers), derived by hand from the
    reference's layer shapes (an LSTM of input I and width H has 4H(I + H) weights and two bias
    vectors of 4H; tests/test_gnmt_model.py checks the module against it):

    - shared embedding: V H;
    - encoder: bidirectional LSTM(H) 2 (8H^2 + 8H); LSTM(2H -> H) 12H^2 + 8H; (L - 2) x LSTM(H)
      (8H^2 + 8H);
    - decoder: LSTM(H) 8H^2 + 8H; (L - 1) x LSTM(2H -> H) (12H^2 + 8H); attention W_q, W_k (2H^2),
      score vector, bias (2H) and gain (1); classifier H V + V.
    """
    v, h, layers = vocab_size, hidden_size, num_layers
    lstm = 8 * h * h + 8 * h  # LSTM(H -> H)
    wide = 12 * h * h + 8 * h  # LSTM(2H -> H)
    encoder = 2 * lstm + wide + (layers - 2) * lstm
    decoder = lstm + (layers - 1) * wide + 2 * h * h + 2 * h + 1
    return v * h + encoder + decoder + h * v + v
