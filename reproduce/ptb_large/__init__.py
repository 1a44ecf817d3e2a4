"""Penn Treebank word-level language model, Zaremba et al. 2014 "large" (2 x 1500 LSTM)."""
