"""Tests of the seed 003 augment stage."""
