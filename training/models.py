"""Datasets and training runs (see the training issue); nothing stored yet."""
