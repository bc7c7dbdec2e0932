"""kexue_nb: the package behind the kexue-notes book.

Each module serves one chapter (``entropy``, ``sector``, ``reparam``, ``exact``, ``sde``,
``diffusion``); ``checks`` is the claim ledger every chapter ends with, ``plotting`` the one
figure style of the book, and ``tools`` the notebook maintenance commands.
"""

__version__ = "0.1.0"
