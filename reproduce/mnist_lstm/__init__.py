"""MNIST read row by row by an LSTM: the paper's smallest LSTM application."""
