"""Benchmarks: podmagic against kubectl, the official client and a bare WebSocket floor.

Run them with ``.venv/bin/python -m benchmarks.run`` (``--quick``, ``--smoke``, ``--repeat N``);
see the README's "Performance" section.
"""
