"""Checkers for the chapters' exercises: one module per chapter (``utils.exercises.ch00`` ...).

A checker takes the learner's answer (a value or a function), compares it with an independent
computation, prints a short verdict on success and raises ``AssertionError`` with a hint otherwise.
"""
