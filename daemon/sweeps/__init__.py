"""Scheduled archive sweeps: recordings taken from folders and recorders on a schedule.

source.py    what a sweep asks of a source of recordings (`SweepSource`), and its types
"""
