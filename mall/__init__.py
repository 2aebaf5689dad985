"""The Xingcheng mall: an aiohttp backend for Changsha mini-program shops.

It imports nothing from the harness (simulator, loadtests, monitoring): those reach it
over HTTP, or, for bulk loading, through `mall.storage`."""

__version__ = "0.1.0"
