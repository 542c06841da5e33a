"""The pure core: values, validation, outcome tables, the file formats, histograms.

Containing no trio, no matplotlib, no sockets, no /proc, and no I/O but saved files: every
file is written through files.py (never through a planted link) and read through
reading.py (regular files, bounded), and nothing else here opens one. Everything else is
tested on literal inputs, and tests/unit/test_core_purity.py proves that importing it loads
neither trio nor matplotlib.
"""
