"""Recipes: data files that each describe one way to build a job (see the TOML beside this)."""
