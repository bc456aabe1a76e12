"""Deep renders of long videos: octaves and many steps per frame, in chunks that survive an
interruption, spread over processes or machines with Ray.

- ``octaves``: a frame dreamed in octaves on top of the carried dream
- ``chunks``: shots and chunks with a warm-up overlap; segments (lossless FFV1 bytes)
- ``store``: the locked chunk folder beside the output, with its manifest
- ``work``: one chunk dreamed, in this process or in a Ray worker
- ``ray_runner``: ``--workers N`` and ``--cluster ADDRESS``
- ``assemble``: the output, with the input's sound and timestamps
- ``render``: all of it, start to end (``run_deep``)
- ``flags``: the command-line flags
"""
