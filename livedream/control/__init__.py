"""Steering a run from elsewhere: a control page in the browser, a JSON API and OSC.

``--control [HOST:]PORT`` serves the page and its JSON API (``server.py``, aiohttp, in a thread
of its own), ``--osc [HOST:]PORT`` listens for OSC messages (``osc.py``, python-osc). Both talk
to the run through one adapter, ``bridge.ControlBridge``: every change goes through
``Controls``, the one owner of the live settings, exactly as a key press does. ``looks.py``
saves and loads named looks (small TOML files); ``values.py`` checks every value that comes
in; ``session.py`` starts and stops all of it with the run.

Nothing here is imported unless a run asks for it: a run without ``--control`` or ``--osc``
never loads aiohttp or python-osc.
"""
