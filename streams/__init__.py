"""What each stream computes, as plain functions over plain values.

No Faust import (a test enforces it), no clock (time is a parameter), no randomness
without a seed.
"""
