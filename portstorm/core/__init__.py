"""The pure core: values, validation, outcome tables, the result format, histograms.

Containing no I/O at all: no trio, no matplotlib, no sockets, no /proc. Everything here is
tested on literal inputs, and tests/test_core_purity.py proves that importing it loads
neither trio nor matplotlib.
"""
