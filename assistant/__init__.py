"""A local, private question-answering assistant over a folder of documents."""

__version__ = "0.1.0"
