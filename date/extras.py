"""Install hints for the library's optional extras (see library/pyproject.toml)."""

#: How to install pytorch_optimizer, which LARS and LAMB need (the extra ``lars``).
LARS_EXTRA_HINT = "pip install 'date-legw[lars]' (or pytorch-optimizer)"
