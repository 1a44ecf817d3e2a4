"""Penn Treebank word-level language model, Zaremba et al. 2014 "small" (2 x 200 LSTM)."""
